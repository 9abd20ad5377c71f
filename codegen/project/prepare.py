"""TFLM's Prepare arithmetic, in Python, for `--runtime aot` (codegen/project/aot.py).

Each function is the esp-tflite-micro 1.3.8 function its docstring names, step for step: double where
TFLM computes in double, float32 where it computes in float (a product of two float scales, the
quantization of an activation bound), rounding halves away from zero as std::round does. The aot
runtime is byte-exact only if these give TFLM's very numbers; tests/test_aot.py compares whole models
with the oracle op by op.
"""
from __future__ import annotations

import math

import numpy as np

from codegen.errors import TfgenError
from codegen.model.ir import Tensor

_ACTIVATIONS = {0: "none", 1: "relu", 2: "relu_n1_to_1", 3: "relu6"}
INT8_RANGE = (-128, 127)


def zero_point(t: Tensor) -> int:
    return int(t.quantization.zero_points[0]) if t.quantization and t.quantization.zero_points else 0


def round_half_away(x: float) -> int:
    """std::round / TfLiteRound on a double: halves away from zero, exactly (numerics.round_half_away
    adds 0.5, exact only for float32 inputs)."""
    f = math.floor(abs(x))
    r = f + 1 if abs(x) - f >= 0.5 else f
    return int(r if x >= 0 else -r)


