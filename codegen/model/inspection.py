"""Inspect: .tflite bytes -> ModelIR, and the checks that decide whether TFLM firmware can run it.

The flatbuffer is read with the schema binding that the ``tflite_micro`` wheel ships. Models are
untrusted input: every count and index read from the file is bounded by the file's size before it is
used, so corrupted files end in a ``TfgenError``, never in a hang, a traceback or a huge allocation.
"""
from __future__ import annotations

import hashlib
import struct
from math import prod
from pathlib import Path

from codegen.errors import TfgenError
from codegen.model import memplan
from codegen.model.ir import FLOAT_TYPES, ModelIR, Operator, OpUse, Quantization, Tensor
from codegen.model.tflm_ops import load_op_set

# Ops whose presence means variables were not frozen into constants.
VARIABLE_OPS = frozenset({"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE"})

QUANTIZE_HINT = ("convert the Keras/SavedModel source to full INT8 with "
                 "`tfgen quantize MODEL --calib DATA -o model_int8.tflite`")


def schema():
    """The flatbuffer schema binding the tflite_micro wheel ships (its module path varies by build)."""
    from tflite_micro.python.tflite_micro import runtime
    return runtime.schema_fb


def _text(raw: bytes | None, default: str = "") -> str:
    """A string from the file, with control characters escaped: names end up in one-line errors."""
    if not raw:
        return default
    return "".join(c if c.isprintable() else (f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
                   for c in raw.decode("utf-8", "replace"))


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


class _Reader:
    """Bounds every vector length read from an untrusted flatbuffer and caps the total work."""

    def __init__(self, buf: bytes, source: str):
        self.buf = buf
        self.source = source
        self.budget = 4 * len(buf) + 10_000      # elements visited one by one, over the whole model

    def count(self, n: int, elem_size: int, what: str) -> int:
        if n < 0 or n * elem_size > len(self.buf):
            raise self.corrupt(f"{what} claims {n} entries, more than the file can hold")
        self.budget -= n
        if self.budget < 0:
            raise self.corrupt("its tables reference more entries than the file holds")
        return n

    def corrupt(self, detail: str) -> TfgenError:
        return TfgenError(f"{self.source}: not a valid .tflite model ({detail})",
                          "the file is corrupt or truncated; re-export it from TensorFlow")


def load_model_bytes(path: Path) -> bytes:
    """Read a .tflite file, with one clear error for the usual mistakes."""
    path = Path(path)
    if not path.exists():
        raise TfgenError(f"{path}: no such file", "check the path to the .tflite model")
    if path.is_dir():
        raise TfgenError(f"{path}: is a directory, expected a .tflite file",
                         "a SavedModel directory goes to `tfgen quantize` first")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TfgenError(f"{path}: cannot read ({exc.strerror})", "check the file's permissions")


def parse_model(buf: bytes, source: str) -> ModelIR:
    """Parse .tflite bytes into the IR. Raises TfgenError for anything that is not a valid model."""
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise TfgenError(f"{source}: not a TFLite flatbuffer (no 'TFL3' identifier at byte 4)",
                         "pass a .tflite file written by the TFLite converter")
    reader = _Reader(buf, source)
    try:
        return _parse(buf, source, reader)
    except TfgenError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError,
            RecursionError, MemoryError, AttributeError) as exc:
        kind = type(exc).__name__ if type(exc).__module__ == "builtins" else \
            f"{type(exc).__module__}.{type(exc).__name__}"
        raise reader.corrupt(f"{kind} while reading the flatbuffer: {exc}") from exc


