"""The bit-exact oracle: TFLM's Python interpreter (``tflite_micro``), always in a child process.

Also TFLite's reference kernels, for a cross-check that is reported but never decides anything.
"""
from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codegen.toolchain import proc
from codegen.errors import TfgenError
from codegen.model.ir import ModelIR

ARENA_TIMEOUT_S = 300
MAX_ARENA_RESTARTS = 48
INVOKE_TIMEOUT_S = 600
CRASH_HINT = "the model is malformed or uses an op in a way TFLM does not support; re-export it"


@dataclass(frozen=True)
class ArenaFigure:
    """Arena sizes measured by the tflite_micro wheel on this (64-bit) host."""
    min_bytes: int              # smallest arena with which allocation and one invoke succeed
    reported_total: int | None  # what print_allocations() reports as its total
    reported_head: int | None
    reported_tail: int | None
    tries: int

    def to_dict(self) -> dict:
        return {"host_bits": 64, "min_bytes": self.min_bytes,
                "print_allocations_total": self.reported_total,
                "print_allocations_head": self.reported_head,
                "print_allocations_tail": self.reported_tail,
                "bisection_steps": self.tries,
                "note": "64-bit host figure from the tflite_micro interpreter; 32-bit targets need less"}


def tflm_version() -> str:
    from tflite_micro import __version__
    return __version__


class _Crashed(Exception):
    def __init__(self, error: TfgenError, tmp: tempfile.TemporaryDirectory):
        super().__init__(str(error))
        self.error, self.tmp, self.dir = error, tmp, Path(tmp.name)


def _run(task: str, ir: ModelIR, model: bytes, extra: dict, inputs: list[np.ndarray] | None,
         timeout: float, what: str, keep_on_crash: bool = False
         ) -> tuple[dict, Path, tempfile.TemporaryDirectory]:
    tmp = tempfile.TemporaryDirectory(prefix="tfgen-")
    d = Path(tmp.name)
    (d / "model.tflite").write_bytes(model)
    req = {"model": str(d / "model.tflite"), "n_inputs": len(ir.inputs),
           "n_outputs": len(ir.outputs), **extra}
    if inputs is not None:
        np.savez(d / "inputs.npz", **{f"in{i}": a for i, a in enumerate(inputs)})
        req["inputs"] = str(d / "inputs.npz")
    (d / "request.json").write_text(json.dumps(req))
    result = proc.run([sys.executable, "-m", "codegen.oracle.worker", task, str(d / "request.json")],
                      what=f"{what} on {ir.source}", timeout=timeout, check=False, hint=CRASH_HINT)
    reply = d / "result.json"
    if result.returncode == 3 and reply.is_file():
        message = json.loads(reply.read_text())["error"]
        tmp.cleanup()
        raise TfgenError(f"{ir.source}: {message}", CRASH_HINT)
    if result.returncode != 0 or not reply.is_file():
        detail = proc.tail(result.stderr, 3).replace("\n", " | ")
        error = TfgenError(f"{ir.source}: {what} {proc.describe_status(result.returncode)}"
                           + (f": {detail}" if detail else ""), CRASH_HINT)
        if keep_on_crash and result.returncode < 0:
            raise _Crashed(error, tmp)
        tmp.cleanup()
        raise error
    return json.loads(reply.read_text()), d, tmp


def measure_arena(ir: ModelIR, model: bytes) -> ArenaFigure:
    """Bisect the smallest working arena; sizes at which TFLM crashes count as too small."""
    bounds: dict = {}
    for _ in range(MAX_ARENA_RESTARTS):
        try:
            res, _, tmp = _run("arena", ir, model, bounds, None, ARENA_TIMEOUT_S, "the TFLM interpreter",
                               keep_on_crash=True)
        except _Crashed as crash:
            state = crash.dir / "state.json"
            saved = json.loads(state.read_text()) if state.is_file() else {}
            crash.tmp.cleanup()
            if not saved.get("trying"):
                raise crash.error
            bounds = {"lo": saved["trying"], "hi": saved["hi"], "tries": saved["tries"]}
            continue
        tmp.cleanup()
        break
    else:
        raise TfgenError(f"{ir.source}: the TFLM interpreter crashed {MAX_ARENA_RESTARTS} times while "
                         "measuring the arena", CRASH_HINT)
    alloc = res["print_allocations"]
    return ArenaFigure(res["min_arena"], alloc.get("total"), alloc.get("head"), alloc.get("tail"),
                       res["tries"])


def _invoke(task: str, ir: ModelIR, model: bytes, inputs: list[np.ndarray], extra: dict,
            what: str) -> tuple[list[np.ndarray], dict]:
    res, d, tmp = _run(task, ir, model, extra, inputs, INVOKE_TIMEOUT_S, what)
    with np.load(d / "outputs.npz") as data:
        outputs = [data[f"out{o}"] for o in range(len(ir.outputs))]
    tmp.cleanup()
    return outputs, res


def run_tflm(ir: ModelIR, model: bytes, inputs: list[np.ndarray], arena: int) -> list[np.ndarray]:
    """Outputs of TFLM for N vectors. ``inputs[i]`` has shape (N, *input_i.shape), raw dtype."""
    outputs, _ = _invoke("tflm", ir, model, inputs, {"arena": arena}, "the TFLM interpreter")
    return outputs


def run_tflite_reference(ir: ModelIR, model: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    outputs, _ = _invoke("tflite", ir, model, inputs, {}, "TFLite's reference interpreter")
    return outputs


def per_op_arena(ir: ModelIR, arena: int) -> int:
    """An arena that holds the model with every tensor kept (kPreserveAllTensors): twice ``arena`` plus
    room for all activations at 4 bytes an element and per-tensor bookkeeping (a host arena: generous;
    hello_world's interpreter asks for 8 KB more than its measured arena once it keeps every tensor)."""
    activations = sum(t.elements * 4 for t in ir.tensors if not t.is_constant)
    return 2 * arena + activations + 256 * len(ir.tensors) + 16384


def run_tflm_per_op(ir: ModelIR, model: bytes, inputs: list[np.ndarray], arena: int) -> dict[tuple[int, int], np.ndarray]:
    """Every subgraph-0 op's outputs for N vectors (``inputs[i]``: (N, *shape)), keyed (op, tensor),
    each stacked: (N, *tensor shape). ``arena`` must hold every tensor (see per_op_arena)."""
    ops = [op for op in ir.operators if op.subgraph == 0]
    extra = {"arena": arena, "op_outputs": [[t for t in op.outputs if t >= 0] for op in ops]}
    res, d, tmp = _run("perop", ir, model, extra, inputs, INVOKE_TIMEOUT_S, "the TFLM interpreter")
    with np.load(d / "outputs.npz") as data:
        found = {(i, t): data[f"op{i}_t{t}"] for i, op in enumerate(ops) for t in op.outputs
                 if t >= 0 and f"op{i}_t{t}" in data.files}
    tmp.cleanup()
    return found
