"""firmware/: the quantize helpers against codegen.model.numerics, and every platform branch compiled.

The quantize/dequantize helpers run in a small driver (tests/firmware/quant_driver.cc) built with the
host build's flags; their output is compared bit for bit with codegen.model.numerics, which is what
`tfgen reference --inputs` uses. The harness is compiled (not linked) for each platform branch of
tfgen_platform.cc and main.cpp, with stand-in Arduino/ESP-IDF headers, warnings as errors, against
the contract's tfgen_model.h (tests/firmware/stubs/).
"""
from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from codegen.toolchain import builder
from codegen.model import numerics
from codegen.resources import resource_dir
import needs
from codegen.toolchain.tflm_tree import INCLUDE_DIRS

HERE = Path(__file__).resolve().parent / "firmware"
FIRMWARE = resource_dir("firmware")
ARM_GXX = "arm-none-eabi-g++"
ARM_FLAGS = ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-Os")
DTYPES = {8: np.int8, 16: np.int16}


def _compile(cmd: list[str], cwd: Path | None = None) -> None:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, cwd=cwd)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\n{r.stderr}"


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    if shutil.which(builder.CXX) is None:
        needs.tools(builder.CXX)
    exe = tmp_path_factory.mktemp("quant") / "quant_driver"
    _compile([builder.CXX, *builder.COMMON_FLAGS, *builder.CXX_FLAGS, *builder.APP_WARNINGS,
              f"-I{FIRMWARE}", HERE / "quant_driver.cc", "-o", exe])
    return exe


