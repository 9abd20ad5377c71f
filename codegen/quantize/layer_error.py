"""Where the quantization loss is: every layer's INT8 output against the float model's, op by op.

The INT8 model runs in TFLM keeping every tensor, the float model (the calibrated one, which is the
converter's float graph) in TFLite; tensors are matched by name, which the converter keeps. For each
layer: SQNR and max abs error of its dequantized output (the error accumulated up to that layer), the
share of float values outside the int8 range (clipped), and the dB the layer itself loses: its worst
input's SQNR minus its output's. The model's inputs come first (their own quantization), then
the layers, worst first by the dB they lose.
"""
from __future__ import annotations

import math

import numpy as np

from codegen.quantize import calibration
from codegen.model import numerics
from codegen.oracle import oracle
from codegen.model.ir import ModelIR

MAX_ROWS = 100                  # calibration rows the report runs on, at most
MEMORY_BUDGET = 256 << 20       # bytes for every activation of every row, float and int8 copies


def rows_for(ir: ModelIR) -> int:
    """How many rows the report runs on: MAX_ROWS, fewer when the activations would not fit the
    memory budget (5 bytes an element: the float copy and the int8 one)."""
    per_row = 5 * sum(t.elements for t in ir.tensors if not t.is_constant)
    return max(1, min(MAX_ROWS, MEMORY_BUDGET // max(per_row, 1)))


def report(ir: ModelIR, model: bytes, calibrated: bytes, rows: list[np.ndarray], arena: int) -> list[dict]:
    ops = [op for op in ir.operators if op.subgraph == 0]
    raw_in = [numerics.quantize(a.reshape((a.shape[0],) + t.shape), t.quantization.scales[0],
                                t.quantization.zero_points[0], t.dtype)
              for a, t in zip(rows, ir.inputs)]
    int8 = oracle.run_tflm_per_op(ir, model, raw_in, oracle.per_op_arena(ir, arena))
    names = {ir.tensors[t].name for op in ops for t in op.outputs if t >= 0} | {t.name for t in ir.inputs}
    floats = calibration.float_tensors(calibrated, rows, names)
    sqnr: dict[int, float] = {}
    inputs, layers = [], []
    for t, raw in zip(ir.inputs, raw_in):           # the input's own quantization comes first
        f = floats.get(t.name)
        if f is not None:
            q = _dequantize(ir, t.index, raw).reshape(f.shape)
            sqnr[t.index] = numerics.sqnr_db(f, q)
            inputs.append(_entry(t, f, q, None, "input", sqnr[t.index], None))
    for i, op in enumerate(ops):
        for t in (t for t in op.outputs if t >= 0):
            tensor = ir.tensors[t]
            f = floats.get(tensor.name)
            if f is None or (i, t) not in int8 or tensor.dtype not in ("int8", "int16"):
                continue
            q = _dequantize(ir, t, int8[(i, t)]).reshape(f.shape)
            ins = [sqnr[k] for k in op.inputs if k in sqnr]
            sqnr[t] = numerics.sqnr_db(f, q)
            lost = _lost(min(ins), sqnr[t]) if ins else -math.inf
            layers.append((lost, _entry(tensor, f, q, i, op.name, sqnr[t], lost)))
    return inputs + [entry for _, entry in sorted(layers, key=lambda le: (-le[0], le[1]["op_index"]))]


def _entry(tensor, f: np.ndarray, q: np.ndarray, op_index: int | None, op: str, sqnr: float,
           lost: float | None) -> dict:
    scale, zp = tensor.quantization.scales[0], tensor.quantization.zero_points[0]
    info = np.iinfo(tensor.dtype)
    lo, hi = (info.min - zp) * scale, (info.max - zp) * scale
    return {"op_index": op_index, "op": op, "tensor": tensor.name, "shape": list(tensor.shape),
            "scale": scale, "zero_point": zp, "int8_range": [lo, hi],
            "float_range": [float(f.min()), float(f.max())],
            "clipped_pct": 100.0 * float(np.mean((f < lo - scale / 2) | (f > hi + scale / 2))),
            "sqnr_db": _finite(sqnr), "max_abs_error": float(np.max(np.abs(f - q))),
            "lost_db": None if lost is None else _finite(lost)}


def _dequantize(ir: ModelIR, t: int, raw: np.ndarray) -> np.ndarray:
    q = ir.tensors[t].quantization
    return numerics.dequantize(raw, q.scales[0], q.zero_points[0])


def _lost(before: float, after: float) -> float:
    """dB lost from ``before`` to ``after`` (+inf: an exact input gave an inexact output)."""
    if math.isinf(before) and math.isinf(after):
        return 0.0
    return before - after


def _finite(v: float) -> float | None:
    """JSON has no infinity: an exact match (or a zero signal) has no finite SQNR."""
    return v if math.isfinite(v) else None
