"""The frozen intermediate representation of a .tflite model that every later stage reads.

Only ``inspection`` builds it (from the flatbuffer); nothing downstream touches the flatbuffer again.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import prod

FLOAT_TYPES = frozenset({"float16", "float32", "float64", "bfloat16"})


@dataclass(frozen=True)
class Quantization:
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scales) > 1


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    dtype: str                      # numpy-style name: int8, int32, float32, ...
    shape: tuple[int, ...]
    quantization: Quantization | None
    constant_bytes: int             # bytes of constant data in the model (0 for activations)
    buffer: int = 0                 # index into the model's buffer table
    is_variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.constant_bytes > 0

    @property
    def elements(self) -> int:
        return prod(self.shape)


@dataclass(frozen=True)
class Operator:
    index: int
    subgraph: int
    name: str                       # BuiltinOperator name (CONV_2D) or the custom op's name
    version: int
    custom: bool
    inputs: tuple[int, ...]         # tensor indices in the operator's subgraph; -1 = optional input absent
    outputs: tuple[int, ...]
    macs: int


@dataclass(frozen=True)
class OpUse:
    name: str
    versions: tuple[int, ...]
    count: int
    custom: bool
    in_tflm: bool
    tflm_method: str | None         # MicroMutableOpResolver method, e.g. AddConv2D


@dataclass(frozen=True)
class ModelIR:
    source: str                     # file name the model came from
    sha256: str
    size_bytes: int
    schema_version: int
    description: str
    subgraph_count: int
    tensors: tuple[Tensor, ...]     # tensors of subgraph 0
    tensor_count: int               # over all subgraphs
    operators: tuple[Operator, ...]  # over all subgraphs, in execution order per subgraph
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    ops: tuple[OpUse, ...]          # distinct ops, in order of first use
    weights_bytes: int              # constant tensor data over all subgraphs
    float_tensors: tuple[str, ...] = field(default=())   # names of float tensors (any subgraph)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.operators)

    @property
    def unsupported_ops(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.ops if not op.in_tflm)

    def to_dict(self) -> dict:
        return asdict(self)
