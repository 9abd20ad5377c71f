"""`tfgen inspect` and `tfgen reference` on the real models, checked against tflite_micro itself."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from codegen.model import vectors
from conftest import model, run_tfgen

EXPECTED_OPS = {
    "kws_ref_model": ["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED",
                      "SOFTMAX"],
    "ad01_int8": ["FULLY_CONNECTED"],
    "hello_world_int8": ["FULLY_CONNECTED"],
}

ARENA_PROBE = """
import sys
from tflite_micro import runtime
import numpy as np
m = open(sys.argv[1], "rb").read()
try:
    it = runtime.Interpreter.from_bytes(m, arena_size=int(sys.argv[2]))
    d = it.get_input_details(0)
    it.set_input(np.zeros(d["shape"], d["dtype"]), 0)
    it.invoke()
    print("ok")
except RuntimeError:
    print("fail")
"""


def arena_works(path, size: int) -> bool:
    """Whether tflite_micro runs the model with this arena; a crash counts as not working."""
    r = subprocess.run([sys.executable, "-c", ARENA_PROBE, str(path), str(size)], capture_output=True,
                       text=True, timeout=120)
    return r.returncode == 0 and r.stdout.strip() == "ok"


@pytest.mark.parametrize("name", sorted(EXPECTED_OPS))
def test_inspect_json_lists_the_ops_and_an_arena_that_is_the_smallest_that_works(name):
    path = model(name)
    r = run_tfgen("inspect", "--json", path)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert [o["name"] for o in s["ops"]] == EXPECTED_OPS[name]
    assert s["quantization"] == "int8" and s["all_ops_in_tflm"] and s["problems"] == []
    assert all(o["tflm_method"].startswith("Add") for o in s["ops"])
    assert s["inputs"][0]["dtype"] == "int8" and isinstance(s["inputs"][0]["scale"], float)
    arena = s["arena"]
    assert arena["host_bits"] == 64 and arena["print_allocations_total"] > 0
    assert arena_works(path, arena["min_bytes"])
    assert not arena_works(path, arena["min_bytes"] - 1)


def test_inspect_counts_macs_of_kws():
    s = json.loads(run_tfgen("inspect", "--json", "--no-arena", model("kws_ref_model")).stdout)
    by_op = {o["name"]: o["macs"] for o in s["ops"]}
    # DS-CNN: first conv 10x4 kernel, 64 filters, 25x5 output; four 1x1 pointwise 64->64 on 25x5.
    assert by_op["CONV_2D"] == 25 * 5 * 64 * (10 * 4 * 1) + 4 * (25 * 5 * 64 * 64)
    assert by_op["DEPTHWISE_CONV_2D"] == 4 * (25 * 5 * 64 * 3 * 3)
    assert by_op["FULLY_CONNECTED"] == 64 * 12
    assert s["macs"] == sum(by_op.values())


def test_inspect_text_report_is_readable():
    r = run_tfgen("inspect", model("hello_world_int8"))
    assert r.returncode == 0, r.stderr
    assert "FULLY_CONNECTED" in r.stdout and "AddFullyConnected" in r.stdout
    assert "64-bit host" in r.stdout


REPLAY = """
import sys
import numpy as np
from tflite_micro import runtime
from codegen.model import vectors
vs = vectors.read(sys.argv[2])
it = runtime.Interpreter.from_bytes(open(sys.argv[1], "rb").read(), arena_size=1 << 20)
bad = 0
for v in range(vs.count):
    it.reset()
    for i, a in enumerate(vs.input_data):
        it.set_input(a[v], i)
    it.invoke()
    for o, a in enumerate(vs.output_data):
        bad += int(np.count_nonzero(it.get_output(o) != a[v]))
print(bad)
"""


@pytest.mark.parametrize("name", sorted(EXPECTED_OPS))
def test_reference_vectors_are_reproduced_exactly_by_tflite_micro(name, tmp_path):
    path = model(name)
    out = tmp_path / "v.tfgv"
    r = run_tfgen("reference", path, "--vectors", 20, "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    vs = vectors.read(out)
    assert vs.count == 20 and vs.model_sha256 == vectors.model_digest(path.read_bytes())
    assert report["crosscheck"]["bytes_compared"] == sum(a.size for a in vs.output_data)
    replay = subprocess.run([sys.executable, "-c", REPLAY, str(path), str(out)], capture_output=True,
                            text=True, timeout=300)
    assert replay.returncode == 0, replay.stderr
    assert replay.stdout.strip() == "0"


def test_reference_is_reproducible_by_seed_and_takes_float_inputs(tmp_path):
    path = model("hello_world_int8")
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 3), (b, 3), (c, 4)):
        assert run_tfgen("reference", path, "--vectors", 5, "--seed", seed, "-o", out,
                         "--no-crosscheck").returncode == 0
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    x = np.linspace(0, 6.28, 7, dtype=np.float32).reshape(7, 1)
    np.save(tmp_path / "x.npy", x)
    r = run_tfgen("reference", path, "--inputs", tmp_path / "x.npy", "-o", tmp_path / "x.tfgv", "--json")
    assert r.returncode == 0, r.stderr
    vs = vectors.read(tmp_path / "x.tfgv")
    spec = vs.inputs[0]
    expected = np.clip(np.floor(x / np.float32(spec.scale) + 0.5) + spec.zero_point, -128, 127)
    np.testing.assert_array_equal(vs.input_data[0].reshape(7, 1), expected.astype(np.int8))
    # the sine model: dequantized outputs follow sin(x)
    out = (vs.output_data[0].reshape(7).astype(float) - vs.outputs[0].zero_point) * vs.outputs[0].scale
    assert np.max(np.abs(out - np.sin(x.ravel()))) < 0.2
