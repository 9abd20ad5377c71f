"""Activation ranges beyond min/max, on the TFLite converter's own flow.

The converter quantizes in two steps: it calibrates (runs the float model on the representative data
and records each activation tensor's min and max in the model) and then quantizes from those records.
tfgen stops after the first step, replaces the recorded ranges by those a method chooses, and hands
the model to the converter's second step, so the result is the converter's own full-INT8 model, only
with other activation ranges. With the ``minmax`` method, the ranges are left alone and the tensors and
buffers are exactly the converter's.

Methods, each a range [lo, hi] per activation tensor from that tensor's values over the calibration
data (sampled down to ``SAMPLE_CAP`` values per tensor):

- ``minmax``: the calibration min and max (the converter's default);
- ``percentile``: the ``p`` and ``100 - p`` percentiles (p = 99.99 by default), so a few outliers no
  longer set the range;
- ``mse``: the range whose int8 quantization (scale, zero point and clamping as TFLite computes them)
  gives the least mean squared error over the values.

Ranges always contain 0 and never exceed the calibration min/max. Ops whose int8 kernels need the same
scale on input and output (pooling, reshapes, padding...) pass their input's range on to their output.

Bias correction (Nagel et al., "Data-Free Quantization", 2019): the int8 weights of a convolution or
fully-connected layer differ from the float weights by ``dW``; on average that shifts each output
channel by ``dW . E[x]``. The correction subtracts this shift from the int32 bias, with ``E[x]`` the
mean of the layer's float input over the calibration data.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from codegen.model import numerics
from codegen.toolchain import proc
from codegen.errors import TfgenError

METHODS = ("minmax", "percentile", "mse")
CHOICES = (*METHODS, "auto")           # auto: try them all, keep the best (codegen.quantize.quantize)
DEFAULT_PERCENTILE = 99.99
SAMPLE_CAP = 1 << 17            # values kept per tensor for percentile and mse
SEED = 0
# Ops whose int8 kernels take their output's scale and zero point from their input.
SAME_SCALE_OPS = frozenset({
    "AVERAGE_POOL_2D", "MAX_POOL_2D", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "PAD",
    "PADV2", "SLICE", "STRIDED_SLICE", "GATHER", "SPACE_TO_DEPTH", "DEPTH_TO_SPACE",
    "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "SPLIT", "SPLIT_V", "UNPACK"})
# weight layouts: CONV_2D [O, KH, KW, I]; DEPTHWISE_CONV_2D [1, KH, KW, O]; FULLY_CONNECTED [O, K]
BIAS_CORRECTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


@dataclass(frozen=True)
class Observed:
    """One activation tensor of the calibrated float model, over the calibration data."""
    index: int
    name: str
    lo: float                   # the converter's recorded min and max
    hi: float
    sample: np.ndarray          # its values, sampled down to SAMPLE_CAP (float32, flat)
    mean: np.ndarray            # its mean over the calibration rows (shape of one row's tensor)


# --- the converter's flow ------------------------------------------------------------------------

def _tf():
    from codegen.quantize.tfimport import import_tensorflow
    return import_tensorflow()


def _fb():
    from tensorflow.lite.tools import flatbuffer_utils
    return flatbuffer_utils


@lru_cache(maxsize=1)
def _op_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _op_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    return _op_names().get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")


def _name(tensor) -> str:
    return tensor.name.decode("utf-8", "replace") if isinstance(tensor.name, bytes) else str(tensor.name)


def quantize_calibrated(calibrated: bytes, per_channel: bool) -> bytes:
    """The converter's second step on a calibrated model: full INT8, int8 inputs and outputs."""
    tf = _tf()
    from tensorflow.lite.python import convert, lite
    log: list[str] = []
    with proc.native_stderr(log):
        model = convert.mlir_quantize(calibrated, not per_channel, input_data_type=tf.int8,
                                      output_data_type=tf.int8)
        return bytes(lite._deduplicate_readonly_buffers(model))


def recorded_ranges(calibrated: bytes) -> dict[int, tuple[float, float]]:
    """The min/max the converter recorded per activation tensor (subgraph 0)."""
    model = _fb().convert_bytearray_to_object(calibrated)
    found = {}
    for i, t in enumerate(model.subgraphs[0].tensors):
        q = t.quantization
        if q is not None and q.min is not None and q.max is not None and len(q.min) == 1:
            found[i] = (float(q.min[0]), float(q.max[0]))
    return found


def _float_runs(calibrated: bytes, rows: list[np.ndarray]):
    """Run the calibrated (float) model on each row keeping every tensor; yield the interpreter
    after each invoke."""
    tf = _tf()
    interp = tf.lite.Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True,
                                 experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp.allocate_tensors()
    inputs = interp.get_input_details()
    for v in range(rows[0].shape[0]):
        interp.reset_all_variables()
        for d, arr in zip(inputs, rows):
            interp.set_tensor(d["index"], arr[v:v + 1].astype(d["dtype"], copy=False))
        interp.invoke()
        yield interp


