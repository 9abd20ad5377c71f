"""The test-vector file: raw inputs and the oracle's expected outputs, replayed by the firmware.

Little-endian binary, simple enough for a C harness to walk without a parser library (format v1):

    offset  size  field
    0       4     magic "TFGV"
    4       2     version (1)
    6       2     number of inputs  I
    8       2     number of outputs O
    10      2     reserved (0)
    12      4     number of vectors N
    16      32    sha256 of the .tflite model the vectors belong to
    48      ...   I + O tensor descriptors, inputs first, each:
                    u8 TfLiteType code (9 = int8), u8 ndims, u16 reserved,
                    u32 bytes per vector, f32 scale, i32 zero point, i32 dims[ndims]
    ...     ...   N records, each: every input's raw bytes in order, then every output's raw bytes
"""
from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codegen.errors import TfgenError

MAGIC = b"TFGV"
VERSION = 1
_HEADER = struct.Struct("<4sHHHHI32s")
_DESC = struct.Struct("<BBHIfi")
# TfLiteType codes (tensorflow/lite/core/c/c_api_types.h) of the dtypes a vector file can hold.
TFLITE_TYPES = {"float32": 1, "int32": 2, "uint8": 3, "int64": 4, "bool": 6, "int16": 7, "int8": 9,
                "float64": 11, "uint32": 16, "uint16": 17}
_NUMPY_BY_CODE = {v: k for k, v in TFLITE_TYPES.items()}


@dataclass(frozen=True)
class TensorSpec:
    dtype: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class VectorSet:
    model_sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    input_data: tuple[np.ndarray, ...]    # per input: (N, *shape)
    output_data: tuple[np.ndarray, ...]   # per output: (N, *shape)

    @property
    def count(self) -> int:
        return int(self.input_data[0].shape[0])


def spec_of(tensor) -> TensorSpec:
    q = tensor.quantization
    return TensorSpec(tensor.dtype, tuple(tensor.shape), q.scales[0] if q else 0.0,
                      q.zero_points[0] if q and q.zero_points else 0)


def header_bytes(vs: VectorSet) -> int:
    """The bytes of a vector file before its records."""
    return _HEADER.size + sum(_DESC.size + 4 * len(s.shape) for s in vs.inputs + vs.outputs)


def encode(vs: VectorSet) -> bytes:
    parts = [_HEADER.pack(MAGIC, VERSION, len(vs.inputs), len(vs.outputs), 0, vs.count,
                          bytes.fromhex(vs.model_sha256))]
    for spec in vs.inputs + vs.outputs:
        if spec.dtype not in TFLITE_TYPES:
            raise TfgenError(f"a test vector tensor has dtype {spec.dtype}, which the vector file cannot hold",
                             f"supported: {', '.join(TFLITE_TYPES)}")
        parts.append(_DESC.pack(TFLITE_TYPES[spec.dtype], len(spec.shape), 0, spec.nbytes,
                                spec.scale, spec.zero_point))
        parts.append(struct.pack(f"<{len(spec.shape)}i", *spec.shape))
    arrays = [np.ascontiguousarray(a, dtype=np.dtype(s.dtype).newbyteorder("<"))
              for a, s in zip(vs.input_data + vs.output_data, vs.inputs + vs.outputs)]
    for v in range(vs.count):
        parts.extend(a[v].tobytes() for a in arrays)
    return b"".join(parts)


def decode(buf: bytes, source: str = "vector file") -> VectorSet:
    def bad(detail: str) -> TfgenError:
        return TfgenError(f"{source}: not a valid tfgen vector file ({detail})",
                          "write it again with `tfgen reference`")
    if len(buf) < _HEADER.size:
        raise bad("shorter than its header")
    magic, version, n_in, n_out, _, n_vec, sha = _HEADER.unpack_from(buf, 0)
    if magic != MAGIC:
        raise bad("no TFGV magic")
    if version != VERSION:
        raise bad(f"format version {version}; this tfgen reads version {VERSION}")
    pos = _HEADER.size
    specs = []
    for _ in range(n_in + n_out):
        if pos + _DESC.size > len(buf):
            raise bad("truncated tensor descriptors")
        code, ndims, _, nbytes, scale, zp = _DESC.unpack_from(buf, pos)
        pos += _DESC.size
        if code not in _NUMPY_BY_CODE or pos + 4 * ndims > len(buf):
            raise bad(f"tensor type code {code} or its shape is invalid")
        shape = struct.unpack_from(f"<{ndims}i", buf, pos)
        pos += 4 * ndims
        spec = TensorSpec(_NUMPY_BY_CODE[code], tuple(shape), scale, zp)
        if spec.nbytes != nbytes:
            raise bad(f"a descriptor says {nbytes} bytes but its shape holds {spec.nbytes}")
        specs.append(spec)
    record = sum(s.nbytes for s in specs)
    if len(buf) - pos != record * n_vec:
        raise bad(f"{len(buf) - pos} bytes of records, expected {n_vec} x {record}")
    raw = np.frombuffer(buf, dtype=np.uint8, offset=pos).reshape(n_vec, record) if record else None
    arrays, col = [], 0
    for s in specs:
        chunk = raw[:, col:col + s.nbytes] if raw is not None else np.zeros((n_vec, 0), np.uint8)
        arrays.append(np.ascontiguousarray(chunk).view(np.dtype(s.dtype).newbyteorder("<"))
                      .reshape((n_vec,) + s.shape).astype(s.dtype))
        col += s.nbytes
    return VectorSet(sha.hex(), tuple(specs[:n_in]), tuple(specs[n_in:]),
                     tuple(arrays[:n_in]), tuple(arrays[n_in:]))


def read(path: Path) -> VectorSet:
    try:
        return decode(Path(path).read_bytes(), str(path))
    except FileNotFoundError:
        raise TfgenError(f"{path}: no such file", "write one with `tfgen reference MODEL -o FILE`")


def model_digest(model: bytes) -> str:
    return hashlib.sha256(model).hexdigest()
