"""`--runtime aot` on ESP chips: each op as esp-tflite-micro 1.3.8's ``kernels/esp_nn/`` wrapper calls
esp-nn, with the same parameters and the same fall-backs to TFLM's reference kernels.

The wrappers run esp-nn for int8 CONV_2D and DEPTHWISE_CONV_2D without dilation, FULLY_CONNECTED
(per-tensor and per-channel), AVERAGE/MAX_POOL_2D (the chip's code where the depth is a multiple of 4,
esp-nn's generic C otherwise), ADD and MUL without broadcast, and SOFTMAX; everything else is TFLM's
reference kernel, as in the interpreter. The scratch buffers are planned at generation time with the
size esp-nn asks for on the chip (``esp_nn_get_*_scratch_size``): nothing on ESP32, C3 and C6, whose
esp-nn code is generic C; on the ESP32-S3 the sizes its assembly needs, ported here from esp-nn
1.2.3 (src/convolution/esp_nn_conv_esp32s3.c, esp_nn_depthwise_conv_s8_esp32s3.c) and checked against
that C by tests/test_aot_espnn.py. The generated ``Prepare()`` asks esp-nn again at start-up and stops
on a difference. SOFTMAX gets the 4 bytes per element of the last dimension esp-nn writes (the
wrapper's dims[1] * 4 can be too few: codegen/project/plan.py ``esp_softmax_overruns``).
"""
from __future__ import annotations

import math

from codegen.errors import TfgenError

# The chips aot builds esp-nn code for: the generic C ones and the S3 (scratch sizes below).
CHIPS = ("esp32", "esp32c3", "esp32c6", "esp32s3")
FUNCTIONS = {"conv": "esp_nn_conv_s8", "depthwise": "esp_nn_depthwise_conv_s8", "fc": "esp_nn_fully_connected_s8",
             "fc_per_channel": "esp_nn_fully_connected_per_ch_s8", "add": "esp_nn_add_elementwise_s8",
             "mul": "esp_nn_mul_elementwise_s8", "softmax": "esp_nn_softmax_s8"}
_U16 = 0xFFFF               # esp-nn keeps dimensions in uint16_t


def check_chip(chip: str) -> None:
    if chip not in CHIPS:
        raise TfgenError(f"--runtime aot is built for the esp-nn code of {', '.join(CHIPS)}, not {chip or 'this board'}"
                         " (its assembly's scratch sizes are not ported)", "use --runtime tflm (the default)")


def _extended_equal(a: tuple, b: tuple) -> bool:
    """ProcessBroadcastShapes' "exact match": both shapes extended with leading 1s to one rank."""
    n = max(len(a), len(b))
    return (1,) * (n - len(a)) + tuple(a) == (1,) * (n - len(b)) + tuple(b)


