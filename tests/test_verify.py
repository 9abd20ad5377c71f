"""`tfgen verify`: the generated firmware, built for the host and for Cortex-M4F in QEMU, computes
byte for byte what TFLM's Python interpreter computes; broken projects fail with their cause named."""
from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest

import needs

from codegen.project import boards
from codegen.model import inspection
from codegen.oracle import reference
from codegen.run import verify
from conftest import model, run_tfgen

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("tflm_root")]

BOARDS = ["host", "mps2_an386"]


def needs_board_tools(board: str) -> None:
    if board == "mps2_an386":
        needs.cortex_m()


@pytest.fixture(scope="module")
def digits_int8(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "digits_int8.tflite"
    r = run_tfgen("quantize", digits / "model.keras", "--calib", digits / "calib.npy", "-o", out)
    assert r.returncode == 0, r.stderr
    return out


def verify_cli(path, board, *extra):
    start = time.monotonic()
    r = run_tfgen("verify", path, "--board", board, "--json", *extra, timeout=3600)
    assert r.returncode in (0, 1), r.stderr
    report = json.loads(r.stdout)
    report["wall_seconds"] = time.monotonic() - start
    return r.returncode, report


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("name", ["digits"])     # the shared models: tests/test_corpus.py
def test_firmware_matches_the_oracle_on_100_vectors(name, board, digits_int8):
    needs_board_tools(board)
    path = digits_int8 if name == "digits" else model(name)
    status, r = verify_cli(path, board, "--vectors", 100, *(("--kernels", "reference") if board != "host" else ()))
    ir = inspection.parse_model(path.read_bytes(), path.name)
    print(f"\n{name} on {board}: {r['mismatched_bytes']} of {r['bytes_compared']} bytes differ; arena used "
          f"{r['arena_used_bytes']} ({r['target_bits']}-bit) of {r['arena_size']}, host {r['host_arena_64bit']}; "
          f"{r['instructions_per_inference']} instructions/inference; build {r['build']['seconds']} s "
          f"({r['build']['compiled']} compiled); verify {r['wall_seconds']:.1f} s")
    assert status == 0 and r["ok"], r
    assert r["vectors"] == 100 and r["mismatched_bytes"] == 0 and r["missing_outputs"] == 0
    assert r["bytes_compared"] == 100 * sum(t.elements for t in ir.outputs)
    assert 0 < r["arena_used_bytes"] <= r["arena_size"]
    if board == "mps2_an386":
        assert r["target_bits"] == 32 and r["arena_used_bytes"] < r["host_arena_64bit"]
        assert r["instructions_per_inference"] > 0
    assert r["oracle"].startswith("0.dev20260930204519") and r["tflm"] == "esp-tflite-micro 1.3.8"


def test_kws_costs_what_the_reference_kernels_cost_on_cortex_m4f():
    """Measured by hand before tfgen existed: 258.9 M instructions, 22,772 bytes of arena (32-bit)."""
    needs_board_tools("mps2_an386")
    status, r = verify_cli(model("kws_ref_model"), "mps2_an386", "--vectors", 2, "--kernels", "reference")
    assert status == 0 and r["kernels"] == "reference" and r["optimized_ops"] == []
    assert r["arena_used_bytes"] == 22772
    assert 258_000_000 < r["instructions_per_inference"] < 260_000_000


def test_warm_verify_rebuilds_nothing():
    path = model("hello_world_int8")
    verify_cli(path, "host", "--vectors", 100)
    status, warm = verify_cli(path, "host", "--vectors", 100)
    print(f"\nwarm verify of hello_world on host: {warm['wall_seconds']:.1f} s "
          f"(build {warm['build']['seconds']} s)")
    assert status == 0 and warm["build"]["compiled"] == 0 and warm["build"]["warm"]


def broken(tmp_path, name, file, pattern, replacement):
    """A project prepared for `verify` on the host, then damaged by one regex substitution."""
    path = model(name)
    data = path.read_bytes()
    ir = inspection.parse_model(data, path.name)
    prep = verify.prepare(ir, data, boards.get_board("host"), reference.random_inputs(ir, 5, 0), None,
                          "tfgen verify (test)", out=tmp_path / "project")
    target = prep.project / "src" / file
    text, n = re.subn(pattern, replacement, target.read_text())
    assert n == 1, f"{pattern!r} not found once in {file}"
    target.write_text(text)
    return verify.build_and_run(prep)


def test_a_too_small_arena_is_named(tmp_path):
    result = broken(tmp_path, "kws_ref_model", "tfgen_model.h", r"kArenaSize = \d+;", "kArenaSize = 4096;")
    assert not result.ok
    assert any("arena" in e and "too small" in e for e in result.log.errors), result.log.errors


def test_an_op_missing_from_the_resolver_is_named(tmp_path):
    result = broken(tmp_path, "kws_ref_model", "tfgen_model.cc",
                    r"  if \(resolver\.AddSoftmax\(\) != kTfLiteOk\) return kTfLiteError;\n", "")
    assert not result.ok
    assert any("SOFTMAX is not registered" in e for e in result.log.errors), result.log.errors


def test_a_wrong_zero_point_in_the_harness_is_named(tmp_path):
    result = broken(tmp_path, "kws_ref_model", "tfgen_model.cc", r"5\.847029e-01f, 83\}", "5.847029e-01f, 84}")
    assert not result.ok
    assert any("zero point" in e and "input 0" in e for e in result.log.errors), result.log.errors


def test_a_wrong_output_is_reported_with_the_first_mismatch(tmp_path):
    """Python compares every byte the firmware printed with the oracle's: shift the oracle's outputs
    by one LSB and the comparison must find every byte and name the first."""
    import dataclasses
    path = model("hello_world_int8")
    ir = inspection.parse_model(path.read_bytes(), path.name)
    prep = verify.prepare(ir, path.read_bytes(), boards.get_board("host"), reference.random_inputs(ir, 5, 0),
                          None, "t", out=tmp_path / "p")
    real = prep.vectors.output_data[0]
    shifted = np.where(real == 127, 126, real + 1).astype(np.int8)
    wrong = dataclasses.replace(prep, vectors=dataclasses.replace(prep.vectors, output_data=(shifted,)))
    result = verify.build_and_run(wrong)
    assert not result.ok and result.comparison.mismatched_bytes == real.size == 5
    first = result.comparison.differences[0]
    assert (first.vector, first.output, first.index) == (0, 0, 0)
    assert (first.expected, first.got) == (int(shifted.ravel()[0]), int(real.ravel()[0]))


def test_per_op_names_the_first_op_that_diverges(tmp_path):
    """Damage one weight of the second CONV_2D in the firmware's copy of the model (the oracle keeps
    the original): the outputs differ, and --per-op must point at that op, not an earlier one."""
    path = model("kws_ref_model")
    data = path.read_bytes()
    ir = inspection.parse_model(data, path.name)
    prep = verify.prepare(ir, data, boards.get_board("host"), reference.random_inputs(ir, 3, 0), None, "t",
                          out=tmp_path / "p")
    same = verify.per_op(prep, 0)
    assert same.op is None and same.ops_compared == len(ir.operators)
    assert same.tensors_compared == sum(len(op.outputs) for op in ir.operators)

    convs = [op for op in ir.operators if op.name == "CONV_2D"]
    weights = ir.tensors[convs[1].inputs[1]]
    offset = _buffer_offset(data, weights.buffer)
    damaged = bytearray(data)
    damaged[offset:offset + 64] = bytes((b ^ 0x40) for b in damaged[offset:offset + 64])
    [source] = (prep.project / "src").glob("*_model_data.cc")
    text = source.read_text()
    body = "".join(f"0x{b:02x}, " for b in damaged)
    text = re.sub(r"\{\n(.*?)\n\};", lambda m: "{\n" + body + "\n};", text, count=1, flags=re.S)
    source.write_text(text)
    result = verify.build_and_run(prep)
    assert not result.ok and result.comparison.mismatched_bytes > 0
    where = verify.per_op(prep, result.comparison.differences[0].vector)
    assert (where.op, where.op_name) == (convs[1].index, "CONV_2D"), where
    assert where.mismatched_bytes > 0 and where.expected != where.got


def _buffer_offset(data: bytes, buffer_index: int) -> int:
    """Where a buffer's bytes sit in the flatbuffer (via the schema binding)."""
    fb = inspection.schema()
    m = fb.Model.GetRootAs(data, 0)
    buf = m.Buffers(buffer_index)
    vec = buf._tab.Offset(4)
    return buf._tab.Vector(vec)


def test_an_unused_operator_code_is_neither_counted_nor_required_by_the_firmware(tmp_path):
    """Old converters leave codes no operator uses in the table (keyword_scrambled: a DEQUANTIZE).
    TFLM resolves only the codes its operators use: inspect, the resolver and the firmware's check too."""
    from test_bad_input import fb_schema, rebuild
    fb = fb_schema()
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(model("hello_world_int8").read_bytes(), 0))
    unused = fb.OperatorCodeT()
    unused.builtinCode = unused.deprecatedBuiltinCode = fb.BuiltinOperator.DEQUANTIZE
    unused.version = 1
    m.operatorCodes.append(unused)
    path = tmp_path / "hello_unused_code.tflite"
    path.write_bytes(rebuild(m))
    r = run_tfgen("inspect", path, "--json", "--no-arena")
    assert r.returncode == 0, r.stderr
    assert [op["name"] for op in json.loads(r.stdout)["ops"]] == ["FULLY_CONNECTED"]
    r = run_tfgen("generate", path, "--board", "host", "-o", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    assert re.findall(r"resolver\.(Add\w+)\(\)", (tmp_path / "p" / "src" / "tfgen_model.cc").read_text()) == [
        "AddFullyConnected"]
    status, report = verify_cli(path, "host", "--vectors", 10)
    assert status == 0 and report["ok"] and report["mismatched_bytes"] == 0, report["firmware_errors"]

