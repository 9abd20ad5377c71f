"""The static activation plan (codegen/model/memplan.py): lifetimes from the graph, views share their
input's buffer, no two tensors live at once overlap, and the plan against its lower bound (the peak
of simultaneously live tensors) in `inspect` and `generate`."""
from __future__ import annotations

import json

import pytest

from codegen.model import memplan
from codegen.model.inspection import load_model_bytes, parse_model
from codegen.model.ir import ModelIR, Operator, Tensor
from conftest import SHARED_MODELS, model, run_tfgen


def _ir(tensors: list[tuple[str, tuple[int, ...], bool]], ops: list[tuple[str, tuple, tuple]],
        inputs=(0,), outputs=None) -> ModelIR:
    ts = tuple(Tensor(i, name, "int8", shape, None, 4 if const else 0) for i, (name, shape, const) in enumerate(tensors))
    operators = tuple(Operator(i, 0, name, 1, False, ins, outs, 0) for i, (name, ins, outs) in enumerate(ops))
    outputs = outputs if outputs is not None else (ops[-1][2][0],)
    return ModelIR("hand.tflite", "0" * 64, 0, 3, "", 1, ts, len(ts), operators, tuple(ts[i] for i in inputs),
                   tuple(ts[i] for i in outputs), (), 0)


def _check(plan: memplan.MemoryPlan) -> None:
    """No two buffers that live at once share a byte; the plan is never below its lower bound."""
    for a in plan.buffers:
        assert a.offset % memplan.ALIGNMENT == 0
        for b in plan.buffers:
            if a is not b and a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)
    assert plan.size >= plan.lower_bound


def test_a_chain_reuses_memory_and_a_view_shares_its_input():
    # x(100) -conv-> a(200) -relu-> b(200) -reshape-> c(200) -fc-> y(10); w is a constant
    ir = _ir([("x", (100,), False), ("a", (200,), False), ("b", (200,), False), ("c", (200,), False),
              ("y", (10,), False), ("w", (100,), True)],
             [("CONV_2D", (0, 5), (1,)), ("RELU", (1,), (2,)), ("RESHAPE", (2,), (3,)),
              ("FULLY_CONNECTED", (3, 5), (4,))])
    p = memplan.plan(ir)
    _check(p)
    assert p.lower_bound == 400 and p.peak_op == 1 and p.peak_op_name == "RELU"   # a and b at once
    assert p.views == 1 and p.offset_of(2) == p.offset_of(3)                      # c is b's bytes
    assert p.offset_of(5) is None                                                  # constants stay in flash
    # a first (largest, earliest) at 0; b/c beside it; x, dead before b is written, in b's place; y at 0
    assert [p.offset_of(t) for t in (1, 2, 0, 4)] == [0, 208, 208, 0] and p.size == 408


def test_a_skip_connection_keeps_its_tensor_alive():
    # x -> a -> b; add(x, b) -> y: x lives until the add
    ir = _ir([("x", (64,), False), ("a", (64,), False), ("b", (64,), False), ("y", (64,), False)],
             [("CONV_2D", (0,), (1,)), ("CONV_2D", (1,), (2,)), ("ADD", (0, 2), (3,))])
    p = memplan.plan(ir)
    _check(p)
    assert p.lower_bound == 192 and p.size == 192
    assert len({p.offset_of(t) for t in (0, 1, 2)}) == 3


@pytest.mark.parametrize("path", sorted(SHARED_MODELS.rglob("*.tflite")) if SHARED_MODELS.is_dir() else [],
                         ids=lambda p: p.stem)
def test_every_shared_model_has_a_valid_plan(path):
    ir = parse_model(load_model_bytes(path), path.name)
    _check(memplan.plan(ir))


def test_kws_peak_is_the_16000_bytes_the_issue_measured():
    ir = parse_model(load_model_bytes(model("kws_ref_model")), "kws_ref_model.tflite")
    p = memplan.plan(ir)
    # 25x5x64 int8 in and out of the first depthwise conv: 8,000 + 8,000
    assert (p.lower_bound, p.size, p.peak_op_name) == (16_000, 16_000, "DEPTHWISE_CONV_2D")


def test_inspect_and_generate_report_the_plan(tmp_path):
    r = run_tfgen("inspect", model("kws_ref_model"), "--json", "--no-arena")
    assert r.returncode == 0, r.stderr
    mp = json.loads(r.stdout)["memory_plan"]
    assert mp["lower_bound"] == 16_000 and mp["size"] == 16_000 and mp["views"] == 1
    text = run_tfgen("inspect", model("kws_ref_model"), "--no-arena").stdout
    assert ("activations 16,000 bytes in a static plan; lower bound 16,000 (the peak of simultaneously live "
            "tensors, at op 1 DEPTHWISE_CONV_2D)") in text
    g = run_tfgen("generate", model("ad01_int8"), "--board", "esp32", "-o", tmp_path / "p", "--json")
    assert g.returncode == 0, g.stderr
    assert json.loads(g.stdout)["activation_plan"]["lower_bound"] == 768       # 640 in, 128 out of the first FC