def esp_lowering(op, chip: str) -> tuple[str, str, dict, int] | None:
    """How the esp_nn wrapper runs ``op`` (an AotOp lowered for the reference kernels) on ``chip``:
    (kind, esp-nn function, its dims and params, scratch bytes), or None where it runs TFLM's kernel."""
    p, o = op.params, op.operands
    kind, structs, scratch, function = op.kind, {}, 0, ""
    if kind in ("conv", "depthwise"):
        if p["dilation_height_factor"] != 1 or p["dilation_width_factor"] != 1:
            return None                         # the wrappers' reference fall-back
        i_d, f_d, out = o["input"].dims, o["filter"].dims, o["output"].dims
        structs = {"input": _dims(i_d[2], i_d[1], i_d[3], 1), "output": _dims(out[2], out[1], out[3], 1),
                   "filter": _dims(f_d[2], f_d[1], f_d[3], 0), "batches": i_d[0],
                   "stride": (p["stride_width"], p["stride_height"]),
                   "padding": (p["padding_values.width"], p["padding_values.height"]),
                   "activation": (p["quantized_activation_min"], p["quantized_activation_max"]),
                   "ch_mult": p.get("depth_multiplier", 1)}
        scratch = _conv_scratch(kind, chip, structs)
        function = FUNCTIONS[kind]
    elif kind in ("fc", "fc_per_channel"):
        f_d, out = o["filter"].dims, o["output"].dims
        structs = {"batches": math.prod(out) // out[-1], "accum": f_d[-1], "depth": out[-1]}
        function = FUNCTIONS[kind]
    elif kind == "pool":
        depth = o["input"].dims[3]
        name = "avg" if op.name == "AVERAGE_POOL_2D" else "max"
        function = f"esp_nn_{name}_pool_s8" + ("" if depth % 4 == 0 else "_ansi")
        structs = {"batches": o["input"].dims[0], "depth": depth}
    elif kind in ("add", "mul"):
        if not _extended_equal(o["input"].dims, o["input2"].dims):
            return None                         # broadcast: TFLM's reference kernel, as the wrappers
        structs, function = {"size": math.prod(o["output"].dims)}, FUNCTIONS[kind]
    elif kind == "softmax":
        dims = o["input"].dims
        depth = dims[-1]
        structs = {"rows": math.prod(dims) // depth if depth else 0, "depth": depth}
        scratch = 4 * max(depth, dims[1] if len(dims) > 1 else 0)
        function = FUNCTIONS[kind]
    else:
        return None                             # RESHAPE, PAD, MEAN, CONCATENATION, LOGISTIC: TFLM's
    return "esp_" + kind, function, structs, scratch


def _dims(width: int, height: int, channels: int, extra: int) -> dict:
    return {"width": width, "height": height, "channels": channels, "extra": extra}


def _conv_scratch(kind: str, chip: str, s: dict) -> int:
    """esp_nn_get_(depthwise_)conv_scratch_size as the wrapper's Prepare calls it (offsets 0, the
    activation -128..127): 0 for esp-nn's generic C, the S3's own sizes there."""
    if chip != "esp32s3":
        return 0
    i, f, out = s["input"], s["filter"], s["output"]
    (pad_wd, pad_ht), (stride_wd, stride_ht) = s["padding"], s["stride"]
    if kind == "conv":
        return conv_scratch_s3(i["width"], i["height"], i["channels"], f["width"], f["height"], out["width"],
                               out["height"], out["channels"], pad_wd, pad_ht, stride_wd, stride_ht)
    return depthwise_scratch_s3(i["width"], i["height"], i["channels"], f["width"], f["height"], s["ch_mult"],
                                out["width"], out["height"], pad_wd, pad_ht, stride_wd, stride_ht)


def conv_scratch_s3(input_wd: int, input_ht: int, in_ch: int, filter_wd: int, filter_ht: int, out_wd: int,
                    out_ht: int, out_ch: int, pad_wd: int, pad_ht: int, stride_wd: int, stride_ht: int) -> int:
    """esp-nn 1.2.3 esp_nn_get_conv_scratch_size_esp32s3, line for line."""
    input_wd, input_ht, in_ch, filter_wd, filter_ht, out_ch, pad_wd, pad_ht, stride_wd, stride_ht = (
        v & _U16 for v in (input_wd, input_ht, in_ch, filter_wd, filter_ht, out_ch, pad_wd, pad_ht, stride_wd,
                           stride_ht))
    new_channels = (in_ch + 7) & ~7
    input_scratch = input_wd * input_ht * in_ch
    align_buf_size = 64
    if filter_wd == 1 and filter_ht == 1 and pad_wd == 0 and pad_ht == 0 and stride_wd == 1 and stride_ht == 1:
        transpose_buf_size = 0 if input_wd * input_ht < 8 else 2 * (8 * new_channels)
        input_scratch = input_wd * input_ht * new_channels if in_ch % 8 else 0
        return input_scratch + new_channels * out_ch + transpose_buf_size + align_buf_size
    filter_row_size = filter_wd * in_ch
    window_len = filter_wd * filter_ht * in_ch
    if filter_row_size < 16 and window_len >= 16:
        window_len_aligned = (window_len + 15) & ~15
        return out_ch * 4 + 16 + out_ch * window_len_aligned + 16 + window_len_aligned + align_buf_size
    new_channels = (in_ch + 15) & ~15
    input_scratch = 0 if pad_wd == 0 and pad_ht == 0 else (input_wd + 2 * pad_wd) * (input_ht + 2 * pad_ht) * in_ch
    filter_scratch = filter_wd * filter_ht * new_channels * out_ch
    filter_alignment_scratch = ((filter_row_size + 15) // 16) * 16 * filter_ht * out_ch
    pad_right = max(0, (out_wd * stride_wd + filter_wd - 1) - input_wd)
    pad_bottom = max(0, (out_ht * stride_ht + filter_ht - 1) - input_ht)
    boundary = (input_wd + pad_right) * (input_ht + pad_bottom) * in_ch if pad_right > 0 or pad_bottom > 0 else 0
    return (input_scratch + filter_scratch + filter_alignment_scratch + boundary + align_buf_size + out_ch * 4)


def depthwise_scratch_s3(input_wd: int, input_ht: int, channels: int, filter_wd: int, filter_ht: int, ch_mult: int,
                         out_wd: int, out_ht: int, pad_wd: int, pad_ht: int, stride_wd: int, stride_ht: int) -> int:
    """esp-nn 1.2.3 esp_nn_get_depthwise_conv_scratch_size_esp32s3, line for line."""
    input_wd, input_ht, channels, filter_wd, filter_ht, ch_mult, out_wd, out_ht, pad_wd, pad_ht, stride_wd, \
        stride_ht = (v & _U16 for v in (input_wd, input_ht, channels, filter_wd, filter_ht, ch_mult, out_wd,
                                        out_ht, pad_wd, pad_ht, stride_wd, stride_ht))
    filter_size = filter_wd * filter_ht * channels * ch_mult
    if ch_mult == 1 and channels % 8 == 0:
        if filter_wd == 3 and filter_ht == 3:
            if channels % 16 == 0:
                if pad_wd or pad_ht:
                    pad_width, pad_height = pad_wd * 2, pad_ht * 2
                else:
                    pad_width = (out_wd * stride_wd + filter_wd - 1) - input_wd
                    pad_height = (out_ht * stride_ht + filter_ht - 1) - input_ht
                if pad_width or pad_height:
                    full_input = (input_wd + pad_width) * (input_ht + pad_height) * channels
                    if full_input <= 40 * 1024:
                        return filter_size + full_input + 16
                    return filter_size + (input_wd + pad_width) * filter_ht * channels + 16
                return filter_size + 16
            if channels >= 12:
                new_ch = (channels + 15) & ~15
                total_pad_wd = pad_wd * 2 + max(0, (out_wd * stride_wd + 2) - input_wd)
                total_pad_ht = pad_ht * 2 + max(0, (out_ht * stride_ht + 2) - input_ht)
                return (9 * new_ch + (input_wd + total_pad_wd) * (input_ht + total_pad_ht) * new_ch
                        + out_wd * out_ht * new_ch + 64)
            return 2 * (filter_size + input_wd * input_ht * channels) + 32
        total_s16 = 2 * (filter_size + input_wd * input_ht * channels)
        if total_s16 <= 48 * 1024:
            return total_s16 + 32
        return 2 * filter_size + 2 * input_wd * filter_ht * channels + 32
    if ch_mult == 1 and channels > 3:
        padded = (channels + 7) & ~7
        input_start = (padded * filter_wd * filter_ht * 2 + 15) & ~15
        out_start = (input_start + input_wd * input_ht * padded * 2 + 15) & ~15
        bias_start = (out_start + out_wd * out_ht * padded + 15) & ~15
        return bias_start + 3 * padded * 4 + 16
    if ch_mult % 4 == 0:
        return 2 * (filter_size + input_wd * input_ht * channels) + 32
    return 32
