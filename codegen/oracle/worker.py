"""Runs interpreters on untrusted models, inside a child process (see ``codegen.oracle.oracle``).

A malformed model can crash TFLM's C++ code (segfault) or make it loop; doing that here turns the crash
into an error message in the parent. Invoked as ``python -m codegen.oracle.worker TASK REQUEST.json``; the
request names the model and array files, the result is written next to them as ``result.json`` (and
``outputs.npz``). Exit status 3 means a reported failure (see ``result.json``'s ``error``).
"""
from __future__ import annotations

import json
import os
import re
import sys
import traceback
from pathlib import Path

import numpy as np

from codegen.toolchain.proc import native_stderr

ARENA_ALIGN = 16
MAX_ARENA = 1 << 30


class WorkerError(Exception):
    pass


def _tflm(model: bytes, arena: int):
    from tflite_micro import runtime
    try:
        return runtime.Interpreter.from_bytes(model, arena_size=arena)
    except RuntimeError:
        raise                       # allocation or prepare failed: the arena search decides
    except Exception as exc:        # the wheel unpacks the whole flatbuffer in Python first
        raise WorkerError(f"tflite_micro cannot read the model ({type(exc).__name__}: {exc})") from exc


def _zeros_inputs(interp, n_inputs: int):
    for i in range(n_inputs):
        d = interp.get_input_details(i)
        interp.set_input(np.zeros(d["shape"], d["dtype"]), i)


def _works(model: bytes, arena: int, n_inputs: int) -> bool:
    try:
        interp = _tflm(model, arena)
        _zeros_inputs(interp, n_inputs)
        interp.invoke()
        return True
    except RuntimeError:
        return False


def _capture_fd2(fn) -> str:
    """Run fn() with the C-level stderr captured; return what it printed."""
    sink: list[str] = []
    with native_stderr(sink):
        fn()
    return "".join(sink)


def task_arena(req: dict, out_dir: Path) -> dict:
    """Smallest arena (bytes) with which TFLM allocates and invokes, by doubling then bisection.

    Some allocation failures crash TFLM instead of returning an error (a failed temp-tensor allocation
    in Prepare dereferences null). Before each try the size is written to ``state.json``; the parent
    counts a crash at that size as a failure and starts a new worker from the saved bounds.
    """
    model = Path(req["model"]).read_bytes()
    n_inputs = req["n_inputs"]
    lo, hi, tries = req.get("lo", 0), req.get("hi"), req.get("tries", 0)   # lo fails, hi works
    state = out_dir / "state.json"

    def works(size: int) -> bool:
        state.write_text(json.dumps({"lo": lo, "hi": hi, "trying": size, "tries": tries}))
        return _works(model, size, n_inputs)

    while hi is None:
        size = max(4096, lo * 2)
        if size > MAX_ARENA:
            log = _capture_fd2(lambda: _works(model, MAX_ARENA, n_inputs))
            raise WorkerError(f"TFLM cannot allocate or invoke the model even with a "
                              f"{MAX_ARENA >> 20} MiB arena: {_first_error(log)}")
        tries += 1
        if works(size):
            hi = size
        else:
            lo = size
    while hi - lo > 1:
        mid = (lo + hi) // 2
        tries += 1
        if works(mid):
            hi = mid
        else:
            lo = mid
    state.write_text(json.dumps({"lo": lo, "hi": hi, "trying": None, "tries": tries}))

    def report():
        interp = _tflm(model, hi)
        _zeros_inputs(interp, n_inputs)
        interp.invoke()
        interp.print_allocations()
    printed = _capture_fd2(report)
    allocations = {k: int(v) for k, v in re.findall(
        r"Arena allocation (total|head|tail) (\d+) bytes", printed)}
    return {"min_arena": hi, "tries": tries, "print_allocations": allocations,
            "print_allocations_text": printed.strip()}


def _first_error(log: str) -> str:
    lines = [l.strip() for l in log.splitlines() if l.strip()]
    return lines[0] if lines else "no message from TFLM"


def _load_inputs(req: dict) -> list[np.ndarray]:
    with np.load(req["inputs"]) as data:
        return [data[f"in{i}"] for i in range(len(data.files))]


def _invocations(interp, inputs: list[np.ndarray]):
    """Each vector through a TFLM interpreter, state reset before it (stateful ops such as LSTM);
    yields the vector's index after its invoke."""
    for v in range(inputs[0].shape[0]):
        interp.reset()
        for i, arr in enumerate(inputs):
            interp.set_input(arr[v], i)
        try:
            interp.invoke()
        except RuntimeError as exc:
            raise WorkerError(f"TFLM failed to invoke the model on vector {v}: {exc}")
        yield v


