"""Reference: run a model in the oracle (TFLM's interpreter) and record test vectors.

Also runs the same inputs through TFLite's reference kernels and reports where they differ: TFLM is
the oracle, TFLite only a cross-check (their FULLY_CONNECTED rounding differs on some models).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codegen.model import numerics
from codegen.oracle import oracle
from codegen.errors import TfgenError
from codegen.model.ir import ModelIR
from codegen.model.vectors import VectorSet, model_digest, spec_of


@dataclass(frozen=True)
class CrossCheck:
    tensorflow: str
    bytes_compared: int
    mismatches: int
    max_lsb: int

    def to_dict(self) -> dict:
        return {"against": f"TFLite reference kernels (TensorFlow {self.tensorflow})",
                "bytes_compared": self.bytes_compared, "mismatches": self.mismatches,
                "max_lsb_difference": self.max_lsb}


# Inputs (all vectors) tfgen generates in memory at most.
MAX_INPUT_BYTES = 1 << 30


def random_inputs(ir: ModelIR, count: int, seed: int) -> list[np.ndarray]:
    """Uniform random raw values over each input's whole integer range, reproducible by seed."""
    if count < 1:
        raise TfgenError(f"--vectors {count}: need at least 1 vector", "pass --vectors 1 or more")
    per_vector = sum(t.elements * np.dtype(t.dtype).itemsize for t in ir.inputs)
    if per_vector * count > MAX_INPUT_BYTES:
        raise TfgenError(f"--vectors {count}: {count} x {per_vector:,} bytes of input is more than tfgen holds in "
                         f"memory ({MAX_INPUT_BYTES:,} bytes)",
                         f"pass --vectors {max(MAX_INPUT_BYTES // max(per_vector, 1), 1)} or fewer")
    rng = np.random.default_rng(seed)
    arrays = []
    for t in ir.inputs:
        info = np.iinfo(t.dtype)
        arrays.append(rng.integers(info.min, info.max, size=(count,) + t.shape, endpoint=True,
                                   dtype=t.dtype))
    return arrays


def inputs_from_file(ir: ModelIR, path: Path) -> list[np.ndarray]:
    """Inputs from .npy (one-input models) or .npz (by tensor name, or in0, in1, ... in order).

    Arrays of the input's integer dtype are taken as raw values; float arrays are quantized with the
    input's scale and zero point, as the firmware's quantize helper does.
    """
    path = Path(path)
    if not path.is_file():
        raise TfgenError(f"{path}: no such file", "pass --inputs X.npy (or .npz for several inputs)")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise TfgenError(f"{path}: not a NumPy .npy/.npz file ({exc})", "save inputs with numpy.save")
    if isinstance(loaded, np.ndarray):
        if len(ir.inputs) != 1:
            raise TfgenError(f"{path}: one array for a model with {len(ir.inputs)} inputs",
                             "pass an .npz with one array per input, named like the inputs")
        named = [loaded]
    else:
        with loaded:
            named = [_pick(loaded, t.name, i, path) for i, t in enumerate(ir.inputs)]
    return [_as_raw(a, t, path) for a, t in zip(named, ir.inputs)]


def _pick(npz, name: str, i: int, path: Path) -> np.ndarray:
    for key in (name, f"in{i}", name.split(":")[0]):
        if key in npz.files:
            return npz[key]
    raise TfgenError(f"{path}: no array for model input {i} ({name!r}); it has {', '.join(npz.files)}",
                     "name the arrays after the inputs or in0, in1, ...")


def _as_raw(a: np.ndarray, tensor, path: Path) -> np.ndarray:
    shape = tensor.shape
    if a.shape == shape:
        a = a[None]
    elif a.ndim >= 2 and int(np.prod(a.shape[1:])) == int(np.prod(shape)):
        a = a.reshape((a.shape[0],) + shape)       # rows of the right size, e.g. (N, 640) for (1, 640)
    if a.shape[1:] != shape:
        raise TfgenError(f"{path}: array of shape {a.shape} for input {tensor.name!r} of shape {shape}",
                         f"give (N, {', '.join(map(str, shape))}) values")
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise TfgenError(f"{path}: contains NaN or Inf", "clean the data before using it as inputs")
        q = tensor.quantization
        if q is None:
            raise TfgenError(f"{path}: float values for input {tensor.name!r}, which has no quantization",
                             "pass raw values of the input's dtype")
        return numerics.quantize(a, q.scales[0], q.zero_points[0], tensor.dtype)
    if a.dtype != np.dtype(tensor.dtype):
        info = np.iinfo(tensor.dtype)
        if a.min() < info.min or a.max() > info.max:
            raise TfgenError(f"{path}: values outside {tensor.dtype}'s range for input {tensor.name!r}",
                             "pass raw values of the input's dtype, or floats to be quantized")
    return a.astype(tensor.dtype)


@dataclass(frozen=True)
class Reference:
    vectors: VectorSet
    arena: oracle.ArenaFigure
    crosscheck: CrossCheck | None


def run_reference(ir: ModelIR, model: bytes, inputs: list[np.ndarray],
                  crosscheck: bool = True) -> Reference:
    arena = oracle.measure_arena(ir, model)
    outputs = oracle.run_tflm(ir, model, inputs, arena.min_bytes)
    vs = VectorSet(model_digest(model), tuple(spec_of(t) for t in ir.inputs),
                   tuple(spec_of(t) for t in ir.outputs), tuple(inputs), tuple(outputs))
    check = None
    if crosscheck:
        ref = oracle.run_tflite_reference(ir, model, inputs)
        diffs = [np.abs(a.astype(np.int64) - b.astype(np.int64)) for a, b in zip(outputs, ref)]
        check = CrossCheck(_tf_version(), sum(a.size for a in outputs),
                           int(sum(int(np.count_nonzero(d)) for d in diffs)),
                           int(max(int(d.max()) if d.size else 0 for d in diffs)))
    return Reference(vs, arena, check)


def _tf_version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    for dist in ("tensorflow-cpu", "tensorflow"):
        try:
            return version(dist)
        except PackageNotFoundError:
            continue
    return "unknown"
