#!/usr/bin/env bash
# The main job on the bundled example: train the digits CNN, quantize it to full INT8 (with the
# accuracy report), inspect it, and record reference test vectors with TFLM's interpreter.
#   bash examples/digits/run.sh [OUT_DIR]      (default out/digits)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${1:-$repo/out/digits}
bin=$repo/.venv/bin
[ -x "$bin/tfgen" ] || { echo "run.sh: no $bin/tfgen; run: bash scripts/setup.sh" >&2; exit 2; }

"$bin/python" "$here/make_model.py" "$out"
"$bin/tfgen" quantize "$out/model.keras" --calib "$out/calib.npy" \
    --eval "$out/x_test.npy" --labels "$out/y_test.npy" -o "$out/digits_int8.tflite" --force
"$bin/tfgen" inspect "$out/digits_int8.tflite"
"$bin/tfgen" reference "$out/digits_int8.tflite" --vectors 100 -o "$out/digits.tfgv" --force