def task_tflm(req: dict, out_dir: Path) -> dict:
    """Run every vector through TFLM, resetting state before each (stateful ops such as LSTM)."""
    model = Path(req["model"]).read_bytes()
    inputs = _load_inputs(req)
    holder = {}

    def make():
        holder["interp"] = _tflm(model, req["arena"])
    try:
        log = _capture_fd2(make)
    except RuntimeError as exc:
        raise WorkerError(f"TFLM could not prepare the model: {exc}")
    del log
    interp = holder["interp"]
    n = inputs[0].shape[0]
    outs: list[list[np.ndarray]] = [[] for _ in range(req["n_outputs"])]
    for _ in _invocations(interp, inputs):
        for o in range(req["n_outputs"]):
            outs[o].append(np.array(interp.get_output(o), copy=True))
    np.savez(out_dir / "outputs.npz", **{f"out{o}": np.stack(a) for o, a in enumerate(outs)})
    return {"vectors": n}


def run_tflite(model: bytes, inputs: list[np.ndarray], resolver: str) -> list[np.ndarray]:
    """Run N vectors (``inputs[i]``: (N, *input_shape)) through ``tf.lite.Interpreter`` with the
    named op resolver (``BUILTIN_REF``: reference kernels; ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    interp = tf.lite.Interpreter(model_content=model, experimental_op_resolver_type=getattr(
        tf.lite.experimental.OpResolverType, resolver))
    interp.allocate_tensors()
    ins, outs_d = interp.get_input_details(), interp.get_output_details()
    outs: list[list[np.ndarray]] = [[] for _ in outs_d]
    for v in range(inputs[0].shape[0]):
        interp.reset_all_variables()
        for d, arr in zip(ins, inputs):
            interp.set_tensor(d["index"], arr[v].astype(d["dtype"], copy=False))
        interp.invoke()
        for o, d in enumerate(outs_d):
            outs[o].append(np.array(interp.get_tensor(d["index"]), copy=True))
    return [np.stack(a) for a in outs]


def task_tflite(req: dict, out_dir: Path) -> dict:
    """The same vectors through TFLite's reference kernels (not the oracle: a cross-check)."""
    outs = run_tflite(Path(req["model"]).read_bytes(), _load_inputs(req), "BUILTIN_REF")
    np.savez(out_dir / "outputs.npz", **{f"out{o}": a for o, a in enumerate(outs)})
    return {"vectors": int(outs[0].shape[0]) if outs else 0}


def task_perop(req: dict, out_dir: Path) -> dict:
    """Vectors through TFLM keeping every tensor (state reset before each); each op's outputs, in
    execution order, stacked over the vectors."""
    from tflite_micro import runtime
    model = Path(req["model"]).read_bytes()
    inputs = _load_inputs(req)
    try:
        interp = runtime.Interpreter.from_bytes(
            model, arena_size=req["arena"], intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    except RuntimeError as exc:
        raise WorkerError(f"TFLM could not prepare the model keeping all tensors: {exc}")
    tensors: dict[str, list[np.ndarray]] = {}
    for _ in _invocations(interp, inputs):
        for op, outputs in enumerate(req["op_outputs"]):
            for t in outputs:
                got = interp.GetTensor(t, 0)           # {'dtype', 'shape', 'tensor_data'}
                tensors.setdefault(f"op{op}_t{t}", []).append(np.array(got["tensor_data"], copy=True))
    np.savez(out_dir / "outputs.npz", **{k: np.stack(v) for k, v in tensors.items()})
    return {"tensors": len(tensors)}


TASKS = {"arena": task_arena, "tflm": task_tflm, "tflite": task_tflite, "perop": task_perop}


def main(argv: list[str]) -> int:
    task, request = argv[0], Path(argv[1])
    req = json.loads(request.read_text())
    out_dir = request.parent
    try:
        result = TASKS[task](req, out_dir)
        status = 0
    except WorkerError as exc:
        result, status = {"error": str(exc)}, 3
    except Exception as exc:        # never hand the parent a traceback to relay
        traceback.print_exc()
        result, status = {"error": f"the worker failed ({type(exc).__name__}: {exc})"}, 3
    (out_dir / "result.json").write_text(json.dumps(result))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
