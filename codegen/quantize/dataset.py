"""The user's data for calibration and evaluation: .npy, .npz, .csv or a folder of images.

Everything is checked against the model's inputs before TensorFlow sees it: shape, dtype, NaN/Inf.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

from codegen.errors import TfgenError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm", ".tif", ".tiff")


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]       # without the batch dimension
    dtype: str = "float32"


def load(path: Path, inputs: list[InputSpec], image_range: tuple[float, float] = (0.0, 1.0),
         what: str = "calibration data") -> list[np.ndarray]:
    """One float32 array (N, *shape) per model input, all with the same N."""
    path = Path(path)
    if not path.exists():
        raise TfgenError(f"{path}: no such file or folder", f"pass the {what} as .npy, .npz, .csv or an image folder")
    if path.is_dir():
        arrays = [_images(path, inputs, image_range)]
    elif path.suffix == ".npy":
        arrays = [_npy(path)]
    elif path.suffix == ".npz":
        arrays = _npz(path, inputs)
    elif path.suffix in (".csv", ".txt"):
        arrays = [_csv(path)]
    else:
        raise TfgenError(f"{path}: unsupported {what} format {path.suffix or '(no suffix)'}",
                         "use .npy, .npz (one array per input), .csv or a folder of images")
    if len(arrays) != len(inputs):
        raise TfgenError(f"{path}: {len(arrays)} array(s) for a model with {len(inputs)} inputs "
                         f"({', '.join(i.name for i in inputs)})",
                         "pass an .npz with one array per input, named like the inputs")
    shaped = [_fit(a, spec, path) for a, spec in zip(arrays, inputs)]
    counts = {a.shape[0] for a in shaped}
    if len(counts) != 1:
        raise TfgenError(f"{path}: the inputs have different numbers of rows ({sorted(counts)})",
                         "give every input the same number of samples")
    if shaped[0].shape[0] == 0:
        raise TfgenError(f"{path}: holds no samples", f"the {what} needs at least one sample")
    return shaped


def _npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise TfgenError(f"{path}: not a readable .npy file ({exc})", "write it with numpy.save")


def _npz(path: Path, inputs: list[InputSpec]) -> list[np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            files = {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError) as exc:
        raise TfgenError(f"{path}: not a readable .npz file ({exc})", "write it with numpy.savez")
    if len(inputs) == 1 and len(files) == 1:
        return list(files.values())
    out = []
    for i, spec in enumerate(inputs):
        for key in (spec.name, spec.name.split(":")[0], f"in{i}"):
            if key in files:
                out.append(files[key])
                break
        else:
            raise TfgenError(f"{path}: no array for model input {spec.name!r}; it holds {', '.join(files)}",
                             f"name the arrays {', '.join(s.name for s in inputs)}")
    return out


def _csv(path: Path) -> np.ndarray:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    rows = [l for l in lines if l.strip()]
    if rows and not _numeric_row(rows[0]):
        rows = rows[1:]                                     # a header line
    try:
        return np.array([[float(v) for v in r.split(",")] for r in rows], dtype=np.float64)
    except ValueError as exc:
        raise TfgenError(f"{path}: a row is not all numbers ({exc})",
                         "one sample per line, comma-separated numbers; one header line allowed")


def _numeric_row(row: str) -> bool:
    try:
        [float(v) for v in row.split(",")]
        return True
    except ValueError:
        return False


def _images(folder: Path, inputs: list[InputSpec], value_range: tuple[float, float]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError
    if len(inputs) != 1 or len(inputs[0].shape) != 3 or inputs[0].shape[2] not in (1, 3):
        shapes = ", ".join(str(i.shape) for i in inputs)
        raise TfgenError(f"{folder}: an image folder needs a model with one (H, W, 1 or 3) input, not {shapes}",
                         "pass the data as .npy/.npz instead")
    h, w, c = inputs[0].shape
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise TfgenError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder",
                         "pass a folder of images or a .npy file")
    lo, hi = value_range
    out = np.empty((len(files), h, w, c), np.float32)
    for k, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.Resampling.BILINEAR)
                px = np.asarray(im, np.float32).reshape(h, w, c)
        except (UnidentifiedImageError, OSError) as exc:
            raise TfgenError(f"{f}: not a readable image ({exc})", "remove it from the folder")
        out[k] = lo + px / 255.0 * (hi - lo)
    return out


def _fit(a: np.ndarray, spec: InputSpec, path: Path) -> np.ndarray:
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.issubdtype(a.dtype, np.complexfloating):
        raise TfgenError(f"{path}: data of dtype {a.dtype} cannot feed input {spec.name!r} ({spec.dtype})",
                         "pass real numbers (float or integer arrays)")
    want = spec.shape
    if a.shape == want:
        a = a[None]
    elif a.ndim >= 2 and prod(a.shape[1:]) == prod(want):
        a = a.reshape((a.shape[0],) + want)
    elif a.ndim == 1 and len(want) == 1 and want[0] == 1:
        a = a[:, None]
    if a.shape[1:] != want:
        raise TfgenError(f"{path}: samples of shape {a.shape[1:]} (array {a.shape}) cannot feed input "
                         f"{spec.name!r}, which takes {want} per sample",
                         f"give an array of shape (N, {', '.join(map(str, want))})")
    a = a.astype(np.float32)
    bad = ~np.isfinite(a)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise TfgenError(f"{path}: contains NaN or Inf ({int(bad.sum())} values, first in sample {row})",
                         "remove or fix those samples before calibrating")
    return a
