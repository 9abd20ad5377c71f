"""Shared helpers of the render tests: a hand-built IR and model bytes, plans and renders from them,
hand-written boards, and `expect_lines`, which checks a rendered file against a spec in tests/render/.

Nothing here reads a .tflite, runs the TFLM interpreter or a compiler: the IR is written out field by
field as ``codegen.model.inspection.parse_model`` fills it, so a render takes milliseconds.
"""
from __future__ import annotations

import difflib
import hashlib
import re
from pathlib import Path

import numpy as np

from codegen.model.ir import ModelIR, Operator, OpUse, Quantization, Tensor
from codegen.model.tflm_ops import load_op_set
from codegen.project import boards, plan as plan_mod, render
from codegen.project.boards import Board
from codegen.toolchain.esp_nn import EspNn
from codegen.toolchain.tflm_tree import TflmTree

RENDER_SPECS = Path(__file__).resolve().parent / "render"
ARENA_MEASURED = 1000           # bytes "measured"; the plan's arena is this plus at most 5 %, in 16s
ARENA_SIZE = 1040               # arena_with_margin(1000): 1000 * 1.05 = 1050, down to a multiple of 16


# -- the model ---------------------------------------------------------------------------------------

def f32(x: float) -> float:
    """``x`` as the float32 value it is stored as (parse_model reads the scales as float32, widened)."""
    return float(np.float32(x))


def _q(scale: float | tuple[float, ...], zero_point: int | tuple[int, ...], axis: int = 0) -> Quantization:
    scales = scale if isinstance(scale, tuple) else (scale,)
    zps = zero_point if isinstance(zero_point, tuple) else (zero_point,)
    return Quantization(tuple(f32(s) for s in scales), tuple(zps), axis)


def model_bytes(source: str) -> bytes:
    """Bytes standing in for the .tflite: a flatbuffer's root offset and the 'TFL3' identifier, then
    filler. Only render sees them (it embeds them as a C array); their sha256 and size go into the IR."""
    filler = hashlib.sha256(source.encode()).digest()
    return b"\x1c\x00\x00\x00TFL3" + filler * 3


def _op_use(name: str, versions: tuple[int, ...], count: int) -> OpUse:
    method = load_op_set().method_for(name)
    return OpUse(name=name, versions=versions, count=count, custom=False, in_tflm=method is not None,
                 tflm_method=method)


SOFTMAX_SHAPE = (1, 1, 1, 8)   # make_ir("softmax")'s default: dims[1] (1) < the last dimension (8)


def make_ir(kind: str = "fc", source: str | None = None, model: bytes | None = None,
            softmax_shape: tuple[int, ...] = SOFTMAX_SHAPE) -> ModelIR:
    """A small full-INT8 model's IR, as parse_model would give it.

    ``fc``: FULLY_CONNECTED, int8 input [1, 4] -> int8 output [1, 2] (weights [2, 4] int8, bias [2]
    int32). ``conv_softmax``: CONV_2D (3x3, 2 filters, per-channel weights) on an int8 [1, 3, 3, 1]
    input, then SOFTMAX -> int8 [1, 1, 1, 2] with TFLite's softmax quantization (1/256, -128).
    ``softmax``: one SOFTMAX, int8 ``softmax_shape`` in and out (default 1x1x1x8).
    ``source`` is the file name (default ``tiny_<kind>.tflite``); ``model`` the bytes whose sha256 and
    size the IR carries (default ``model_bytes(source)``)."""
    source = source or f"tiny_{kind}.tflite"
    model = model_bytes(source) if model is None else model
    if kind == "fc":
        tensors = (
            Tensor(0, "serving_default_x:0", "int8", (1, 4), _q(0.0235, -128), 0, buffer=1),
            Tensor(1, "dense/MatMul", "int8", (2, 4), _q(0.0071, 0), 8, buffer=2),
            Tensor(2, "dense/BiasAdd/ReadVariableOp", "int32", (2,), _q(0.0235 * 0.0071, 0), 8, buffer=3),
            Tensor(3, "StatefulPartitionedCall:0", "int8", (1, 2), _q(0.0625, 5), 0, buffer=4),
        )
        operators = (Operator(0, 0, "FULLY_CONNECTED", 4, False, (0, 1, 2), (3,), macs=2 * 4),)
        ops = (_op_use("FULLY_CONNECTED", (4,), 1),)
        inputs, outputs = (tensors[0],), (tensors[3],)
    elif kind == "conv_softmax":
        tensors = (
            Tensor(0, "serving_default_image:0", "int8", (1, 3, 3, 1), _q(0.0039, -128), 0, buffer=1),
            Tensor(1, "conv2d/Conv2D", "int8", (2, 3, 3, 1), _q((0.0125, 0.0093), (0, 0), 0), 18, buffer=2),
            Tensor(2, "conv2d/BiasAdd/ReadVariableOp", "int32", (2,),
                   _q((0.0039 * 0.0125, 0.0039 * 0.0093), (0, 0), 0), 8, buffer=3),
            Tensor(3, "conv2d/BiasAdd;conv2d/Conv2D", "int8", (1, 1, 1, 2), _q(0.1048, 12), 0, buffer=4),
            Tensor(4, "StatefulPartitionedCall:0", "int8", (1, 1, 1, 2), _q(1 / 256, -128), 0, buffer=5),
        )
        operators = (Operator(0, 0, "CONV_2D", 3, False, (0, 1, 2), (3,), macs=2 * 3 * 3 * 1),
                     Operator(1, 0, "SOFTMAX", 2, False, (3,), (4,), macs=0))
        ops = (_op_use("CONV_2D", (3,), 1), _op_use("SOFTMAX", (2,), 1))
        inputs, outputs = (tensors[0],), (tensors[4],)
    elif kind == "softmax":
        tensors = (
            Tensor(0, "serving_default_logits:0", "int8", tuple(softmax_shape), _q(0.0625, 3), 0, buffer=1),
            Tensor(1, "StatefulPartitionedCall:0", "int8", tuple(softmax_shape), _q(1 / 256, -128), 0, buffer=2),
        )
        operators = (Operator(0, 0, "SOFTMAX", 2, False, (0,), (1,), macs=0),)
        ops = (_op_use("SOFTMAX", (2,), 1),)
        inputs, outputs = (tensors[0],), (tensors[1],)
    else:
        raise ValueError(f"no hand-built model {kind!r}: fc, conv_softmax or softmax")
    return ModelIR(
        source=source, sha256=hashlib.sha256(model).hexdigest(), size_bytes=len(model), schema_version=3,
        description="MLIR Converted.", subgraph_count=1, tensors=tensors, tensor_count=len(tensors),
        operators=operators, inputs=inputs, outputs=outputs, ops=ops,
        weights_bytes=sum(t.constant_bytes for t in tensors if t.is_constant), float_tensors=())