def _parse(buf: bytes, source: str, r: _Reader) -> ModelIR:
    fb = schema()
    op_names = _enum_names(fb.BuiltinOperator)
    type_names = {k: v.lower() for k, v in _enum_names(fb.TensorType).items()}
    op_set = load_op_set()

    model = fb.Model.GetRootAs(buf, 0)
    n_buffers = r.count(model.BuffersLength(), 4, "the buffer table")
    buffer_bytes = [_buffer_size(model.Buffers(i), r) for i in range(n_buffers)]

    opcodes = []
    for i in range(r.count(model.OperatorCodesLength(), 4, "the operator-code table")):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = op_names.get(code)
        if name is None:
            raise r.corrupt(f"operator code {i} names builtin op {code}, which the schema lacks")
        custom = name == "CUSTOM"
        if custom:
            raw = oc.CustomCode()
            name = _text(raw, "CUSTOM")
        opcodes.append((name, oc.Version(), custom))

    n_subgraphs = r.count(model.SubgraphsLength(), 4, "the subgraph table")
    if n_subgraphs == 0:
        raise r.corrupt("it has no subgraph")
    operators: list[Operator] = []
    tensor_count = 0
    weights = 0
    float_tensors: list[str] = []
    first_tensors: tuple[Tensor, ...] = ()
    io: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())
    seen_buffers: set[int] = set()
    for s in range(n_subgraphs):
        sg = model.Subgraphs(s)
        tensors = tuple(_tensor(sg.Tensors(t), t, type_names, buffer_bytes, r)
                        for t in range(r.count(sg.TensorsLength(), 4, f"subgraph {s}'s tensor table")))
        tensor_count += len(tensors)
        for t in tensors:
            if t.dtype in FLOAT_TYPES:
                float_tensors.append(t.name)
            if t.is_constant and t.buffer not in seen_buffers:
                seen_buffers.add(t.buffer)
                weights += t.constant_bytes
        for o in range(r.count(sg.OperatorsLength(), 4, f"subgraph {s}'s operator list")):
            operators.append(_operator(sg.Operators(o), o, s, opcodes, tensors, r))
        if s == 0:
            first_tensors = tensors
            io = (_indices(sg.InputsAsNumpy(), sg.InputsLength(), len(tensors), "input", r),
                  _indices(sg.OutputsAsNumpy(), sg.OutputsLength(), len(tensors), "output", r))

    if not io[0] or not io[1]:
        raise r.corrupt("subgraph 0 has no inputs or no outputs")
    ops: dict[str, OpUse] = {}
    for op in operators:
        use = ops.get(op.name)
        versions = tuple(sorted(set((use.versions if use else ()) + (op.version,))))
        method = op_set.method_for(op.name)
        ops[op.name] = OpUse(op.name, versions, (use.count if use else 0) + 1, op.custom,
                             method is not None, method)
    description = model.Description()
    return ModelIR(
        source=source, sha256=hashlib.sha256(buf).hexdigest(), size_bytes=len(buf),
        schema_version=model.Version(),
        description=_text(description),
        subgraph_count=n_subgraphs, tensors=first_tensors, tensor_count=tensor_count,
        operators=tuple(operators),
        inputs=tuple(first_tensors[i] for i in io[0]),
        outputs=tuple(first_tensors[i] for i in io[1]),
        ops=tuple(ops.values()), weights_bytes=weights, float_tensors=tuple(float_tensors))


def _buffer_size(buffer, r: _Reader) -> int:
    if buffer is None:
        return 0
    if buffer.Offset() > 1:                 # data stored after the flatbuffer (models over 2 GB)
        return int(buffer.Size())
    return r.count(buffer.DataLength(), 1, "a buffer") if not buffer.DataIsNone() else 0


def _indices(array, length: int, limit: int, what: str, r: _Reader) -> tuple[int, ...]:
    r.count(length, 4, f"the {what} list")
    if length == 0:
        return ()
    values = tuple(int(v) for v in array)
    for v in values:
        if not 0 <= v < limit:
            raise r.corrupt(f"{what} tensor index {v} is outside the {limit} tensors")
    return values


def _tensor(t, index: int, type_names, buffer_bytes, r: _Reader) -> Tensor:
    n_dims = r.count(t.ShapeLength(), 4, f"tensor {index}'s shape")
    shape = tuple(int(d) for d in t.ShapeAsNumpy()) if n_dims else ()
    if any(d < 0 for d in shape) or prod(shape) > 1 << 40:
        raise r.corrupt(f"tensor {index} has shape {shape}")
    dtype = type_names.get(t.Type())
    if dtype is None:
        raise r.corrupt(f"tensor {index} has unknown type code {t.Type()}")
    buffer = t.Buffer()
    if not 0 <= buffer < len(buffer_bytes):
        raise r.corrupt(f"tensor {index} points at buffer {buffer} of {len(buffer_bytes)}")
    raw_name = t.Name()
    q = t.Quantization()
    quant = None
    if q is not None and q.ScaleLength() > 0:
        n = r.count(q.ScaleLength(), 4, f"tensor {index}'s scales")
        r.count(q.ZeroPointLength(), 8, f"tensor {index}'s zero points")
        quant = Quantization(tuple(float(q.Scale(i)) for i in range(n)),
                             tuple(int(q.ZeroPoint(i)) for i in range(q.ZeroPointLength())),
                             int(q.QuantizedDimension()))
    return Tensor(index=index, name=_text(raw_name, f"tensor_{index}"),
                  dtype=dtype, shape=shape, quantization=quant,
                  constant_bytes=buffer_bytes[buffer], buffer=buffer,
                  is_variable=bool(t.IsVariable()))


