"""`--runtime aot` on ESP chips: the generated code calls esp-nn as esp-tflite-micro's esp_nn/ wrappers do.

Byte for byte with the oracle, op by op, with esp-nn's generic C (what the ESP32, C3 and C6 run) on the
host and on QEMU's Cortex-M4F; the ESP32-S3's scratch sizes, ported to Python to plan them, against
esp-nn's own C compiled here; the ESP-IDF project as ESP-IDF and PlatformIO read it.
"""
from __future__ import annotations

import itertools
import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import needs
from codegen.project import aot_espnn
from conftest import model, run_tfgen


def _c_function(source: str, name: str) -> str:
    """The text of C function ``name`` in ``source``: from its signature to the brace closing it."""
    start = re.search(rf"^int {name}\(", source, re.M)
    assert start, name
    end = source.index("\n}\n", start.start())
    return source[start.start():end + 3]


def _s3_cases() -> list[tuple[int, ...]]:
    """Shapes across every branch of both functions: 1x1 and 3x3 filters, channel counts around the
    multiples of 8 and 16, padding or none, strides 1 and 2, buffers on both sides of the 40/48 KiB tiles."""
    rng = random.Random(16)
    cases = []
    for f, ch, pad, stride in itertools.product((1, 3, 5), (1, 3, 4, 8, 12, 16, 24, 32, 40), (0, 1), (1, 2)):
        size = rng.choice((4, 7, 10, 25, 49, 96))
        out = (size + 2 * pad - f) // stride + 1
        cases.append((size, size + rng.choice((0, 3)), ch, f, f, max(out, 1), max(out, 1), rng.choice((1, 8, 16, 64)),
                      pad, pad, stride, stride, rng.choice((1, 2, 4))))
    return cases


def test_the_s3_scratch_sizes_are_esp_nns_own(tmp_path):
    """aot plans the S3's scratch at generation time from aot_espnn's port; here esp-nn 1.2.3's C functions,
    cut out of its sources, compute the same shapes on the host and must agree on every one."""
    root = needs.esp_nn().root
    if not shutil.which("gcc"):
        needs.lacking("needs gcc for esp-nn's C")
    conv = _c_function((root / "src/convolution/esp_nn_conv_esp32s3.c").read_text(),
                       "esp_nn_get_conv_scratch_size_esp32s3")
    dw = _c_function((root / "src/convolution/esp_nn_depthwise_conv_s8_esp32s3.c").read_text(),
                     "esp_nn_get_depthwise_conv_scratch_size_esp32s3")
    cases = _s3_cases()
    rows = "\n".join("{" + ", ".join(map(str, c)) + "}," for c in cases)
    harness = tmp_path / "sizes.c"
    harness.write_text(f"""#include <stdio.h>
#include <stddef.h>
#include "esp_nn_defs.h"
#include "common_functions.h"
{conv}
{dw}
static const int kCases[][13] = {{ {rows} }};
int main(void) {{
  for (size_t i = 0; i < sizeof kCases / sizeof kCases[0]; ++i) {{
    const int* c = kCases[i];
    data_dims_t in = {{c[0], c[1], c[2], 1}}, filt = {{c[3], c[4], c[2], 0}}, out = {{c[5], c[6], c[7], 1}};
    conv_params_t cp = {{0, 0, {{c[10], c[11]}}, {{c[8], c[9]}}, {{0, 0}}, {{-128, 127}}}};
    dw_conv_params_t dp = {{0, 0, c[12], {{c[10], c[11]}}, {{c[8], c[9]}}, {{0, 0}}, {{-128, 127}}}};
    data_dims_t dw_out = {{c[5], c[6], c[2] * c[12], 1}};
    printf("%d %d\\n", esp_nn_get_conv_scratch_size_esp32s3(&in, &filt, &out, &cp),
           esp_nn_get_depthwise_conv_scratch_size_esp32s3(&in, &filt, &dw_out, &dp));
  }}
  return 0;
}}
""")
    exe = tmp_path / "sizes"
    subprocess.run(["gcc", "-O1", "-w", "-I", root / "include", "-I", root / "src/common", harness, "-o", exe],
                   check=True)
    got = subprocess.run([exe], capture_output=True, text=True, check=True).stdout.split("\n")
    for c, line in zip(cases, got):
        want_conv, want_dw = map(int, line.split())
        assert aot_espnn.conv_scratch_s3(*c[:12]) == want_conv, c
        assert aot_espnn.depthwise_scratch_s3(*c[:5], c[12], c[5], c[6], *c[8:12]) == want_dw, c
    assert len({tuple(map(int, line.split())) for line in got if line}) > 20     # the cases reach many branches


@pytest.mark.parametrize("board", ["esp32", "esp32s3"])
def test_kws_on_esp_chips_matches_the_oracle_op_by_op(board):
    needs.tflm()
    needs.esp_nn()
    r = run_tfgen("verify", model("kws_ref_model"), "--board", board, "--runtime", "aot", "--vectors", 10, "--per-op",
                  "--json", timeout=1800)
    assert r.returncode == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert report["ok"] and report["per_op"]["op"] is None and report["kernels"].startswith("esp-nn")
    assert set(report["optimized_ops"]) == {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
                                            "SOFTMAX"}
    # the S3's assembly needs scratch (planned in: the buffer grows), the generic C of the ESP32 none
    assert (report["arena_size"] > 16_000) == (board == "esp32s3"), report["arena_size"]
    assert any("assembly" in n for n in report["notes"]) == (board == "esp32s3")


