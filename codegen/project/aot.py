"""`--runtime aot`: the model as generated C++ that calls the kernels directly, with no interpreter.

Everything TFLM's interpreter works out at start-up is worked out here, at generation time: each op's
parameters exactly as its Prepare computes them in esp-tflite-micro 1.3.8 (the per-channel multipliers
and shifts from ``QuantizeMultiplier``, in double where TFLM uses double and in float where it uses
float), the padding, the activation range, and where every tensor lives in one activation buffer
(``model.memplan``). The template (templates/aot/src/tfgen_aot.cc.j2) places these values in calls to
TFLM's reference kernel functions; the weights stay ``const`` in flash. No flatbuffer, op resolver or
allocator is in the image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from codegen.errors import TfgenError
from codegen.model import memplan
from codegen.model.inspection import schema
from codegen.model.ir import ModelIR, Operator, Tensor
from codegen.project import aot_espnn, cmsis_sizes
from codegen.project.prepare import (activation_range, add_params, compute_padding, logistic_params, mul_params,
                                     per_channel_multipliers, quantize_multiplier, softmax_params, zero_point)

RUNTIMES = ("tflm", "aot")
COVERED = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D", "RESHAPE",
           "SOFTMAX", "ADD", "MUL", "LOGISTIC", "PAD", "CONCATENATION", "MEAN", "TRANSPOSE")
# What the generated code compiles beyond TFLM's headers: MultiplyByQuantizedMultiplier, TfLiteTypeGetName.
TFLM_SOURCES = ("tensorflow/lite/kernels/internal/common.cc", "tensorflow/lite/core/c/common.cc")
CTYPES = {"int8": "std::int8_t", "int16": "std::int16_t", "int32": "std::int32_t", "int64": "std::int64_t",
          "uint8": "std::uint8_t"}
_PADDING = {0: "same", 1: "valid"}                 # schema Padding -> TFLM's padding


@dataclass(frozen=True)
class Constant:
    name: str
    ctype: str
    count: int
    data: str                           # the C initializer's numbers


@dataclass(frozen=True)
class Operand:
    """A tensor as an op sees it: in the activation buffer (``buffer`` >= 0) or a constant array."""
    tensor: int
    ctype: str
    dims: tuple[int, ...]
    buffer: int = -1
    constant: str = ""


@dataclass(frozen=True)
class AotOp:
    index: int
    name: str
    kind: str                           # "conv", "depthwise", "fc", "fc_per_channel", "pool", "softmax", "view"
    operands: dict                      # "input", "filter", "bias", "output" -> Operand (bias may be None)
    params: dict                        # the kernel's parameter struct, field -> value
    per_channel: str = ""               # name of the multiplier/shift arrays' stem, when the op has them
    function: str = ""                  # the kernel function
    cmsis: dict = field(default_factory=dict)   # CMSIS-NN's or esp-nn's dims and params, field -> value
    scratch: int = 0                    # the kernel's scratch buffer, bytes (CMSIS-NN's get_buffer_size)
    scratch_buffer: int = -1            # its buffer in the plan


@dataclass(frozen=True)
class AotPlan:
    ops: tuple[AotOp, ...]
    constants: tuple[Constant, ...]
    offsets: tuple[int, ...]            # each buffer's offset in the activation buffer
    per_op_offsets: tuple[int, ...]     # the same buffers, none reused (the --per-op build keeps every tensor)
    activation_bytes: int
    per_op_bytes: int
    inputs: tuple[int, ...]             # the buffer of each graph input, of each output
    outputs: tuple[int, ...]
    op_outputs: tuple[tuple[int, int, int, int], ...] = field(default=())   # (op, tensor, buffer, bytes)
    memory: memplan.MemoryPlan | None = None
    kernels: str = "reference"          # "reference" (TFLM's kernel functions), "cmsis-nn" or "esp-nn"
    scratch_bytes: int = 0              # the largest kernel scratch buffer (live only during its op)


def uncovered_ops(ir: ModelIR) -> list[str]:
    return [u.name for u in ir.ops if u.name not in COVERED]


def check_runtime(ir: ModelIR, runtime: str) -> None:
    if runtime == "tflm":
        return
    if runtime not in RUNTIMES:
        raise TfgenError(f"no runtime {runtime!r}", f"pass --runtime {' or '.join(RUNTIMES)}")
    missing = uncovered_ops(ir)
    if missing:
        raise TfgenError(f"{ir.source}: --runtime aot does not cover {', '.join(missing)} yet (it covers "
                         f"{', '.join(COVERED)})", "use --runtime tflm (the default), which runs every TFLM op")
    wide = sorted({t.dtype for t in ir.tensors if not t.is_constant and t.dtype != "int8"})
    if wide:
        raise TfgenError(f"{ir.source}: --runtime aot runs int8 activations so far, this model has {', '.join(wide)} "
                         "ones", "use --runtime tflm (the default), which runs 16x8 models too")
    if ir.subgraph_count != 1:
        raise TfgenError(f"{ir.source}: --runtime aot compiles one graph, this model has {ir.subgraph_count}",
                         "use --runtime tflm (the default)")


def lower(ir: ModelIR, model: bytes, kernels: str = "reference", core: str = "", chip: str = "") -> AotPlan:
    """The aot plan of a model whose ops are all COVERED (``check_runtime`` first), calling TFLM's
    reference kernel functions, CMSIS-NN's (``kernels`` "cmsis-nn", for a Cortex-M ``core``) or esp-nn's
    (``kernels`` "esp-nn", for the ESP-IDF target ``chip``: aot_espnn.py)."""
    fb = schema()
    m = fb.Model.GetRootAs(model, 0)
    graph = m.Subgraphs(0)
    if kernels == "cmsis-nn" and core not in cmsis_sizes.CORES:
        cores = ", ".join(sorted(cmsis_sizes.CORES))
        raise TfgenError(f"--runtime aot with CMSIS-NN is built for {cores}, not {core}",
                         "pass --kernels reference, or use --runtime tflm")
    if kernels == "esp-nn":
        aot_espnn.check_chip(chip)
    probe = memplan.plan(ir)
    buffer_of = {t: b for b, buf in enumerate(probe.buffers) for t in buf.tensors}
    constants: dict[int, Constant] = {}

    def operand(index: int) -> Operand | None:
        if index < 0:
            return None
        t = ir.tensors[index]
        ctype = CTYPES.get(t.dtype)
        if ctype is None:
            raise TfgenError(f"{ir.source}: tensor {t.name!r} is {t.dtype}; --runtime aot takes integer tensors",
                             "use --runtime tflm")
        if t.is_constant:
            if index not in constants:
                constants[index] = _constant(m, t, ctype)
            return Operand(index, ctype, t.shape, constant=constants[index].name)
        return Operand(index, ctype, t.shape, buffer=buffer_of[index])

    ops, extra = [], []
    for i, op in enumerate(o for o in ir.operators if o.subgraph == 0):
        lowered, arrays = _lower_op(ir, op, graph.Operators(i), fb, operand, lambda t: _values(m, ir.tensors[t]))
        if kernels == "cmsis-nn":
            lowered, more = cmsis_op(ir, lowered, cmsis_sizes.path(core))
            arrays += more
        elif kernels == "esp-nn":
            lowered = _as_esp(lowered, aot_espnn.esp_lowering(lowered, chip))
        ops.append(lowered)
        extra += arrays
    scratch = {o.index: o.scratch for o in ops if o.scratch}
    mem = memplan.plan(ir, scratch)
    buffer_of = {t: b for b, buf in enumerate(mem.buffers) for t in buf.tensors}
    ops = [_rebuffer(o, buffer_of) for o in ops]
    sizes = [memplan.aligned(b.size) for b in mem.buffers]
    seq = tuple(int(s) for s in np.cumsum([0, *sizes[:-1]])) if sizes else ()
    op_outputs = tuple((o.index, t, buffer_of[t], memplan.tensor_bytes(ir, t))
                       for o, op in zip(ops, (x for x in ir.operators if x.subgraph == 0))
                       for t in op.outputs if t in buffer_of)
    return AotPlan(tuple(ops), tuple(constants.values()) + tuple(extra), tuple(b.offset for b in mem.buffers), seq,
                   max(mem.size, 16), max(sum(sizes), 16), tuple(buffer_of[t.index] for t in ir.inputs),
                   tuple(buffer_of[t.index] for t in ir.outputs), op_outputs, mem, kernels,
                   max(scratch.values(), default=0))


def _as_esp(op: AotOp, lowering: tuple | None) -> AotOp:
    if lowering is None:
        return op
    kind, function, structs, scratch = lowering
    return AotOp(op.index, op.name, kind, op.operands, op.params, op.per_channel, function, structs, scratch)


def _rebuffer(op: AotOp, buffer_of: dict[int, int]) -> AotOp:
    """The op's operands and scratch in the final plan's buffers (scratch changes the numbering)."""
    operands = {role: (o if o is None or o.buffer < 0 else Operand(o.tensor, o.ctype, o.dims, buffer_of[o.tensor]))
                for role, o in op.operands.items()}
    return AotOp(op.index, op.name, op.kind, operands, op.params, op.per_channel, op.function, op.cmsis, op.scratch,
                 buffer_of.get(memplan.scratch_id(op.index), -1))


def _values(m, t: Tensor) -> np.ndarray:
    raw = m.Buffers(t.buffer).DataAsNumpy()
    return np.frombuffer(np.asarray(raw, np.uint8).tobytes(), np.dtype(t.dtype).newbyteorder("<"))


def _constant(m, t: Tensor, ctype: str) -> Constant:
    values = _values(m, t)
    return Constant(f"k_t{t.index}", ctype, int(values.size), ", ".join(map(str, values.tolist())))


def _lower_op(ir: ModelIR, op: Operator, fop, fb, operand, values) -> tuple[AotOp, list[Constant]]:
    ins = [operand(t) for t in op.inputs]
    out = operand(op.outputs[0])
    table = fop.BuiltinOptions()
    if op.name in ("LOGISTIC", "PAD", "CONCATENATION", "TRANSPOSE"):
        return _data_movement(ir, op, fb, table, ins, out, values), []
    if op.name == "MEAN":
        return _mean(ir, op, fb, table, ins, out, values), []
    if op.name == "RESHAPE":
        return AotOp(op.index, op.name, "view", {"input": ins[0], "output": out}, {}), []
    if op.name == "SOFTMAX":
        opts = _options(fb.SoftmaxOptions, table)
        return AotOp(op.index, op.name, "softmax", {"input": ins[0], "output": out},
                     softmax_params(ir.tensors[op.inputs[0]], ir.tensors[op.outputs[0]], float(opts.Beta())),
                     function="tflite::reference_ops::Softmax"), []
    if op.name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        opts = _options(fb.Pool2DOptions, table)
        pad_h, pad_w = compute_padding(opts.StrideH(), opts.StrideW(), 1, 1, ins[0].dims[1], ins[0].dims[2],
                                       opts.FilterHeight(), opts.FilterWidth(), _PADDING[opts.Padding()])
        lo, hi = activation_range(ir.tensors[op.outputs[0]], opts.FusedActivationFunction())
        params = {"stride_height": opts.StrideH(), "stride_width": opts.StrideW(),
                  "filter_height": opts.FilterHeight(), "filter_width": opts.FilterWidth(),
                  "padding_values.height": pad_h, "padding_values.width": pad_w,
                  "quantized_activation_min": lo, "quantized_activation_max": hi}
        fn = "AveragePool" if op.name == "AVERAGE_POOL_2D" else "MaxPool"
        return AotOp(op.index, op.name, "pool", {"input": ins[0], "output": out}, params,
                     function=f"tflite::reference_integer_ops::{fn}"), []
    if op.name == "FULLY_CONNECTED":
        return _fully_connected(ir, op, fb, table, ins, out)
    if op.name in ("ADD", "MUL"):
        opts = _options(fb.AddOptions if op.name == "ADD" else fb.MulOptions, table)
        make = add_params if op.name == "ADD" else mul_params
        return AotOp(op.index, op.name, op.name.lower(), {"input": ins[0], "input2": ins[1], "output": out},
                     make(ir.tensors[op.inputs[0]], ir.tensors[op.inputs[1]], ir.tensors[op.outputs[0]],
                          opts.FusedActivationFunction()),
                     function=f"tflite::reference_integer_ops::{op.name.title()}"), []
    return _convolution(ir, op, fb, table, ins, out)


def _data_movement(ir: ModelIR, op: Operator, fb, table, ins: list, out: Operand, values) -> AotOp:
    """LOGISTIC (logistic_common.cc), TRANSPOSE, PAD (pad_common.cc: paddings from its constant tensor) and
    CONCATENATION (inputs of the output's scale and zero point, as TFLM requires)."""
    i_t, o_t = ir.tensors[op.inputs[0]], ir.tensors[op.outputs[0]]
    if op.name == "LOGISTIC":
        return AotOp(op.index, op.name, "logistic", {"input": ins[0], "output": out}, logistic_params(i_t),
                     function="tflite::reference_integer_ops::Logistic")
    if op.name == "TRANSPOSE":                      # transpose.cc: the permutation from its constant tensor
        perm = [int(v) for v in values(op.inputs[1]).tolist()]
        return AotOp(op.index, op.name, "transpose", {"input": ins[0], "output": out},
                     {"perm_count": len(perm), **{f"perm[{k}]": v for k, v in enumerate(perm)}},
                     function="tflite::reference_ops::Transpose")
    if op.name == "PAD":
        pads = values(op.inputs[1]).reshape(-1, 2).tolist()
        pad_value = zero_point(o_t) if len(op.inputs) < 3 or op.inputs[2] < 0 else int(values(op.inputs[2])[0])
        image = len(pads) == 4 and pads[0] == [0, 0] and pads[3] == [0, 0]
        params = {"left_padding_count": len(pads), "right_padding_count": len(pads),
                  **{f"left_padding[{k}]": lr[0] for k, lr in enumerate(pads)},
                  **{f"right_padding[{k}]": lr[1] for k, lr in enumerate(pads)},
                  "resizing_category": "tflite::ResizingCategory::k" + ("ImageStyle" if image else "GenericResize")}
        return AotOp(op.index, op.name, "pad", {"input": ins[0], "output": out}, params | {"pad_value": pad_value},
                     function="tflite::reference_ops::" + ("PadImageStyle" if image else "Pad"))
    opts = _options(fb.ConcatenationOptions, table)
    for t in op.inputs:
        q, oq = ir.tensors[t].quantization, o_t.quantization
        if q is None or oq is None or (np.float32(q.scales[0]), zero_point(ir.tensors[t])) != (
                np.float32(oq.scales[0]), zero_point(o_t)):
            raise TfgenError(f"{ir.source}: CONCATENATION op {op.index} joins tensors of other scales than its "
                             "output's, which TFLM refuses", "re-export the model")
    axis = opts.Axis() if opts.Axis() >= 0 else len(o_t.shape) + opts.Axis()
    operands = {f"input{k}": o for k, o in enumerate(ins)} | {"output": out}
    return AotOp(op.index, op.name, "concat", operands, {"axis": axis, "inputs_count": len(ins)},
                 function="tflite::reference_ops::Concatenation")


def _mean(ir: ModelIR, op: Operator, fb, table, ins: list, out: Operand, values) -> AotOp:
    """MEAN for int8 (reduce_common.cc): QuantizedMeanOrSum with the scales' ratio as multiplier, over the
    constant axes, its int32 accumulator a scratch buffer in the plan."""
    i_t, o_t = ir.tensors[op.inputs[0]], ir.tensors[op.outputs[0]]
    opts = _options(fb.ReducerOptions, table)
    axes = [int(a) for a in values(op.inputs[1]).tolist()]
    mult, shift = quantize_multiplier(float(np.float32(i_t.quantization.scales[0]))
                                      / float(np.float32(o_t.quantization.scales[0])))
    params = {"input_zero_point": zero_point(i_t), "output_zero_point": zero_point(o_t), "multiplier": mult,
              "shift": shift, "axes": axes, "keep_dims": bool(opts.KeepDims()),
              "input_dims": list(i_t.shape), "output_dims": list(o_t.shape)}
    return AotOp(op.index, op.name, "mean", {"input": ins[0], "output": out}, params,
                 function="tflite::reference_ops::QuantizedMeanOrSumExtraArgs", scratch=4 * max(o_t.elements, 1))


def _options(cls, table):
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _operands(ins: list, out: Operand) -> dict:
    return {"input": ins[0], "filter": ins[1], "bias": ins[2] if len(ins) > 2 else None, "output": out}


def _fully_connected(ir, op, fb, table, ins, out) -> tuple[AotOp, list[Constant]]:
    opts = _options(fb.FullyConnectedOptions, table)
    i_t, f_t, o_t = (ir.tensors[op.inputs[0]], ir.tensors[op.inputs[1]], ir.tensors[op.outputs[0]])
    lo, hi = activation_range(o_t, opts.FusedActivationFunction())
    params = {"input_offset": -zero_point(i_t), "weights_offset": -zero_point(f_t), "output_offset": zero_point(o_t),
              "quantized_activation_min": lo, "quantized_activation_max": hi}
    if len(f_t.quantization.scales) > 1:
        mults, shifts = per_channel_multipliers(i_t, f_t, o_t)
        stem = f"k_op{op.index}"
        return (AotOp(op.index, op.name, "fc_per_channel", _operands(ins, out), params | {
                    "output_multiplier": 0, "output_shift": 0}, stem,
                      "tflite::reference_integer_ops::FullyConnectedPerChannel"),
                _per_channel_arrays(stem, mults, shifts))
    product = float(np.float32(i_t.quantization.scales[0]) * np.float32(f_t.quantization.scales[0]))
    mult, shift = quantize_multiplier(product / float(np.float32(o_t.quantization.scales[0])))
    return (AotOp(op.index, op.name, "fc", _operands(ins, out),
                  params | {"output_multiplier": mult, "output_shift": shift},
                  function="tflite::reference_integer_ops::FullyConnected"), [])


def _convolution(ir, op, fb, table, ins, out) -> tuple[AotOp, list[Constant]]:
    depthwise = op.name == "DEPTHWISE_CONV_2D"
    opts = _options(fb.DepthwiseConv2DOptions if depthwise else fb.Conv2DOptions, table)
    i_t, f_t, o_t = (ir.tensors[op.inputs[0]], ir.tensors[op.inputs[1]], ir.tensors[op.outputs[0]])
    pad_h, pad_w = compute_padding(opts.StrideH(), opts.StrideW(), opts.DilationHFactor(), opts.DilationWFactor(),
                                   i_t.shape[1], i_t.shape[2], f_t.shape[1], f_t.shape[2], _PADDING[opts.Padding()])
    lo, hi = activation_range(o_t, opts.FusedActivationFunction())
    channels = f_t.shape[3] if depthwise else f_t.shape[0]
    mults, shifts = per_channel_multipliers(i_t, f_t, o_t, channels)
    params = {"input_offset": -zero_point(i_t), "weights_offset": -zero_point(f_t), "output_offset": zero_point(o_t),
              "output_multiplier": 0, "output_shift": 0,
              "padding_type": "tflite::PaddingType::k" + ("Same" if opts.Padding() == 0 else "Valid"),
              "padding_values.height": pad_h, "padding_values.width": pad_w,
              "stride_height": opts.StrideH(), "stride_width": opts.StrideW(),
              "dilation_height_factor": opts.DilationHFactor(), "dilation_width_factor": opts.DilationWFactor(),
              "quantized_activation_min": lo, "quantized_activation_max": hi}
    if depthwise:
        params["depth_multiplier"] = opts.DepthMultiplier()
    stem = f"k_op{op.index}"
    fn = "DepthwiseConvPerChannel" if depthwise else "ConvPerChannel"
    return (AotOp(op.index, op.name, "depthwise" if depthwise else "conv", _operands(ins, out), params, stem,
                  f"tflite::reference_integer_ops::{fn}"), _per_channel_arrays(stem, mults, shifts))


def _per_channel_arrays(stem: str, mults: list[int], shifts: list[int]) -> list[Constant]:
    return [Constant(f"{stem}_multiplier", "std::int32_t", len(mults), ", ".join(map(str, mults))),
            Constant(f"{stem}_shift", "std::int32_t", len(shifts), ", ".join(map(str, shifts)))]


# --- CMSIS-NN: the calls TFLM's cmsis_nn/ wrappers make, with the same parameters --------------------

CMSIS_FUNCTIONS = {"conv": "arm_convolve_wrapper_s8", "depthwise": "arm_depthwise_conv_wrapper_s8",
                   "fc": "arm_fully_connected_wrapper_s8", "fc_1x1": "arm_convolve_1x1_s8_fast",
                   "avg_pool": "arm_avgpool_s8", "max_pool": "arm_max_pool_s8", "softmax": "arm_softmax_s8",
                   "add": "arm_elementwise_add_s8", "mul": "arm_elementwise_mul_s8", "pad": "arm_pad_s8",
                   "transpose": "arm_transpose_s8"}


def _dims(n: int, h: int, w: int, c: int) -> dict:
    return {"n": n, "h": h, "w": w, "c": c}


def cmsis_op(ir: ModelIR, op: AotOp, path: str) -> tuple[AotOp, list[Constant]]:
    """``op`` (lowered for the reference kernels) as TFLM's cmsis_nn/ wrapper calls CMSIS-NN, with the
    scratch buffer CMSIS-NN's get_buffer_size asks for under GCC on the core's ``path`` (cmsis_sizes)."""
    if op.kind == "view":
        return op, []
    p, o = op.params, op.operands
    if op.kind in ("add", "mul"):           # TFLM's wrappers: CMSIS-NN unless the shapes broadcast
        if o["input"].dims != o["input2"].dims:
            return op, []
        return _as_cmsis(op, op.kind, {"size": math.prod(o["output"].dims)}, 0), []
    if op.kind in ("pad", "transpose"):         # cmsis_nn/pad.cc, transpose.cc: the last 4 dimensions
        return _cmsis_movement(op), []
    if op.kind in ("logistic", "concat", "mean"):       # TFLM runs its reference kernels for these
        return op, []
    out = o["output"].dims
    if op.kind in ("conv", "depthwise"):
        i_d, f_d = o["input"].dims, o["filter"].dims
        common = {"input_offset": p["input_offset"], "output_offset": p["output_offset"],
                  "stride.h": p["stride_height"], "stride.w": p["stride_width"],
                  "padding.h": p["padding_values.height"], "padding.w": p["padding_values.width"],
                  "dilation.h": p["dilation_height_factor"], "dilation.w": p["dilation_width_factor"],
                  "activation.min": p["quantized_activation_min"], "activation.max": p["quantized_activation_max"]}
        dims = {"input": _dims(*i_d), "output": _dims(*out), "bias": _dims(1, 1, 1, out[3])}
        if op.kind == "conv":
            dims["filter"] = _dims(1, f_d[1], f_d[2], f_d[3])
            scratch = cmsis_sizes.convolve_wrapper(path, common, dims["input"], dims["filter"], dims["output"])
        else:
            common["ch_mult"] = p["depth_multiplier"]
            dims["filter"] = _dims(f_d[0], f_d[1], f_d[2], out[3])
            scratch = cmsis_sizes.depthwise_wrapper(path, common, dims["input"], dims["filter"], dims["output"])
        return _as_cmsis(op, op.kind, {"params": common, **dims}, scratch), []
    if op.kind in ("fc", "fc_per_channel"):
        return _cmsis_fc(ir, op, path)
    if op.kind == "pool":
        kind = "avg_pool" if op.name == "AVERAGE_POOL_2D" else "max_pool"
        i_d = o["input"].dims
        params = {"stride.h": p["stride_height"], "stride.w": p["stride_width"],
                  "padding.h": p["padding_values.height"], "padding.w": p["padding_values.width"],
                  "activation.min": p["quantized_activation_min"], "activation.max": p["quantized_activation_max"]}
        scratch = cmsis_sizes.avgpool(path, i_d[3]) if kind == "avg_pool" else 0
        return _as_cmsis(op, kind, {"params": params, "input": _dims(i_d[0], i_d[1], i_d[2], i_d[3]),
                                    "output": _dims(out[0], out[1], out[2], i_d[3]),
                                    "filter": _dims(1, p["filter_height"], p["filter_width"], 1)}, scratch), []
    depth = out[-1]
    rows = math.prod(out) // depth if depth else 0
    return _as_cmsis(op, "softmax", {"rows": rows, "row_size": depth}, 0), []


def _cmsis_movement(op: AotOp) -> AotOp:
    """PAD as cmsis_nn/pad.cc calls arm_pad_s8 (rank up to 4, padded to 4 in front); TRANSPOSE as
    transpose.cc calls arm_transpose_s8 (which reads 4 dimensions: rank 4 only, else the reference)."""
    p, dims = op.params, op.operands["input"].dims
    if op.kind == "transpose":
        if len(dims) != 4:
            return op
        return _as_cmsis(op, "transpose", {"input": _dims(*dims), "output": _dims(*op.operands["output"].dims),
                                           "perm": [p[f"perm[{k}]"] for k in range(4)]}, 0)
    rank = len(dims)
    if rank > 4:
        return op
    def four(values, fill):
        return _dims(*([fill] * (4 - rank) + list(values)))
    return _as_cmsis(op, "pad", {"input": four(dims, 1), "pre": four([p[f"left_padding[{k}]"] for k in range(rank)], 0),
                                 "post": four([p[f"right_padding[{k}]"] for k in range(rank)], 0)}, 0)


def _as_cmsis(op: AotOp, kind: str, structs: dict, scratch: int) -> AotOp:
    return AotOp(op.index, op.name, "cmsis_" + kind, op.operands, op.params, op.per_channel,
                 CMSIS_FUNCTIONS[kind], structs, scratch)


def _cmsis_fc(ir: ModelIR, op: AotOp, path: str) -> tuple[AotOp, list[Constant]]:
    """cmsis_nn/fully_connected.cc: a 1x1 convolution where the output has more than 2 dimensions and the
    depth is a multiple of 4 (per-tensor multipliers repeated per channel, here as constants), else
    arm_fully_connected_wrapper_s8."""
    p, o = op.params, op.operands
    f_d, out = o["filter"].dims, o["output"].dims
    accum, depth = f_d[-1], out[-1]
    batches = math.prod(out) // depth
    dims = {"input": _dims(batches, 1, 1, accum), "filter": _dims(accum, 1, 1, depth),
            "bias": _dims(1, 1, 1, depth), "output": _dims(batches, 1, 1, depth)}
    act = {"activation.min": p["quantized_activation_min"], "activation.max": p["quantized_activation_max"]}
    if len(out) > 2 and accum % 4 == 0:
        arrays = []
        stem = op.per_channel
        if op.kind == "fc":
            stem = f"k_op{op.index}"
            arrays = _per_channel_arrays(stem, [p["output_multiplier"]] * depth, [p["output_shift"]] * depth)
        params = {"input_offset": p["input_offset"], "output_offset": p["output_offset"], "stride.h": 1,
                  "stride.w": 1, "padding.h": 0, "padding.w": 0, "dilation.h": 1, "dilation.w": 1, **act}
        lowered = _as_cmsis(op, "fc_1x1", {"params": params, **dims}, 0)
        return AotOp(lowered.index, lowered.name, lowered.kind, lowered.operands, lowered.params, stem,
                     lowered.function, lowered.cmsis, 0), arrays
    params = {"input_offset": p["input_offset"], "filter_offset": p["weights_offset"],
              "output_offset": p["output_offset"], **act}
    quant = {"per_channel": op.kind == "fc_per_channel", "multiplier": p.get("output_multiplier", 0),
             "shift": p.get("output_shift", 0)}
    # MVE: the kernel sums in the scratch, computed before each call as TFLM's wrapper does (arm_vector_sum_s8)
    return _as_cmsis(op, "fc", {"params": params, "quant": quant, **dims, "vector_sum": path == "mve"},
                     cmsis_sizes.fully_connected(path, dims["filter"])), []