def _operator(o, index: int, subgraph: int, opcodes, tensors, r: _Reader) -> Operator:
    code = o.OpcodeIndex()
    if not 0 <= code < len(opcodes):
        raise r.corrupt(f"operator {index} uses operator code {code} of {len(opcodes)}")
    ins = _optional_indices(o.InputsAsNumpy(), o.InputsLength(), len(tensors), index, r)
    outs = _optional_indices(o.OutputsAsNumpy(), o.OutputsLength(), len(tensors), index, r)
    name, version, custom = opcodes[code]
    return Operator(index=index, subgraph=subgraph, name=name, version=version, custom=custom,
                    inputs=ins, outputs=outs, macs=_macs(name, ins, outs, tensors))


def _optional_indices(array, length, limit, op_index, r: _Reader) -> tuple[int, ...]:
    r.count(length, 4, f"operator {op_index}'s tensor list")
    values = tuple(int(v) for v in array) if length else ()
    for v in values:
        if not -1 <= v < limit:
            raise r.corrupt(f"operator {op_index} uses tensor {v} of {limit}")
    return values


def _macs(name: str, ins: tuple[int, ...], outs: tuple[int, ...], tensors) -> int:
    """Multiply-accumulates of the ops that do them; 0 for element-wise and data-movement ops."""
    def shape(i: int) -> tuple[int, ...]:
        return tensors[i].shape if 0 <= i < len(tensors) else ()
    if not outs or len(ins) < 2:
        return 0
    out = prod(shape(outs[0]))
    w = shape(ins[1])
    if name == "CONV_2D" and len(w) == 4:
        return out * w[1] * w[2] * w[3]
    if name == "DEPTHWISE_CONV_2D" and len(w) == 4:
        return out * w[1] * w[2]
    if name == "FULLY_CONNECTED" and len(w) == 2:
        return out * w[1]
    if name == "CONV_3D" and len(w) == 5:
        return out * w[0] * w[1] * w[2] * w[3]
    if name == "TRANSPOSE_CONV" and len(ins) >= 3 and len(w) == 4:
        return prod(shape(ins[2])) * w[0] * w[1] * w[2]
    if name == "BATCH_MATMUL" and shape(ins[0]):
        return out * shape(ins[0])[-1]
    return 0


# TFLM keeps tensor sizes in 32-bit ints (and targets have 32-bit addresses): larger is refused.
MAX_TENSOR_BYTES = (1 << 31) - 1
# The integer dtypes TFLM's kernels take as a model's inputs and outputs.
INTEGER_IO = frozenset({"int8", "int16", "int32", "uint8"})


def float_ops(ir: ModelIR) -> list[str]:
    """The ops that would compute in float: an operator of subgraph 0 with a float input or output.
    Float tensors no operator reads or writes (an LSTM's recorded intermediates, say) do not count."""
    return sorted({op.name for op in ir.operators if op.subgraph == 0 and any(
        0 <= i < len(ir.tensors) and ir.tensors[i].dtype in FLOAT_TYPES for i in op.inputs + op.outputs)})


def quantization_kind(ir: ModelIR) -> str:
    """'int8' (full INT8: int8 inputs and outputs, no float tensor at all), 'integer' (what TFLM runs
    with integer kernels: int8/int16 activations, int8/int16/int32/uint8 inputs and outputs, no op
    computing in float), 'float' (float activations and weights), 'hybrid' (int8 weights, float
    activations), or 'mixed' (an integer graph with float islands or float inputs/outputs)."""
    io_types = {t.dtype for t in ir.inputs + ir.outputs}
    if not ir.float_tensors and io_types == {"int8"}:
        return "int8"
    if io_types <= INTEGER_IO and not float_ops(ir):
        return "integer"
    weight_types = {t.dtype for t in ir.tensors if t.is_constant}
    if io_types <= FLOAT_TYPES and weight_types and weight_types <= FLOAT_TYPES | {"int32"}:
        return "float"
    if io_types <= FLOAT_TYPES and any(op.name in ("QUANTIZE", "DEQUANTIZE") for op in ir.operators):
        return "mixed"
    if io_types <= FLOAT_TYPES:
        return "hybrid"
    return "mixed"


