"""`tfgen build`: real firmware images, their flash and RAM from the ELF, held against the board."""
from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

import needs
from codegen.project import boards, targets
from codegen.project.boards import builtin_boards_dir
from conftest import model, run_tfgen

pytestmark = pytest.mark.slow


def needs_cortex_m():
    needs.cortex_m()


def test_cortex_m4f_build_reports_elf_sizes_that_fit(tmp_path):
    needs_cortex_m()
    r = run_tfgen("build", model("kws_ref_model"), "--board", "mps2_an386", "-o", tmp_path / "p", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    flash = next(m for m in report["memory"] if m["region"] == "flash")
    ram = next(m for m in report["memory"] if m["region"] == "RAM")
    model_bytes = model("kws_ref_model").stat().st_size
    assert report["fits"] and report["builder"] == "tfgen"
    assert model_bytes < flash["used"] < model_bytes + 200_000        # model + TFLM core + 6 kernels
    assert report["arena_bytes"] < ram["used"] < report["arena_bytes"] + 16_000
    assert {s["name"] for s in report["sections"]} >= {".text", ".bss"}


def _mps2_with_flash(tmp_path, flash_bytes: int):
    boards = tmp_path / "boards"
    boards.mkdir()
    text = (builtin_boards_dir() / "mps2_an386.toml").read_text()
    text, n = re.subn(r"(?m)^flash_bytes\s*=\s*\d+", f"flash_bytes = {flash_bytes}", text)
    assert n == 1
    (boards / "mps2_an386.toml").write_text(text)
    return boards


def test_a_model_that_does_not_fit_exits_1(tmp_path):
    """ad01's image is 324,752 B: more than 310,000 B of flash, though the model and TFLM's runtime
    alone (about 305,000 B) are less, so it is built, then held against the board."""
    needs_cortex_m()
    r = run_tfgen("build", model("ad01_int8"), "--board", "mps2_an386", "-o", tmp_path / "p",
                  "--boards-dir", _mps2_with_flash(tmp_path, 310_000))
    assert r.returncode == 1, r.stderr
    assert "DOES NOT FIT" in r.stdout and "flash" in r.stderr and "310,000" in r.stderr


def test_a_model_larger_than_the_boards_flash_is_refused_before_compiling(tmp_path):
    """ad01's 276,976 B model alone is more than 204,800 B of flash: one line with the figure, before
    any compile (generate refuses it already, so no project is written)."""
    needs_cortex_m()
    r = run_tfgen("build", model("ad01_int8"), "--board", "mps2_an386", "-o", tmp_path / "p",
                  "--boards-dir", _mps2_with_flash(tmp_path, 204_800))
    assert r.returncode == 1, r.stderr
    line, = r.stderr.strip().splitlines()
    assert "does not fit mps2_an386's flash" in line and "of 204,800 B" in line, line
    over = int(re.search(r"([\d,]+) bytes over", line).group(1).replace(",", ""))
    assert over >= 276_976 - 204_800
    assert not (tmp_path / "p").exists()


def test_a_linker_region_overflow_is_reported_as_not_fitting(tmp_path):
    """GNU ld's own overflow message, from a real link into a 1 KiB code region."""
    needs.tools("arm-none-eabi-gcc")
    from codegen.toolchain import builder
    from codegen.errors import DoesNotFit
    (tmp_path / "big.c").write_text("const unsigned char big[4096] = {1};\nint v = 3;\n"
                                    "int main(void) { return big[0] + v; }\nvoid _start(void) { main(); }\n")
    memory = ("MEMORY { CODE (rx) : ORIGIN = 0, LENGTH = 1K\n"
              "         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 1K }\n")
    scripts = {"count": "SECTIONS { .text : { *(.text*) } > CODE  .rodata : { *(.rodata*) } > CODE\n"
                        "           .data : { *(.data*) } > RAM AT > CODE }\n",
               "no count": "SECTIONS { .text : { *(.text*) *(.rodata*) *(.data*) } > CODE }\n"}
    for kind, sections in scripts.items():
        (tmp_path / "tiny.ld").write_text(memory + sections)
        linked = subprocess.run(["arm-none-eabi-gcc", "-nostdlib", "-T", tmp_path / "tiny.ld", tmp_path / "big.c",
                                 "-o", tmp_path / "big.elf"], capture_output=True, text=True, timeout=120)
        assert linked.returncode != 0 and "will not fit in region" in linked.stderr, linked.stderr
        assert ("overflowed by" in linked.stderr) == (kind == "count"), linked.stderr
        with pytest.raises(DoesNotFit) as err:
            builder._raise_if_overflowed(targets.for_board(boards.get_board("mps2_an386")).build, linked.stderr)
        message = err.value.message
        assert message.startswith("does not fit mps2_an386's flash") and "(linker: " in message, message
        if kind == "count":
            over = int(re.search(r"flash: ([\d,]+) bytes over", message).group(1).replace(",", ""))
            assert 4096 - 1024 <= over <= 4096 + 64
    builder._raise_if_overflowed(targets.for_board(boards.get_board("mps2_an386")).build, "undefined reference to `foo'")   # not an overflow


def test_esp32_offline_says_what_is_missing_after_generating(tmp_path):
    env_before = os.environ.get("PLATFORMIO_CORE_DIR")
    out = tmp_path / "p"
    r = run_tfgen("build", model("hello_world_int8"), "--board", "esp32", "-o", out, timeout=900)
    if r.returncode == 0:
        pytest.skip("PlatformIO could install espressif32 here: this test is about being offline")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line, = r.stderr.strip().splitlines()
    assert "espressif32" in line and str(out) in line
    assert (out / "platformio.ini").is_file() and (out / "src" / "idf_component.yml").is_file()
    assert os.environ.get("PLATFORMIO_CORE_DIR") == env_before


def test_an_existing_project_is_not_regenerated_without_force(tmp_path):
    out = tmp_path / "p"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    r = run_tfgen("build", model("hello_world_int8"), "--board", "esp32", "-o", out)
    assert r.returncode == 2 and "--force" in r.stderr and (out / "mine.txt").read_text() == "keep"


def test_a_float_model_needs_calibration_data(tmp_path):
    r = run_tfgen("build", model("ad01_h5"), "--board", "host", "-o", tmp_path / "p")
    assert r.returncode == 2 and "--calib" in r.stderr


def test_a_keras_model_with_calibration_data_is_quantized_then_built(digits, tmp_path):
    """The user's path: `tfgen build model.keras --calib DATA --board esp32`. Offline the ESP32
    platform cannot be installed, but the INT8 model and the project are there, and said so."""
    out = tmp_path / "p"
    r = run_tfgen("build", digits / "model.keras", "--calib", digits / "calib.npy", "--board", "esp32",
                  "-o", out, timeout=900)
    int8 = tmp_path / "model_int8.tflite"
    from codegen.model.inspection import firmware_problems, parse_model, quantization_kind
    ir = parse_model(int8.read_bytes(), int8.name)
    assert quantization_kind(ir) == "int8" and firmware_problems(ir) == []
    quantized = next(line for line in r.stderr.splitlines() if line.startswith("quantized"))
    assert str(int8) in quantized and "output SQNR" in quantized and "held-out rows" in quantized
    assert (out / "platformio.ini").is_file() and (out / "src" / "tfgen_model.h").is_file()
    assert r.returncode == 0 or "could not install the espressif32 platform" in r.stderr, r.stderr