def observe(calibrated: bytes, calib: list[np.ndarray]) -> dict[int, Observed]:
    """Run the calibrated float model on the calibration rows and gather each recorded activation's
    values (sampled) and mean."""
    ranges = recorded_ranges(calibrated)
    tensors = _fb().convert_bytearray_to_object(calibrated).subgraphs[0].tensors
    n = calib[0].shape[0]
    per_row = -(-SAMPLE_CAP // n)
    rng = np.random.default_rng(SEED)
    samples: dict[int, list[np.ndarray]] = {i: [] for i in ranges}
    sums: dict[int, np.ndarray] = {}
    for interp in _float_runs(calibrated, calib):
        for i in ranges:
            x = np.asarray(interp.get_tensor(i), np.float32)
            sums[i] = sums[i] + x[0] if i in sums else x[0].astype(np.float64)
            flat = x.ravel()
            samples[i].append(flat if flat.size <= per_row else rng.choice(flat, per_row, replace=False))
    return {i: Observed(i, _name(tensors[i]), lo, hi, np.concatenate(samples[i]), sums[i] / n)
            for i, (lo, hi) in ranges.items()}


def float_tensors(calibrated: bytes, rows: list[np.ndarray], names: set[str]) -> dict[str, np.ndarray]:
    """The float model's tensors of these names on each row, stacked: (rows, *tensor shape)."""
    tensors = _fb().convert_bytearray_to_object(calibrated).subgraphs[0].tensors
    wanted = {_name(t): i for i, t in enumerate(tensors) if _name(t) in names}
    got: dict[str, list[np.ndarray]] = {k: [] for k in wanted}
    for interp in _float_runs(calibrated, rows):
        for k, i in wanted.items():
            got[k].append(np.array(interp.get_tensor(i), np.float32, copy=True))
    return {k: np.stack(v) for k, v in got.items()}


# --- choosing a range ----------------------------------------------------------------------------

def int8_params(lo: float, hi: float) -> tuple[float, int]:
    """Scale and zero point the converter derives from a range: widened to contain 0, 255 steps,
    the zero point rounded and clamped."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo <= 0:
        return 1.0, 0
    scale = (hi - lo) / 255.0
    return scale, int(np.clip(numerics.round_half_away(-128 - lo / scale), -128, 127))


def fake_quant(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``x`` through int8 quantization with the range [lo, hi], as TFLite quantizes."""
    scale, zp = int8_params(lo, hi)
    return numerics.dequantize(numerics.quantize(x, scale, zp), scale, zp)


def quant_mse(x: np.ndarray, lo: float, hi: float) -> float:
    return float(np.mean((x - fake_quant(x, lo, hi)) ** 2))


def range_percentile(x: np.ndarray, lo: float, hi: float, p: float = DEFAULT_PERCENTILE) -> tuple[float, float]:
    """The (100 - p)th and pth percentiles, within [lo, hi] and containing 0."""
    a, b = np.percentile(x, [100.0 - p, p]) if x.size else (lo, hi)
    return float(min(max(a, lo), 0.0)), float(max(min(b, hi), 0.0))


def _candidates(tail: np.ndarray, end: float) -> np.ndarray:
    """Clipping points for one side: upper quantiles of ``tail`` (>0) down to its median, where the
    values are dense, and an even grid up to ``end``, for the gaps between outliers."""
    if tail.size == 0:
        return np.array([end])
    qs = 1.0 - np.geomspace(1e-6, 0.5, 48)
    return np.unique(np.concatenate([np.quantile(tail, qs), end * np.arange(1, 33) / 32]))


def range_mse(x: np.ndarray, lo: float, hi: float, rounds: int = 2) -> tuple[float, float]:
    """The range in [lo, hi] (containing 0) with the least int8 quantization MSE over ``x``: a
    coordinate search over clipping points of each side taken from the values' own tail quantiles."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    best_lo, best_hi = lo, hi
    highs = _candidates(x[x > 0], hi) if hi > 0 else np.array([hi])
    lows = -_candidates(-x[x < 0], -lo) if lo < 0 else np.array([lo])
    for _ in range(rounds):
        best_hi = float(min(highs, key=lambda h: (quant_mse(x, best_lo, h), -h)))
        best_lo = float(min(lows, key=lambda low: (quant_mse(x, low, best_hi), low)))
    return best_lo, best_hi


def choose_ranges(calibrated: bytes, observed: dict[int, Observed], method: str,
                  percentile: float = DEFAULT_PERCENTILE) -> dict[int, tuple[float, float]]:
    """Each activation tensor's range under ``method``; same-scale ops pass their input's range on."""
    if method not in METHODS:
        raise TfgenError(f"unknown calibration method {method!r}", f"use one of {', '.join(METHODS)} or auto")
    chosen = {}
    for i, o in observed.items():
        if method == "minmax":
            chosen[i] = (o.lo, o.hi)
        elif method == "percentile":
            chosen[i] = range_percentile(o.sample, o.lo, o.hi, percentile)
        else:
            chosen[i] = range_mse(o.sample, o.lo, o.hi)
    model = _fb().convert_bytearray_to_object(calibrated)
    for op in model.subgraphs[0].operators:
        if _op_name(model, op) in SAME_SCALE_OPS and len(op.inputs) and op.inputs[0] in chosen:
            for out in op.outputs:
                if out in chosen:
                    chosen[out] = chosen[op.inputs[0]]
    return chosen


def with_ranges(calibrated: bytes, ranges: dict[int, tuple[float, float]]) -> bytes:
    """The calibrated model with these recorded ranges instead of its own."""
    fb = _fb()
    model = fb.convert_bytearray_to_object(calibrated)
    tensors = model.subgraphs[0].tensors
    for i, (lo, hi) in ranges.items():
        tensors[i].quantization.min = np.array([lo], np.float32)
        tensors[i].quantization.max = np.array([hi], np.float32)
    return bytes(fb.convert_object_to_bytearray(model))


# --- bias correction -----------------------------------------------------------------------------

def correct_bias(int8_model: bytes, calibrated: bytes, observed: dict[int, Observed]) -> tuple[bytes, int]:
    """Subtract each conv/FC output channel's expected weight-quantization error from its int32 bias.

    Layers are matched to the calibrated float model by their output tensor's name. Returns the new
    model and the number of layers corrected.
    """
    fb = _fb()
    qm = fb.convert_bytearray_to_object(int8_model)
    fm = fb.convert_bytearray_to_object(calibrated)
    fsg, qsg = fm.subgraphs[0], qm.subgraphs[0]
    float_ops = {_name(fsg.tensors[op.outputs[0]]): op for op in fsg.operators if len(op.outputs)}
    users: dict[int, int] = {}
    for t in qsg.tensors:
        users[t.buffer] = users.get(t.buffer, 0) + 1
    corrected = 0
    for op in qsg.operators:
        kind = _op_name(qm, op)
        if kind not in BIAS_CORRECTED_OPS or len(op.inputs) < 3 or op.inputs[2] < 0:
            continue
        fop = float_ops.get(_name(qsg.tensors[op.outputs[0]]))
        if fop is None or len(fop.inputs) < 3 or fop.inputs[0] not in observed:
            continue
        w_q, b_q, x_q = (qsg.tensors[op.inputs[k]] for k in (1, 2, 0))
        w_f = _buffer(fm, fsg.tensors[fop.inputs[1]], np.float32)
        if w_f is None or tuple(w_f.shape) != tuple(w_q.shape) or b_q.type != 2:   # 2: INT32
            continue
        w_scales = np.asarray(w_q.quantization.scale, np.float64)
        axis = w_q.quantization.quantizedDimension if w_scales.size > 1 else 0
        shape = [1] * w_f.ndim
        if w_scales.size > 1:
            shape[axis] = -1
        w_deq = (_buffer(qm, w_q, np.int8).astype(np.float64)
                 - np.asarray(w_q.quantization.zeroPoint, np.float64).reshape(shape)) * w_scales.reshape(shape)
        shift = _mean_shift(kind, w_deq - w_f, observed[fop.inputs[0]].mean.astype(np.float64))
        if shift is None:
            continue
        out_channels = shift.size
        bias_scale = float(x_q.quantization.scale[0]) * np.broadcast_to(w_scales, (out_channels,))
        bias = _buffer(qm, b_q, np.int32).astype(np.int64)
        new = np.clip(bias - np.round(shift / bias_scale).astype(np.int64), -2**31, 2**31 - 1).astype("<i4")
        if np.array_equal(new, bias):
            continue
        if users[b_q.buffer] > 1:               # a buffer shared after deduplication: give it its own
            qm.buffers.append(type(qm.buffers[b_q.buffer])())
            users[b_q.buffer] -= 1
            b_q.buffer = len(qm.buffers) - 1
            users[b_q.buffer] = 1
        qm.buffers[b_q.buffer].data = np.frombuffer(new.tobytes(), np.uint8)
        corrected += 1
    return bytes(fb.convert_object_to_bytearray(qm)), corrected


def _mean_shift(kind: str, err: np.ndarray, mean: np.ndarray) -> np.ndarray | None:
    """Per output channel, the weight error ``err`` times the mean input (None: shapes that do not
    fit this layer kind, e.g. grouped convolutions; such a layer is left alone)."""
    if kind == "FULLY_CONNECTED":
        if mean.size % err.shape[1]:
            return None
        return err @ mean.reshape(-1, err.shape[1]).mean(axis=0)
    per_in = mean.reshape(-1, mean.shape[-1]).mean(axis=0)          # per input channel
    if kind == "CONV_2D":
        return err.sum(axis=(1, 2)) @ per_in if err.shape[3] == per_in.size else None
    if err.shape[3] % per_in.size:                                  # depthwise: output o reads o // multiplier
        return None
    return err.sum(axis=(0, 1, 2)) * np.repeat(per_in, err.shape[3] // per_in.size)


def _buffer(model, tensor, dtype) -> np.ndarray | None:
    data = model.buffers[tensor.buffer].data
    if data is None:
        return None
    return np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.dtype(dtype).newbyteorder("<")).reshape(tensor.shape)