def firmware_problems(ir: ModelIR, full_int8: bool = False) -> list[str]:
    """Everything that keeps this model from running as TFLM firmware with integer kernels (empty:
    fine). ``full_int8``: also require full INT8, as `tfgen quantize` produces."""
    problems = []
    kind = quantization_kind(ir)
    io = ", ".join(f"{t.name}: {t.dtype}" for t in ir.inputs + ir.outputs)
    floats = float_ops(ir)
    if full_int8 and kind != "int8":
        problems.append(f"it is not full INT8 but {kind} (inputs/outputs {io})")
    elif kind in ("float", "hybrid"):
        problems.append(f"it is {kind}, not integer (inputs/outputs {io})")
    elif not {t.dtype for t in ir.inputs + ir.outputs} <= INTEGER_IO:
        problems.append(f"its inputs/outputs are not all integer ({io})")
    if floats and kind not in ("float", "hybrid"):
        problems.append(f"ops that would compute in float: {', '.join(floats)}")
    dequant = sorted({op.name for op in ir.operators if (op.name == "DEQUANTIZE" and op.subgraph == 0) or (
        op.name == "QUANTIZE" and op.subgraph == 0 and op.inputs and 0 <= op.inputs[0] < len(ir.tensors)
        and ir.tensors[op.inputs[0]].dtype in FLOAT_TYPES)})
    if dequant and kind not in ("float", "hybrid") and not set(dequant) <= set(floats):
        problems.append(f"float<->integer conversions between ops: {', '.join(dequant)}")
    if not ir.operators:
        problems.append("it has no operators, so there is nothing to run")
    huge = [t for t in ir.tensors if t.elements * _itemsize(t.dtype) > MAX_TENSOR_BYTES]
    if huge:
        problems.append(f"tensor {huge[0].name!r} holds {huge[0].elements * _itemsize(huge[0].dtype):,} bytes, more "
                        f"than TFLM's 32-bit sizes address ({MAX_TENSOR_BYTES:,})")
    variables = sorted({op.name for op in ir.operators if op.name in VARIABLE_OPS})
    if variables:
        problems.append(f"unfrozen variables ({', '.join(variables)})")
    if ir.unsupported_ops:
        problems.append(f"ops TFLM does not have: {', '.join(ir.unsupported_ops)}")
    return problems


def require_tflm_int8(ir: ModelIR) -> None:
    """Refuse, in one line, a model that TFLM firmware with integer kernels cannot run."""
    problems = firmware_problems(ir)
    if not problems:
        return
    if ir.unsupported_ops and len(problems) == 1:
        raise TfgenError(f"{ir.source}: uses ops TFLM does not have: {', '.join(ir.unsupported_ops)}",
                         f"TFLM's op set ({load_op_set().source}) lacks them; replace those layers "
                         "in the model or implement them as custom ops")
    raise TfgenError(f"{ir.source}: {'; '.join(problems)}", QUANTIZE_HINT)


def summary(ir: ModelIR) -> dict:
    """Plain data for `tfgen inspect --json` and the text report."""
    def tensor(t: Tensor) -> dict:
        q = t.quantization
        return {"name": t.name, "index": t.index, "dtype": t.dtype, "shape": list(t.shape),
                "bytes": t.elements * _itemsize(t.dtype),
                "scale": q.scales[0] if q and len(q.scales) == 1 else (list(q.scales) if q else None),
                "zero_point": q.zero_points[0] if q and len(q.zero_points) == 1 else (
                    list(q.zero_points) if q else None)}
    macs_by_op: dict[str, int] = {}
    for op in ir.operators:
        macs_by_op[op.name] = macs_by_op.get(op.name, 0) + op.macs
    return {
        "model": ir.source, "sha256": ir.sha256, "size_bytes": ir.size_bytes,
        "schema_version": ir.schema_version, "subgraphs": ir.subgraph_count,
        "quantization": quantization_kind(ir),
        "ops": [{"name": u.name, "versions": list(u.versions), "count": u.count, "custom": u.custom,
                 "in_tflm": u.in_tflm, "tflm_method": u.tflm_method, "macs": macs_by_op[u.name]}
                for u in ir.ops],
        "operators": [{"index": o.index, "subgraph": o.subgraph, "op": o.name, "macs": o.macs}
                      for o in ir.operators],
        "inputs": [tensor(t) for t in ir.inputs],
        "outputs": [tensor(t) for t in ir.outputs],
        "tensor_count": ir.tensor_count, "weights_bytes": ir.weights_bytes, "macs": ir.macs,
        "all_ops_in_tflm": not ir.unsupported_ops, "tflm_op_set": load_op_set().source,
        "problems": firmware_problems(ir),
        "memory_plan": memplan.plan(ir).to_dict(),
    }


def _itemsize(dtype: str) -> int:
    return {"int8": 1, "uint8": 1, "bool": 1, "int16": 2, "uint16": 2, "float16": 2, "bfloat16": 2,
            "int32": 4, "uint32": 4, "float32": 4, "int64": 8, "uint64": 8, "float64": 8,
            "complex64": 8, "complex128": 16}.get(dtype, 1)
