"""The scratch buffers CMSIS-NN's wrappers ask for (``*_get_buffer_size``), as GCC compiles them.

CMSIS-NN (the commit codegen/toolchain/cmsis_nn.py pins) has three code paths: plain C (Cortex-M0+,
M3), ``ARM_MATH_DSP`` (M4, M7, M33) and ``ARM_MATH_MVEI``, Helium (M55). ``--runtime aot`` plans each
op's scratch at generation time from these functions, line for line from
Source/ConvolutionFunctions/arm_convolve_get_buffer_sizes_s8.c, arm_depthwise_conv_get_buffer_sizes_s8.c,
FullyConnectedFunctions/arm_fully_connected_get_buffer_sizes_s8.c and
PoolingFunctions/arm_avgpool_get_buffer_sizes_s8.c (the ``__ARMCC_VERSION`` branches excluded: tfgen
builds with GCC), and the generated ``Prepare()`` asks CMSIS-NN again at start-up.
"""
from __future__ import annotations

PATHS = ("c", "dsp", "mve")
DSP_CORES = frozenset({"cortex-m4", "cortex-m4f", "cortex-m7", "cortex-m33"})    # __ARM_FEATURE_DSP
CORES = DSP_CORES | {"cortex-m0plus", "cortex-m3", "cortex-m55"}                # M55: MVE (Helium)
CH_IN_BLOCK_MVE = 124                        # arm_nnsupportfunctions.h
ONE_INPUT_CH_THRESHOLD = 1                   # CONVERT_DW_CONV_WITH_ONE_INPUT_CH_AND_OUTPUT_CH_ABOVE_THRESHOLD, GCC


def path(core: str) -> str:
    """Which of CMSIS-NN's code paths GCC compiles for ``core`` (one of PATHS)."""
    return "mve" if core == "cortex-m55" else "dsp" if core in DSP_CORES else "c"


def _c_div(a: int, b: int) -> int:
    """C's integer division (toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _c_mod(a: int, b: int) -> int:
    return a - b * _c_div(a, b)


def is_1x1(p: dict, i: dict, f: dict) -> bool:
    """arm_nn_is_convolve_1x1: no padding, 1x1 filter, no dilation, the filter's channels the input's."""
    return (p["padding.w"] == p["padding.h"] == 0 and f["w"] == f["h"] == 1 and p["dilation.w"] == p["dilation.h"] == 1
            and i["c"] == f["c"])


def is_1_x_n(p: dict, i: dict, f: dict) -> bool:
    return (i["h"] == 1 and p["dilation.w"] == 1 and f["h"] == 1 and _c_mod(p["stride.w"] * i["c"], 4) == 0
            and i["c"] == f["c"])


def convolve_s8(path: str, i: dict, f: dict) -> int:
    if path == "mve":
        return 4 * ((i["c"] * f["w"] * f["h"] + 15) // 16) * 16
    cols = f["w"] * f["h"] * i["c"]
    return 2 * (cols + (4 - cols % 4) % 4) * 2


def _convolve_1_x_n_mve(p: dict, i: dict, f: dict, o: dict) -> int:
    pad_x, stride_x, kernel_x = p["padding.w"], p["stride.w"], f["w"]
    total_pad = (o["w"] - 1) * stride_x + kernel_x - i["w"]
    asym_pad = _c_mod(total_pad, 2)
    right = max(1, _c_div(pad_x + asym_pad + stride_x - 1, stride_x)) if pad_x + asym_pad != 0 else 0
    left = max(1, _c_div(pad_x + stride_x - 1, stride_x)) if pad_x != 0 else 0
    no_pad = max(o["w"] - (right + left), 0)
    if right + no_pad + left != o["w"]:
        return convolve_s8("mve", i, f)
    pad_left = pad_x * i["c"]
    pad_right = right * i["c"] if asym_pad else pad_left
    elems_left = kernel_x * i["c"]
    return max(elems_left + pad_left, elems_left - i["c"] + pad_right)


def convolve_wrapper(path: str, p: dict, i: dict, f: dict, o: dict) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size: ``p`` the conv params (field -> value, as aot's cmsis
    structs: "padding.w", ...), ``i``/``f``/``o`` the dims ({"n", "h", "w", "c"})."""
    if is_1x1(p, i, f):
        return 0                             # 1x1 fast: 0 under GCC; 1x1 strided: none
    if path == "mve" and is_1_x_n(p, i, f):
        return _convolve_1_x_n_mve(p, i, f, o)
    return convolve_s8(path, i, f)


def depthwise_wrapper(path: str, p: dict, i: dict, f: dict, o: dict) -> int:
    """arm_depthwise_conv_wrapper_s8_get_buffer_size (``f``: n 1, h, w, c the output channels)."""
    if path == "mve" and i["c"] == 1 and o["c"] > ONE_INPUT_CH_THRESHOLD:
        conv_filter = {"n": f["c"], "h": f["h"], "w": f["w"], "c": f["n"]}
        return convolve_wrapper("mve", p, i, conv_filter, o) + f["c"] * f["h"] * f["w"] * f["n"]
    if not (i["c"] == o["c"] and i["n"] == 1 and p["dilation.w"] == p["dilation.h"] == 1):
        return 0
    if path == "mve":
        return 4 * CH_IN_BLOCK_MVE * f["w"] * f["h"]
    if f["w"] == f["h"] == 3 and p["padding.h"] <= 1 and p["padding.w"] <= 1:
        return 0                             # arm_depthwise_conv_3x3_s8
    return i["c"] * f["w"] * f["h"] * 2 if path == "dsp" else 0


def fully_connected(path: str, f: dict) -> int:
    """arm_fully_connected_s8_get_buffer_size: on MVE the kernel sums, one int32 per output channel."""
    return f["c"] * 4 if path == "mve" else 0


def avgpool(path: str, channels: int) -> int:
    return channels * 4 if path == "dsp" else 0
