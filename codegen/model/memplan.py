"""A static memory plan for a model's activations, computed from the graph alone.

Every non-constant tensor of the main graph lives from the op that writes it (a graph input: from the
start) to the last op that reads it (a graph output: to the end). Tensors whose lifetimes overlap may
not share memory; the plan places each at an offset in one activation buffer, the largest first, at
the lowest offset free over its whole lifetime (the greedy strategy of TFLM's GreedyMemoryPlanner).
The views (RESHAPE, SQUEEZE, EXPAND_DIMS: the same bytes under another shape) share their input's
buffer. Variable tensors (the state of stateful models) live for ever and are planned apart.

``lower_bound`` is the peak, over the ops, of the bytes of the tensors live at once: no static plan
of these tensors can be smaller. A kernel's scratch buffer (``scratch``: op -> bytes, for the aot
runtime's kernels) is planned as a buffer live during its op only; ``lower_bound_with_scratch`` is the
peak with them.
"""
from __future__ import annotations

from dataclasses import dataclass

from codegen.model.ir import ModelIR, Operator

ALIGNMENT = 16                        # TFLM's kBufferAlignment; the plan aligns every offset to it
VIEWS = frozenset({"RESHAPE", "SQUEEZE", "EXPAND_DIMS"})
_ITEM = {"int8": 1, "uint8": 1, "bool": 1, "int16": 2, "float16": 2, "int32": 4, "float32": 4, "int64": 8,
         "float64": 8, "complex64": 8}


@dataclass(frozen=True)
class Buffer:
    tensors: tuple[int, ...]          # the tensor and the views that share its bytes
    size: int                         # bytes (the largest of them)
    first: int                        # the op that writes it (0 for a graph input)
    last: int                         # the last op that reads it (the last op for a graph output)
    offset: int = 0


@dataclass(frozen=True)
class MemoryPlan:
    buffers: tuple[Buffer, ...]
    size: int                         # the activation buffer: the end of the highest placed buffer
    lower_bound: int                  # peak of simultaneously live tensors' bytes
    peak_op: int                      # where the peak is (-1 for a graph without ops)
    peak_op_name: str
    persistent: int                   # variable tensors' bytes, outside the activation buffer
    views: int                        # tensors that share their input's buffer
    scratch: int = 0                  # the largest kernel scratch buffer planned in
    lower_bound_with_scratch: int = 0

    def offset_of(self, tensor: int) -> int | None:
        return next((b.offset for b in self.buffers if tensor in b.tensors), None)

    def to_dict(self) -> dict:
        return {"size": self.size, "lower_bound": self.lower_bound, "peak_op": self.peak_op,
                "peak_op_name": self.peak_op_name, "buffers": len(self.buffers), "views": self.views,
                "persistent_bytes": self.persistent, "scratch_bytes": self.scratch,
                "lower_bound_with_scratch": self.lower_bound_with_scratch or self.lower_bound,
                "over_lower_bound_percent": round(100 * (self.size - self.lower_bound) / self.lower_bound, 1)
                if self.lower_bound else 0.0}


def tensor_bytes(ir: ModelIR, index: int) -> int:
    t = ir.tensors[index]
    return t.elements * _ITEM.get(t.dtype, 1)


def scratch_id(op: int) -> int:
    """The pseudo tensor index of op ``op``'s scratch buffer in a plan (negative: no real tensor)."""
    return -1 - op


def plan(ir: ModelIR, scratch: dict[int, int] | None = None) -> MemoryPlan:
    """The plan of the main graph (subgraph 0), with ``scratch`` buffers (op -> bytes) planned in."""
    ops = [op for op in ir.operators if op.subgraph == 0]
    buffers, views = _buffers(ir, ops)
    extra = [Buffer((scratch_id(op),), size, op, op) for op, size in sorted((scratch or {}).items()) if size > 0]
    placed = _place(buffers + extra)
    size = max((b.offset + b.size for b in placed), default=0)
    bound, peak = _peak(buffers, len(ops))
    with_scratch = _peak(buffers + extra, len(ops))[0] if extra else bound
    persistent = sum(tensor_bytes(ir, t.index) for t in ir.tensors if t.is_variable)
    return MemoryPlan(tuple(sorted(placed, key=lambda b: (b.first, b.tensors))), size, bound, peak,
                      ops[peak].name if 0 <= peak < len(ops) else "", persistent, views,
                      max((b.size for b in extra), default=0), with_scratch)


def _buffers(ir: ModelIR, ops: list[Operator]) -> tuple[list[Buffer], int]:
    """Each activation's lifetime, with views merged into the buffer of the tensor they view."""
    planned = {t.index for t in ir.tensors if not t.is_constant and not t.is_variable}
    end = max(len(ops) - 1, 0)
    first: dict[int, int] = {t.index: 0 for t in ir.inputs if t.index in planned}
    last: dict[int, int] = dict(first)
    owner: dict[int, int] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            if t in planned:
                first.setdefault(t, i)
                last[t] = i
        for t in op.outputs:
            if t in planned:
                first.setdefault(t, i)
                last[t] = max(last.get(t, i), i)
        source = op.inputs[0] if op.inputs else -1
        if op.name in VIEWS and op.outputs and source in planned and op.outputs[0] in planned:
            owner[op.outputs[0]] = owner.get(source, source)
    for t in ir.outputs:
        if t.index in planned:
            first.setdefault(t.index, end)
            last[t.index] = end
    groups: dict[int, list[int]] = {}
    for t in first:
        groups.setdefault(owner.get(t, t), []).append(t)
    return [Buffer(tuple(sorted(ts)), max(tensor_bytes(ir, t) for t in ts), min(first[t] for t in ts),
                   max(last[t] for t in ts)) for ts in groups.values()], len(owner)


def aligned(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _place(buffers: list[Buffer]) -> list[Buffer]:
    """Largest first, each at the lowest aligned offset free over its lifetime."""
    placed: list[Buffer] = []
    for b in sorted(buffers, key=lambda b: (-b.size, b.first, b.tensors)):
        taken = sorted((p.offset, p.offset + aligned(p.size)) for p in placed
                       if p.first <= b.last and b.first <= p.last)
        offset = 0
        for start, stop in taken:
            if offset + b.size <= start:
                break
            offset = max(offset, stop)
        placed.append(Buffer(b.tensors, b.size, b.first, b.last, offset))
    return placed


def _peak(buffers: list[Buffer], n_ops: int) -> tuple[int, int]:
    best, at = 0, -1
    for i in range(n_ops):
        live = sum(b.size for b in buffers if b.first <= i <= b.last)
        if live > best:
            best, at = live, i
    return best, at