@pytest.mark.parametrize("board", ["esp32", "esp32s3_psram"])
def test_the_esp_project_calls_esp_nn_and_esp_idf_reads_it(tmp_path, board):
    needs.tflm()
    needs.esp_nn()
    out = tmp_path / "p"
    r = run_tfgen("generate", model("kws_ref_model"), "--board", board, "-o", out, "--runtime", "aot")
    assert r.returncode == 0, r.stderr
    code = (out / "src" / "tfgen_aot.cc").read_text()
    assert code.count("esp_nn_conv_s8(") == 5 and code.count("esp_nn_depthwise_conv_s8(") == 4
    assert "esp_nn_fully_connected_s8(" in code and "esp_nn_softmax_s8(" in code and "esp_nn_avg_pool_s8(" in code
    assert '#include "sdkconfig.h"' in code and "heap_caps_aligned_alloc" in code     # ESP-IDF: the chip's code
    assert ("MALLOC_CAP_SPIRAM" in code) == (board == "esp32s3_psram")
    sources = (out / "src" / "CMakeLists.txt").read_text()
    assert '"tfgen_aot.cc"' in sources and "_model_data.cc" not in sources
    for f in sorted((out / "src").glob("*.c*")):
        assert f'"{f.name}"' in sources or f.name == "CMakeLists.txt", f"{f.name} is not compiled by ESP-IDF"
    manifest = (out / "src" / "idf_component.yml").read_text()
    assert "espressif/esp-nn" in manifest and "espressif/esp-tflite-micro" in manifest
    ini = (out / "platformio.ini").read_text()
    assert "--runtime aot" in ini and ("-DCONFIG_IDF_TARGET_ESP32\n" in ini) == (board == "esp32")
    bin_dir = Path(sys.executable).parent
    r = subprocess.run([bin_dir / "compote", "manifest", "lint"], cwd=out / "src", capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([bin_dir / "pio", "project", "config", "-d", out], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and f"env:{board}" in r.stdout, r.stderr + r.stdout


def test_an_esp_chip_without_a_port_is_refused_for_aot(tmp_path):
    (tmp_path / "p4.toml").write_text((needs_board_toml("esp32c6")).replace('name = "esp32c6"', 'name = "p4"')
                                      .replace('chip = "esp32c6"', 'chip = "esp32p4"'))
    r = run_tfgen("generate", model("hello_world_int8"), "--board", "p4", "--boards-dir", tmp_path, "-o",
                  tmp_path / "out", "--runtime", "aot")
    assert r.returncode == 2 and "esp32p4" in r.stderr and "--runtime tflm" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def needs_board_toml(name: str) -> str:
    from codegen.resources import resource_dir
    return (resource_dir("boards") / f"{name}.toml").read_text()


@pytest.mark.parametrize("chip", ["esp32", "esp32s3"])
def test_the_esp_idf_branch_compiles_against_the_chips_esp_nn(tmp_path, chip):
    """The generated code as ESP-IDF compiles it (ESP_PLATFORM: sdkconfig.h selects the chip's esp-nn
    functions, the activation buffer from heap_caps), warnings as errors, against stand-in ESP-IDF headers:
    on the S3 esp_nn.h declares its assembly's functions, so their names and signatures are checked too."""
    from codegen.toolchain import builder
    needs.tflm()
    needs.esp_nn()
    out = tmp_path / "p"
    board = "esp32s3_psram" if chip == "esp32s3" else chip
    r = run_tfgen("generate", model("kws_ref_model"), "--board", board, "-o", out, "--runtime", "aot")
    assert r.returncode == 0, r.stderr
    config = tmp_path / "config"
    config.mkdir()
    (config / "sdkconfig.h").write_text(f"#pragma once\n#define CONFIG_NN_OPTIMIZED 1\n"
                                        f"#define CONFIG_IDF_TARGET_{chip.upper()} 1\n")
    lib = out / "lib" / "tflm"
    includes = [f"-I{config}", f"-I{Path(__file__).resolve().parent / 'firmware' / 'stubs'}", f"-I{out / 'src'}",
                *(f for d in (".", "third_party/flatbuffers/include", "third_party/gemmlowp", "third_party/ruy",
                              "third_party/esp_nn/include", "third_party/esp_nn/src/common")
                  for f in ("-isystem", str(lib / d)))]
    for source in ("tfgen_aot.cc", "tfgen_runtime.cc"):
        r = subprocess.run([builder.CXX, *builder.COMMON_FLAGS, *builder.CXX_FLAGS, *builder.APP_WARNINGS, "-Werror",
                            "-DESP_PLATFORM", "-DTF_LITE_STATIC_MEMORY", *includes, "-c", out / "src" / source, "-o",
                            tmp_path / f"{source}.o"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
    text = subprocess.run(["nm", "-u", tmp_path / "tfgen_aot.cc.o"], capture_output=True, text=True).stdout
    suffix = "_esp32s3" if chip == "esp32s3" else "_opt"
    assert f"esp_nn_conv_s8{suffix}" in text and "heap_caps_aligned_alloc" in text, text