# -- boards ------------------------------------------------------------------------------------------

# A board of the user's own (--boards-dir), on another QEMU machine than the built-in mps2_an386: TI's
# Stellaris LM3S6965 evaluation board, Cortex-M3, 256 KB flash at 0, 64 KB SRAM at 0x20000000
# (QEMU hw/arm/stellaris.c). Its linker script, PlatformIO board and qemu command come from [qemu].
def emulated_board_toml(name: str, description: str, core: str, machine: str, cpu_mhz: int, flash: int,
                        ram: int, kernels: str = "reference") -> str:
    """A board file for a QEMU machine, as a user writes one: code at 0, data at 0x20000000."""
    return f"""\
name = "{name}"
description = "{description}"
core = "{core}"
arch = "arm"
cpu_mhz = {cpu_mhz}
flash_bytes = {flash}
ram_bytes = {ram}
psram_bytes = 0
kernels = "{kernels}"
arena_placement = "internal"

[platformio]
platform = "ststm32"
board = ""
framework = ""

[qemu]
machine = "{machine}"
cpu = "{core.removesuffix('f')}"

[qemu.flash]
origin = 0x00000000
length = {flash:#010x}

[qemu.ram]
origin = 0x20000000
length = {ram:#010x}
"""


LM3S6965EVB_TOML = emulated_board_toml(
    "lm3s6965evb", "TI Stellaris LM3S6965 EVB (Cortex-M3) emulated by QEMU lm3s6965evb", "cortex-m3", "lm3s6965evb",
    50, 262144, 65536)
HAND_WRITTEN_BOARDS = {"lm3s6965evb": LM3S6965EVB_TOML}


def board(name: str, folder: Path | None = None) -> Board:
    """A built-in board, or one of HAND_WRITTEN_BOARDS written into ``folder`` and loaded from there."""
    if name not in HAND_WRITTEN_BOARDS:
        return boards.get_board(name)
    if folder is None:
        raise ValueError(f"{name} is a hand-written board: pass a folder to write {name}.toml into")
    path = Path(folder) / f"{name}.toml"
    path.write_text(HAND_WRITTEN_BOARDS[name], encoding="utf-8")
    return boards.load_board_file(path)


# -- plans and renders -------------------------------------------------------------------------------

def command_for(ir: ModelIR, b: Board) -> str:
    return f"tfgen generate {ir.source} --board {b.name} -o project"


def make_plan(b: Board, kind: str = "fc", tree: TflmTree | None = None, vector_count: int = 0,
              arena: int = ARENA_MEASURED, espnn: EspNn | None = None, ir: ModelIR | None = None
              ) -> tuple[plan_mod.ProjectPlan, bytes]:
    """The plan of the hand-built model ``kind`` (or of ``ir``) for board ``b``, and the model's bytes.
    ``espnn``: the esp-nn sources (an ESP board's `sim`/`qemu` then build ESP-NN; needs a tree)."""
    ir = ir or make_ir(kind)
    model = model_bytes(ir.source)
    return plan_mod.make_plan(ir, b, arena, tree, vector_count, command_for(ir, b), espnn=espnn), model