def _run(driver: Path, op: str, bits: int, scale: float, zero_point: int, data: bytes) -> bytes:
    r = subprocess.run([driver, op, str(bits), float(np.float32(scale)).hex(), str(zero_point)],
                       input=data, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _test_values(scale: float, zero_point: int, bits: int) -> np.ndarray:
    """Random values over and beyond the range, exact .5 ties (in steps), and edge values."""
    rng = np.random.default_rng(bits * 1000 + zero_point)
    info = np.iinfo(DTYPES[bits])
    s = np.float32(scale)
    steps = np.arange(info.min - zero_point - 4, info.max - zero_point + 5, dtype=np.float64)
    ties = np.concatenate([steps + 0.5, steps - 0.5]) * s               # x / scale == k + 0.5 when exact
    near = np.nextafter(ties.astype(np.float32), np.float32(np.inf))    # just past a tie, and before it
    before = np.nextafter(ties.astype(np.float32), np.float32(-np.inf))
    wide = rng.normal(0.0, float(s) * (info.max - info.min), 4000)     # mostly in range, some clamped
    far = np.array([1e3, -1e3, 1e6, -1e6, 3e9, -3e9, 1e15, -1e15]) * s  # out of range, int64 in numpy
    edges = np.array([0.0, -0.0, 1e-45, -1e-45, np.finfo(np.float32).tiny, 0.49999997 * s, -0.49999997 * s])
    return np.concatenate([ties, near, before, wide, far, edges]).astype(np.float32)


@pytest.mark.parametrize("bits, scale, zero_point", [
    (8, 0.5, 0), (8, 0.25, -128), (8, 1 / 128, 5), (8, 0.5847029089927673, 83),
    (8, 0.00390625, -128), (8, 0.024480115622282028, -128), (8, 3.0, 127), (8, 1e-6, -1),
    (16, 0.5, 0), (16, 1 / 4096, 0), (16, 0.000123, 7), (16, 1.7, -3),
])
def test_quantize_rounds_and_clamps_as_numerics(driver, bits, scale, zero_point):
    x = _test_values(scale, zero_point, bits)
    got = np.frombuffer(_run(driver, "quantize", bits, scale, zero_point, x.tobytes()), DTYPES[bits])
    expected = numerics.quantize(x, np.float32(scale), zero_point, np.dtype(DTYPES[bits]).name)
    bad = np.flatnonzero(got != expected)
    first = bad[0] if bad.size else 0
    assert bad.size == 0, (f"{bad.size} of {x.size} differ; first: input {x[first]!r} "
                           f"(/scale = {x[first] / np.float32(scale)!r}) "
                           f"expected {expected[first]} got {got[first]}")


@pytest.mark.parametrize("bits", [8, 16])
def test_quantize_defines_what_tflite_leaves_undefined(driver, bits):
    """Beyond +-2^31 steps TFLite's int32 cast is undefined: both sides saturate; NaN becomes the
    zero point."""
    info = np.iinfo(DTYPES[bits])
    x = np.array([np.inf, -np.inf, 1e30, -1e30, 3.4e38, 1e19, np.nan], np.float32)
    got = np.frombuffer(_run(driver, "quantize", bits, 0.5, 3, x.tobytes()), DTYPES[bits])
    assert got.tolist() == [info.max, info.min, info.max, info.min, info.max, info.max, 3]
    assert numerics.quantize(x, 0.5, 3, np.dtype(DTYPES[bits]).name).tolist() == got.tolist()


@pytest.mark.parametrize("x, expected", [
    (0.49999997, 0), (-0.49999997, 0),    # the float below 0.5: floor(x + 0.5) in float32 gave 1
    (0.5, 1), (-0.5, -1), (1.5, 2), (2.5, 3), (-2.5, -3), (8388609.0, 127),
])
def test_numerics_rounds_like_std_round(x, expected):
    assert int(numerics.quantize(np.array([x], np.float32), 1.0, 0)[0]) == expected


@pytest.mark.parametrize("bits, scale, zero_point", [
    (8, 0.5847029089927673, 83), (8, 0.00390625, -128), (8, 0.36449846625328064, 96), (8, 1e-30, 0),
    (16, 0.000123, 7), (16, 3.0517578125e-05, 0), (16, 1234.5, -32768),
])
def test_dequantize_is_tflites_double_product_rounded_once(driver, bits, scale, zero_point):
    info = np.iinfo(DTYPES[bits])
    q = np.arange(info.min, info.max + 1, dtype=DTYPES[bits])
    got = np.frombuffer(_run(driver, "dequantize", bits, scale, zero_point, q.tobytes()), np.float32)
    expected = numerics.dequantize(q, float(np.float32(scale)), zero_point).astype(np.float32)
    bad = np.flatnonzero(got.view(np.uint32) != expected.view(np.uint32))
    assert bad.size == 0, f"q={q[bad[0]]}: expected {expected[bad[0]]!r} got {got[bad[0]]!r}"


# --- every platform branch compiles --------------------------------------------------------------

BRANCHES = {"host": (), "arduino": ("-DARDUINO=10819",), "esp-idf": ("-DESP_PLATFORM",)}


def _tree_includes() -> list[str]:
    root = needs.tflm().root
    return [flag for d in INCLUDE_DIRS for flag in ("-isystem", str(root / d))]


@pytest.mark.parametrize("compiler", ["host", "cortex-m4"])
def test_harness_compiles_on_every_platform_branch(tmp_path, compiler):
    """Warnings as errors, in test mode, in example mode and in validation mode (the serial link and the
    cycle counter of each branch), for the host and for a Cortex-M4."""
    includes = _tree_includes()
    if compiler == "host":
        cmd = [builder.CXX, *builder.COMMON_FLAGS]
    else:
        needs.tools(ARM_GXX)
        cmd = [ARM_GXX, *ARM_FLAGS, "-DTF_LITE_STATIC_MEMORY"]
    cmd += [*builder.CXX_FLAGS, *builder.APP_WARNINGS, "-pedantic", f"-I{FIRMWARE}",
            f"-I{HERE / 'stubs'}", *includes]
    jobs = []
    for branch, defines in BRANCHES.items():
        for mode in ((), ("-DTFGEN_TEST_MODE",), ("-DTFGEN_VALIDATE", "-DTFGEN_PROFILE")):
            files = ["main.cpp", "tfgen_platform.cc", *(("tfgen_validate.cc",) if len(mode) == 2 else ())]
            if branch == "host":
                files += ["tfgen_runtime.cc", "tfgen_replay.cc"]
            for f in files:
                obj = tmp_path / f"{branch}-{len(mode)}-{f}.o"
                jobs.append([*cmd, *defines, *mode, "-c", FIRMWARE / f, "-o", obj])
    with ThreadPoolExecutor(max_workers=builder.JOBS) as pool:
        list(pool.map(_compile, jobs))
