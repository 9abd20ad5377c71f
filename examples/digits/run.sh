#!/usr/bin/env bash
# The main job on the bundled example: train the digits CNN, quantize it to full INT8 (the calibration
# chosen by --calibration auto, with the accuracy and per-layer reports), inspect it, record reference vectors with TFLM's interpreter, generate the ESP32
# project, build and verify the firmware on the host and on QEMU's Cortex-M4F, and print the fit table.
#   bash examples/digits/run.sh [OUT_DIR]      (default out/digits)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/out/digits}
bin=$repo/.venv/bin
[ -x "$bin/tfgen" ] || { echo "run.sh: no $bin/tfgen; run: bash scripts/setup.sh" >&2; exit 2; }
step() { printf '\n== %s\n' "$*"; }

step "train the digits CNN (scikit-learn's bundled 8x8 digits)"
"$bin/python" "$here/make_model.py" "$out"
step "quantize to full INT8"
"$bin/tfgen" quantize "$out/model.keras" --calib "$out/calib.npy" --report-layers \
    --eval "$out/x_test.npy" --labels "$out/y_test.npy" -o "$out/digits_int8.tflite" --force
step "inspect"
"$bin/tfgen" inspect "$out/digits_int8.tflite"
step "reference vectors from TFLM's interpreter"
"$bin/tfgen" reference "$out/digits_int8.tflite" --vectors 100 -o "$out/digits.tfgv" --force
step "generate the ESP32 project (ESP-IDF + esp-tflite-micro)"
"$bin/tfgen" generate "$out/digits_int8.tflite" --board esp32 -o "$out/esp32" --vectors "$out/digits.tfgv" --force

# Building needs TFLM's C++ sources: TFGEN_TFLM_DIR, the cache, or the pinned download.
find_tflm='
import sys
from codegen.toolchain import tflm_tree
from codegen.errors import TfgenError
try:
    print(tflm_tree.resolve().version)
except TfgenError as exc:
    sys.exit(str(exc))'
if "$bin/python" -c "$find_tflm" 2>"$out/tflm.err"; then
    step "build for the host"
    "$bin/tfgen" build "$out/digits_int8.tflite" --board host -o "$out/host" --force
    step "verify on the host, byte for byte against the oracle"
    "$bin/tfgen" verify "$out/digits_int8.tflite" --board host --vectors 100
    if command -v arm-none-eabi-g++ >/dev/null && command -v qemu-system-arm >/dev/null; then
        step "verify on QEMU's Cortex-M4F (mps2-an386)"
        "$bin/tfgen" verify "$out/digits_int8.tflite" --board mps2_an386 --vectors 100
    else
        step "skipped QEMU verify: needs arm-none-eabi-g++ and qemu-system-arm (bash scripts/setup.sh as root)"
    fi
else
    step "skipped build and verify: no TFLM tree"
    sed 's/^/   /' "$out/tflm.err" | tail -1
fi
step "does it fit? every board"
"$bin/tfgen" fit "$out/digits_int8.tflite"
