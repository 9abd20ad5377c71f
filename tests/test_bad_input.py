"""The command line's contract for bad input.

Every case below must end with exactly one line on stderr, ``error: WHAT (try: FIX)``, naming the
offending file (or option), exit status 2, no traceback, nothing on stdout, and no file written or
changed anywhere (the working folder and TMPDIR are compared before and after).

The CLI runs as a subprocess (``python -m codegen``), as a user would run it. Cases that import
TensorFlow and load a Keras model are marked ``slow``.
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from conftest import model as M      # the path of a shared model; skips the test if it is missing

HELLO_INT8, HELLO_FLOAT, KWS, AD01_H5 = "hello_world_int8", "hello_world_float", "kws_ref_model", "ad01_h5"

OPS_JSON = REPO / "codegen" / "data" / "tflm_ops.json"

FAST_TIMEOUT_S = 120          # a bad-input case takes well under a second; generous for busy CI
TF_TIMEOUT_S = 300            # importing TensorFlow and loading Keras on 2 shared cores


# --------------------------------------------------------------------------------------------------
# helpers


def run_cli(args: list[str], cwd: Path, tmpdir: Path, timeout: float) -> subprocess.CompletedProcess:
    """``python -m codegen ARGS`` in its own process group; on timeout the whole group is killed
    (the CLI's interpreter workers included) and the test fails."""
    env = dict(os.environ, TMPDIR=str(tmpdir),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    cmd = [sys.executable, "-m", "codegen", *map(str, args)]
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, errors="replace", start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        pytest.fail(f"tfgen {' '.join(map(str, args))} did not finish within {timeout} s")
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def snapshot(*roots: Path) -> dict[str, bytes]:
    """Every file and folder under the roots, with the files' bytes."""
    files: dict[str, bytes] = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            files[str(p)] = p.read_bytes() if p.is_file() else b"<dir>"
    return files


def assert_one_error(r: subprocess.CompletedProcess, *names: str) -> str:
    """Exit 2, one ``error: ... (try: ...)`` line naming every string in ``names``, no traceback."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{r.stderr}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert re.search(r" \(try: .+\)$", line), f"no '(try: ...)' fix at the end: {line}"
    for name in names:
        assert name in line, f"{name!r} not named in: {line}"
    assert r.returncode == 2, f"exit {r.returncode}: {line}"
    assert r.stdout == "", f"unexpected stdout: {r.stdout!r}"
    return line


@pytest.fixture
def work(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    (tmp_path / "tmp").mkdir()
    return d


def fb_schema():
    from codegen.model.inspection import schema
    fb = schema()
    return fb


def rebuild(model_t) -> bytes:
    import flatbuffers
    builder = flatbuffers.Builder(1024)
    off = model_t.Pack(builder)
    builder.Finish(off, file_identifier=b"TFL3")
    return bytes(builder.Output())


def op_missing_from_tflm() -> tuple[int, str]:
    """A builtin op of the schema that TFLM's op set (codegen/data/tflm_ops.json) lacks, with a code
    below 127 so that it fits ``deprecated_builtin_code``."""
    fb = fb_schema()
    have = set(json.loads(OPS_JSON.read_text(encoding="utf-8"))["builtins"])
    special = {"CUSTOM", "DELEGATE", "PLACEHOLDER_FOR_GREATER_OP_CODES"}
    missing = sorted((v, k) for k, v in vars(fb.BuiltinOperator).items()
                     if not k.startswith("_") and isinstance(v, int) and k not in have and k not in special
                     and 0 <= v < 127)
    assert missing, "every builtin op below 127 is in TFLM's op set; pick another way to build this case"
    return missing[0]


def model_with_op(code: int) -> bytes:
    """hello_world_int8 with its only operator code (FULLY_CONNECTED) replaced by ``code``."""
    fb = fb_schema()
    buf = M(HELLO_INT8).read_bytes()
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(buf, 0))
    model.operatorCodes[0].builtinCode = code
    model.operatorCodes[0].deprecatedBuiltinCode = code
    return rebuild(model)


# --------------------------------------------------------------------------------------------------
# the table of cases: (arguments built in the working folder, strings the error must contain)


def _text_tflite(w: Path) -> Path:
    p = w / "x.tflite"
    p.write_text("this is not a model\n")
    return p


def _random_tflite(w: Path) -> Path:
    data = random.Random(1234).randbytes(4096)
    assert data[4:8] != b"TFL3"
    p = w / "random.tflite"
    p.write_bytes(data)
    return p


def _empty_tflite(w: Path) -> Path:
    p = w / "empty.tflite"
    p.write_bytes(b"")
    return p


def _kws_half(w: Path) -> Path:
    data = M(KWS).read_bytes()
    p = w / "kws_half.tflite"
    p.write_bytes(data[: len(data) // 2])
    return p


def _kws_100(w: Path) -> Path:
    p = w / "kws_100.tflite"
    p.write_bytes(M(KWS).read_bytes()[:100])
    return p


def _dir_tflite(w: Path) -> Path:
    p = w / "model_dir.tflite"
    p.mkdir()
    return p


def _calib(w: Path) -> Path:
    p = w / "calib.npy"
    np.save(p, np.zeros((8, 640), np.float32))
    return p


def _no_savedmodel_dir(w: Path) -> Path:
    p = w / "not_a_savedmodel"
    p.mkdir()
    (p / "variables").mkdir()
    return p


def _onnx(w: Path) -> Path:
    p = w / "model.onnx"
    p.write_bytes(b"\x08\x07onnx")
    return p


def _existing(w: Path, name: str) -> Path:
    p = w / name
    p.write_bytes(b"precious user data\n")
    return p


def _inputs_wrong_shape(w: Path) -> Path:
    p = w / "wrong_shape.npy"
    np.save(p, np.zeros((4, 3), np.int8))    # hello_world takes (1, 1) per vector
    return p


FAST_CASES = [
    # inspect: the model file itself
    pytest.param(lambda w: ["inspect", w / "missing.tflite"], ["missing.tflite"], id="inspect-missing-file"),
    pytest.param(lambda w: ["inspect", _dir_tflite(w)], ["model_dir.tflite"], id="inspect-directory"),
    pytest.param(lambda w: ["inspect", _text_tflite(w)], ["x.tflite"], id="inspect-text-file"),
    pytest.param(lambda w: ["inspect", _random_tflite(w)], ["random.tflite"], id="inspect-random-bytes"),
    pytest.param(lambda w: ["inspect", _empty_tflite(w)], ["empty.tflite"], id="inspect-empty-file"),
    pytest.param(lambda w: ["inspect", _kws_half(w)], ["kws_half.tflite"], id="inspect-truncated-half"),
    pytest.param(lambda w: ["inspect", _kws_100(w)], ["kws_100.tflite"], id="inspect-truncated-100-bytes"),
    pytest.param(lambda w: ["inspect", M(HELLO_FLOAT)], ["hello_world_float.tflite", "tfgen quantize"],
                 id="inspect-float-model"),
    # reference: the model file, the inputs, the vector count
    pytest.param(lambda w: ["reference", w / "missing.tflite", "-o", w / "v.bin"], ["missing.tflite"],
                 id="reference-missing-file"),
    pytest.param(lambda w: ["reference", _kws_100(w), "-o", w / "v.bin"], ["kws_100.tflite"],
                 id="reference-truncated"),
    pytest.param(lambda w: ["reference", M(HELLO_FLOAT), "-o", w / "v.bin"],
                 ["hello_world_float.tflite", "tfgen quantize"], id="reference-float-model"),
    pytest.param(lambda w: ["reference", M(HELLO_INT8), "--inputs", _inputs_wrong_shape(w),
                            "-o", w / "v.bin"],
                 ["wrong_shape.npy"], id="reference-inputs-wrong-shape"),
    pytest.param(lambda w: ["reference", M(HELLO_INT8), "--inputs", w / "no_inputs.npy", "-o", w / "v.bin"],
                 ["no_inputs.npy"], id="reference-inputs-missing"),
    pytest.param(lambda w: ["reference", M(HELLO_INT8), "--vectors", "0", "-o", w / "v.bin"], ["--vectors 0"],
                 id="reference-zero-vectors"),
    # an output that exists is never overwritten without --force
    pytest.param(lambda w: ["reference", M(HELLO_INT8), "-o", _existing(w, "vectors.bin")],
                 ["vectors.bin", "--force"], id="reference-output-exists"),
    pytest.param(lambda w: ["quantize", M(AD01_H5), "--calib", _calib(w), "-o", _existing(w, "out.tflite")],
                 ["out.tflite", "--force"], id="quantize-output-exists"),
    # quantize: model inputs refused before TensorFlow is imported
    pytest.param(lambda w: ["quantize", w / "missing.h5", "--calib", _calib(w), "-o", w / "q.tflite"],
                 ["missing.h5"], id="quantize-missing-model"),
    pytest.param(lambda w: ["quantize", M(HELLO_INT8), "--calib", _calib(w), "-o", w / "q.tflite"],
                 ["hello_world_int8.tflite"], id="quantize-tflite-as-model"),
    pytest.param(lambda w: ["quantize", _no_savedmodel_dir(w), "--calib", _calib(w), "-o", w / "q.tflite"],
                 ["not_a_savedmodel", "saved_model.pb"], id="quantize-dir-without-saved-model-pb"),
    pytest.param(lambda w: ["quantize", _onnx(w), "--calib", _calib(w), "-o", w / "q.tflite"],
                 ["model.onnx"], id="quantize-unknown-suffix"),
    pytest.param(lambda w: ["quantize", M(AD01_H5), "--calib", _calib(w), "-o", w / "q.tflite",
                            "--calibration", "percentile", "--percentile", "100"],
                 ["--percentile 100", "99.99"], id="quantize-percentile-out-of-range"),
]


def _calib_wrong_shape(w: Path) -> Path:
    p = w / "calib_639.npy"
    np.save(p, np.zeros((16, 639), np.float32))      # ad01 takes 640 floats
    return p


def _calib_nan_inf(w: Path) -> Path:
    a = np.random.default_rng(0).normal(size=(16, 640)).astype(np.float32)
    a[3, 17] = np.nan
    a[9, 0] = np.inf
    p = w / "calib_nan.npy"
    np.save(p, a)
    return p


SLOW_CASES = [
    pytest.param(lambda w: ["quantize", M(AD01_H5), "--calib", _calib_wrong_shape(w), "-o", w / "q.tflite"],
                 ["calib_639.npy", "640"], id="quantize-calib-wrong-shape"),
    pytest.param(lambda w: ["quantize", M(AD01_H5), "--calib", _calib_nan_inf(w), "-o", w / "q.tflite"],
                 ["calib_nan.npy", "NaN"], id="quantize-calib-nan-inf"),
    pytest.param(lambda w: ["quantize", M(AD01_H5), "--calib", w / "no_calib.npy", "-o", w / "q.tflite"],
                 ["no_calib.npy"], id="quantize-calib-missing"),
]


def _check_case(build, names, work: Path, timeout: float) -> str:
    args = build(work)
    tmpdir = work.parent / "tmp"
    before = snapshot(work, tmpdir)
    r = run_cli(args, work, tmpdir, timeout)
    line = assert_one_error(r, *names)
    after = snapshot(work, tmpdir)
    assert after == before, f"files written or changed: {sorted(set(after) ^ set(before)) or 'contents'}"
    return line


@pytest.mark.parametrize("build, names", FAST_CASES)
def test_bad_input(build, names, work):
    _check_case(build, names, work, FAST_TIMEOUT_S)


@pytest.mark.slow
@pytest.mark.parametrize("build, names", SLOW_CASES)
def test_bad_calibration_data(build, names, work):
    """These import TensorFlow and load ad01.h5 (a few seconds each) before the data is checked."""
    _check_case(build, names, work, TF_TIMEOUT_S)


# --------------------------------------------------------------------------------------------------
# models built in the test


@pytest.mark.parametrize("command", ["inspect", "reference"])
def test_op_missing_from_tflm(command, work):
    code, name = op_missing_from_tflm()
    model = work / "needs_missing_op.tflite"
    model.write_bytes(model_with_op(code))
    args = [command, model] + (["-o", work / "v.bin"] if command == "reference" else [])
    tmpdir = work.parent / "tmp"
    before = snapshot(work, tmpdir)
    assert_one_error(run_cli(args, work, tmpdir, FAST_TIMEOUT_S), "needs_missing_op.tflite", name)
    assert snapshot(work, tmpdir) == before


@pytest.mark.parametrize("where", ["tensor-name", "custom-op-name"])
def test_names_from_the_model_stay_on_one_line(where, work):
    """Names read from the file end up in the error; a newline in one must not split the line."""
    fb = fb_schema()
    evil = b"dense_input\nsecond line\r\x1b[31mthird"
    if where == "tensor-name":           # a float model: refused with the input's name in the message
        src = M(HELLO_FLOAT).read_bytes()
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(src, 0))
        sg = model.subgraphs[0]
        sg.tensors[sg.inputs[0]].name = evil
    else:                                # a custom op TFLM lacks: refused with its name in the message
        src = M(HELLO_INT8).read_bytes()
        model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(src, 0))
        model.operatorCodes[0].builtinCode = fb.BuiltinOperator.CUSTOM
        model.operatorCodes[0].deprecatedBuiltinCode = fb.BuiltinOperator.CUSTOM
        model.operatorCodes[0].customCode = evil
    path = work / "evil_names.tflite"
    path.write_bytes(rebuild(model))
    tmpdir = work.parent / "tmp"
    r = run_cli(["inspect", path], work, tmpdir, FAST_TIMEOUT_S)
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1, f"the error spans several lines:\n{r.stderr}"
    assert_one_error(r, "evil_names.tflite")


def test_inspect_allow_float_reports_float(work):
    tmpdir = work.parent / "tmp"
    r = run_cli(["inspect", "--allow-float", "--json", M(HELLO_FLOAT)], work, tmpdir, FAST_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    report = json.loads(r.stdout)
    assert report["quantization"] == "float"
    assert report["model"] == "hello_world_float.tflite"
    assert any("float" in p for p in report["problems"])
    assert snapshot(tmpdir) == {}


def test_reference_force_overwrites(work):
    out = _existing(work, "vectors.bin")
    tmpdir = work.parent / "tmp"
    r = run_cli(["reference", M(HELLO_INT8), "--vectors", "2", "--no-crosscheck", "--force", "-o", out],
                work, tmpdir, FAST_TIMEOUT_S)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    data = out.read_bytes()
    assert data.startswith(b"TFGV") and data != b"precious user data\n"
    from codegen.model import vectors
    vs = vectors.decode(data)
    assert vs.count == 2
    assert sorted(p.name for p in work.iterdir()) == ["vectors.bin"]     # no temporary file left
    assert snapshot(tmpdir) == {}
