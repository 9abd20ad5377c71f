"""Quantization arithmetic as TFLite does it, and the error metrics of the quality report."""
from __future__ import annotations

import numpy as np


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str = "int8") -> np.ndarray:
    """float -> integer as TFLite's AffineQuantize: float32 division, round half away from zero
    (std::round), add the zero point, clamp to the type's range.

    Where TFLite's int32 cast is undefined (beyond 2^31 steps, NaN), this saturates and maps NaN to
    the zero point, as the firmware's helper (firmware/tfgen_quant.h) does.
    """
    info = np.iinfo(dtype)
    with np.errstate(over="ignore", invalid="ignore"):     # x / scale past float32's range is inf
        steps = round_half_away(np.asarray(x, np.float32) / np.float32(scale))
    steps = np.clip(np.nan_to_num(steps, nan=0.0, posinf=2.0**31, neginf=-2.0**31), -2.0**31, 2.0**31)
    return np.clip(steps.astype(np.int64) + zero_point, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (np.asarray(q, np.float64) - zero_point) * scale


def round_half_away(x: np.ndarray) -> np.ndarray:
    """std::round. In float64, where |x| + 0.5 is exact for a float32 x: in float32 it is not, and
    floor(0.49999997 + 0.5) would give 1."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def sqnr_db(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of ``test`` against ``reference``, in dB (inf: identical)."""
    ref = np.asarray(reference, np.float64).ravel()
    noise = float(np.sum((ref - np.asarray(test, np.float64).ravel()) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0:
        return float("inf")
    if signal == 0.0:
        return float("-inf")
    return 10.0 * np.log10(signal / noise)


def cosine(reference: np.ndarray, test: np.ndarray) -> float:
    a = np.asarray(reference, np.float64).ravel()
    b = np.asarray(test, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return float(np.dot(a, b) / (na * nb))