def vectors_blob(count: int = 2) -> bytes:
    """Bytes standing in for a .tfgv (render embeds them; it does not decode them)."""
    return b"TFGV" + bytes(range(count * 6))


def render_files(b: Board, kind: str = "fc", tree: TflmTree | None = None, vector_count: int = 0,
                 espnn: EspNn | None = None, ir: ModelIR | None = None
                 ) -> tuple[plan_mod.ProjectPlan, dict[str, render.Content]]:
    p, model = make_plan(b, kind, tree, vector_count, espnn=espnn, ir=ir)
    return p, render.render_project(p, model, vectors_blob(vector_count) if vector_count else None)


def text_of(files: dict[str, render.Content], rel: str) -> str:
    content = files[rel]
    if isinstance(content, Path):
        return content.read_text(encoding="utf-8")
    return content.decode("utf-8") if isinstance(content, bytes) else content


# -- expected lines ----------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"<<(\w+)>>")
CONTEXT_LINES = 6


def spec_lines(spec_path: Path, values: dict[str, object] | None = None) -> list[tuple[int, bool, str]]:
    """The spec's lines as (line number in the spec, wanted, line).

    Lines starting with ``#`` are comments and blank lines are skipped; a leading ``!`` means the line
    must not appear; after that, a leading ``\\`` is dropped and the rest taken as it is, so
    ``\\#define X 1`` expects ``#define X 1`` and ``!\\#include "y.h"`` forbids ``#include "y.h"``.
    Trailing whitespace is dropped, and ``<<name>>`` becomes ``values[name]`` (an unknown name is an
    error in the spec)."""
    out = []
    for number, raw in enumerate(Path(spec_path).read_text(encoding="utf-8").splitlines(), 1):
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        wanted = not line.startswith("!")
        line = line if wanted else line[1:]
        line = line[1:] if line.startswith("\\") else line

        def value(m: re.Match) -> str:
            if values is None or m.group(1) not in values:
                raise KeyError(f"{spec_path}:{number}: placeholder <<{m.group(1)}>> has no value "
                               f"(given: {', '.join(sorted(values or {})) or 'none'})")
            return str(values[m.group(1)])
        out.append((number, wanted, _PLACEHOLDER.sub(value, line)))
    return out


def _context(lines: list[str], center: int, mark: int | None = None) -> str:
    lo, hi = max(0, center - CONTEXT_LINES), min(len(lines), center + CONTEXT_LINES + 1)
    return "\n".join(f"{'>' if i == mark else ' '}{i + 1:5} | {lines[i]}" for i in range(lo, hi))


def expect_lines(text: str, spec_path: Path, values: dict[str, object] | None = None,
                 what: str = "the rendered text") -> None:
    """Check ``text`` against the spec file: each wanted line, stripped of trailing whitespace, must be
    a whole line of ``text`` after the line the previous wanted line matched; each ``!`` line must be
    no line of ``text`` at all. Every miss is reported, with the rendered text around where the line
    was looked for."""
    spec_path = Path(spec_path)
    lines = [line.rstrip() for line in text.splitlines()]
    problems = []
    after = -1                                  # index of the line the previous wanted line matched
    for number, wanted, line in spec_lines(spec_path, values):
        where = f"{spec_path.name}:{number}"
        if wanted:
            found = next((i for i in range(after + 1, len(lines)) if lines[i] == line), None)
            if found is not None:
                after = found
                continue
            earlier = [i + 1 for i in range(0, after + 1) if lines[i] == line]
            close = difflib.get_close_matches(line, lines[after + 1:], n=1, cutoff=0.6)
            msg = [f"{where}: missing line {line!r}"
                   + (f" after line {after + 1} (it is only at line(s) {earlier}, too early)" if earlier
                      else f" after line {after + 1}" if after >= 0 else "")]
            if close:
                msg.append(f"  closest line after that: {close[0]!r}")
            msg.append(f"  {what} after the previous match:" if after >= 0 else f"  {what} begins:")
            msg.append(_context(lines, max(after, 0) + CONTEXT_LINES, after if after >= 0 else None))
            problems.append("\n".join(msg))
        else:
            hits = [i for i, have in enumerate(lines) if have == line]
            if hits:
                problems.append(f"{where}: line {line!r} must not appear, yet it is line {hits[0] + 1}:\n"
                                + _context(lines, hits[0], hits[0]))
    if problems:
        raise AssertionError(f"{what} does not match {spec_path} ({len(problems)} problem"
                             f"{'s' if len(problems) > 1 else ''}):\n\n" + "\n\n".join(problems))