def quantize_multiplier(d: float) -> tuple[int, int]:
    """tflite::QuantizeMultiplier (quantization_util.cc; not TFLITE_SINGLE_ROUNDING, as TFLM builds)."""
    if d == 0.0:
        return 0, 0
    q, shift = math.frexp(d)
    fixed = round_half_away(q * (1 << 31))
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def per_channel_multipliers(i_t: Tensor, f_t: Tensor, o_t: Tensor, channels: int | None = None):
    """PopulateConvolutionQuantizationParams (and FC's per-channel path): in double, from float32 scales."""
    scales = f_t.quantization.scales
    n = channels if channels is not None else len(scales)
    in_s, out_s = float(np.float32(i_t.quantization.scales[0])), float(np.float32(o_t.quantization.scales[0]))
    pairs = [quantize_multiplier(in_s * float(np.float32(scales[i if len(scales) > 1 else 0])) / out_s)
             for i in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _quantize(t: Tensor, value: float) -> int:
    """TFLM's Quantize(): float tmp = TfLiteRound(f / scale), in float32."""
    tmp = np.float32(value) / np.float32(t.quantization.scales[0])
    return zero_point(t) + round_half_away(float(tmp))


def activation_range(o_t: Tensor, activation: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 outputs."""
    lo, hi = INT8_RANGE if o_t.dtype == "int8" else (-32768, 32767)
    kind = _ACTIVATIONS.get(activation)
    if kind is None:
        raise TfgenError(f"fused activation {activation} is not an int8 activation TFLM runs", "use --runtime tflm")
    if kind == "relu":
        return max(lo, _quantize(o_t, 0.0)), hi
    if kind == "relu6":
        return max(lo, _quantize(o_t, 0.0)), min(hi, _quantize(o_t, 6.0))
    if kind == "relu_n1_to_1":
        return max(lo, _quantize(o_t, -1.0)), min(hi, _quantize(o_t, 1.0))
    return lo, hi


def compute_padding(stride_h: int, stride_w: int, dil_h: int, dil_w: int, in_h: int, in_w: int,
                    filter_h: int, filter_w: int, padding: str) -> tuple[int, int]:
    """ComputePaddingHeightWidth (tensorflow/lite/kernels/padding.h): the top and left padding."""
    def out_size(size, filt, stride, dil):
        effective = (filt - 1) * dil + 1
        if stride == 0:
            return 0
        return (size + stride - 1) // stride if padding == "same" else (size + stride - effective) // stride

    def pad(stride, dil, size, filt, out):
        effective = (filt - 1) * dil + 1
        total = max((out - 1) * stride + effective - size, 0)
        return total // 2
    return (pad(stride_h, dil_h, in_h, filter_h, out_size(in_h, filter_h, stride_h, dil_h)),
            pad(stride_w, dil_w, in_w, filter_w, out_size(in_w, filter_w, stride_w, dil_w)))


def add_params(a: Tensor, b: Tensor, o_t: Tensor, activation: int) -> dict:
    """CalculateOpDataAdd for int8 (add_common.cc): the larger float32 scale, doubled, in double."""
    left_shift = 20
    sa, sb = np.float32(a.quantization.scales[0]), np.float32(b.quantization.scales[0])
    twice_max = 2 * float(max(sa, sb))
    m1, s1 = quantize_multiplier(float(sa) / twice_max)
    m2, s2 = quantize_multiplier(float(sb) / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << left_shift) * float(np.float32(o_t.quantization.scales[0]))))
    lo, hi = activation_range(o_t, activation)
    return {"left_shift": left_shift, "input1_offset": -zero_point(a), "input1_multiplier": m1,
            "input1_shift": s1, "input2_offset": -zero_point(b), "input2_multiplier": m2, "input2_shift": s2,
            "output_offset": zero_point(o_t), "output_multiplier": mo, "output_shift": so,
            "quantized_activation_min": lo, "quantized_activation_max": hi}


def mul_params(a: Tensor, b: Tensor, o_t: Tensor, activation: int) -> dict:
    """CalculateOpDataMul for int8 (mul_common.cc): the three scales' ratio in double."""
    real = (float(np.float32(a.quantization.scales[0])) * float(np.float32(b.quantization.scales[0]))
            / float(np.float32(o_t.quantization.scales[0])))
    mult, shift = quantize_multiplier(real)
    lo, hi = activation_range(o_t, activation)
    return {"input1_offset": -zero_point(a), "input2_offset": -zero_point(b), "output_offset": zero_point(o_t),
            "output_multiplier": mult, "output_shift": shift, "quantized_activation_min": lo,
            "quantized_activation_max": hi}


def logistic_params(i_t: Tensor) -> dict:
    """CalculateArithmeticOpDataLogistic for int8 (logistic_common.cc): frexp and one rounding, no
    halving (its multiplier is an int32 cast of the rounded value, as there)."""
    bits = 4                                                 # kInputIntegerBits
    real = float(np.float32(i_t.quantization.scales[0])) * float(1 << (31 - bits))
    q, shift = math.frexp(real)
    mult = round_half_away(q * (1 << 31))
    mult = mult - (1 << 32) if mult >= 1 << 31 else mult     # static_cast<int32_t> of 2^31 wraps
    if shift < 0:
        raise TfgenError(f"LOGISTIC input scale {i_t.quantization.scales[0]!r} is below 2^-28, where TFLM's radius "
                         "shifts by a negative amount", "use --runtime tflm")
    radius = math.floor(1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << shift))   # CalculateInputRadius
    return {"input_zero_point": zero_point(i_t), "input_range_radius": int(radius), "input_multiplier": mult,
            "input_left_shift": shift}


def softmax_params(i_t: Tensor, o_t: Tensor, beta: float) -> dict:
    """CalculateSoftmaxParams for int8 -> int8: PreprocessSoftmaxScaling and CalculateInputRadius."""
    if i_t.dtype != "int8" or o_t.dtype != "int8":
        raise TfgenError("--runtime aot runs int8 -> int8 SOFTMAX", "use --runtime tflm")
    bits = 5                                                 # kScaledDiffIntegerBits
    real = min(float(np.float32(beta)) * float(np.float32(i_t.quantization.scales[0])) * (1 << (31 - bits)),
               (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real)
    radius = math.floor(1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << shift))
    return {"input_multiplier": mult, "input_left_shift": shift, "diff_min": int(-1.0 * radius)}
