"""Plan: the model's IR + a board -> the plain data a project is rendered from.

Every decision about what to emit is made here (which template kind, which ops, arena size and where
it lives, which TFLM files to copy, which PlatformIO environments); templates only place values.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from codegen import __version__
from codegen.toolchain import builder, cmsis_nn, esp_nn
from codegen.project import targets
from codegen.project.boards import Board
from codegen.project import aot as aot_mod
from codegen.project.environments import ESP_COMPONENT, MONITOR_SPEED, Environment, default_env, environments
from codegen.errors import TfgenError
from codegen.model.inspection import require_tflm_int8
from codegen.model.ir import ModelIR, Tensor
from codegen.project.naming import ModelNames, c_string_literal, model_symbol_names
from codegen.toolchain.tflm_fetch import PINNED_VERSION
from codegen.toolchain.tflm_tree import INCLUDE_DIRS, TflmTree

ARENA_MARGIN_PERCENT = 5          # at most this much is added to the measured arena (see arena_with_margin)
ARENA_ALIGN = 16
SDKCONFIG_COMMON = ("CONFIG_ESP_MAIN_TASK_STACK_SIZE=8192", "CONFIG_COMPILER_OPTIMIZATION_PERF=y")
# esp-nn's Kconfig: its optimized code (the default; what tfgen verifies), and the exact requantization:
# NN_SKIP_NUDGE's fast one differs from TFLite's by an LSB at half-shift boundaries.
SDKCONFIG_ESP_NN = ("CONFIG_NN_OPTIMIZED=y", "# CONFIG_NN_SKIP_NUDGE is not set")
SDKCONFIG_PSRAM = ("CONFIG_SPIRAM=y", "CONFIG_SPIRAM_MODE_OCT=y", "CONFIG_SPIRAM_USE_CAPS_ALLOC=y")
TFLITE_TYPES = {"int8": "kTfLiteInt8", "uint8": "kTfLiteUInt8", "int16": "kTfLiteInt16",
                "int32": "kTfLiteInt32", "float32": "kTfLiteFloat32", "bool": "kTfLiteBool"}
TFLM_LIB = "lib/tflm"
FIRMWARE_API = 1                  # tfgen_model.h <-> firmware/tfgen_runtime.h (TFGEN_FIRMWARE_API)


@dataclass(frozen=True)
class TensorPlan:
    name_literal: str
    type: str                 # TfLiteType enumerator
    dims: tuple[int, ...]
    dims_padded: tuple[int, ...]   # dims padded with zeros to 6 entries (TensorInfo::dims)
    bytes: int
    scale: str                # float literal, exact (repr of the float32 value)
    zero_point: int


@dataclass(frozen=True)
class QemuPlan:
    """The emulated board's files: its PlatformIO board, linker script and link flags."""
    board: str                # the emulated board: this one, or the Cortex-M4F stand-in (targets.emulated)
    machine: str              # QEMU's -M
    machine_name: str         # "MPS2 AN386"
    core_name: str            # "Cortex-M4F"
    gcc_cpu: str              # -mcpu
    float_flags: tuple[str, ...]   # -mfloat-abi/-mfpu: the board's extra_flags; the link needs them too
    link_flags: tuple[str, ...]    # what platformio_link.py adds to PlatformIO's link
    f_cpu: int
    flash_origin: str
    flash_length: int
    flash_size: str           # for the linker script: "4M", "512K" or bytes
    ram_origin: str
    ram_length: int
    ram_size: str
    docs_url: str


@dataclass(frozen=True)
class ProjectPlan:
    kind: str                 # template family: "espidf", "arduino", "baremetal" or "host"
    board: str
    board_description: str
    env_name: str             # the board's PlatformIO environment
    platform: str
    pio_board: str
    framework: str
    core: str
    kernels: str
    arena_placement: str      # "internal" or "psram"
    model_file: str           # the .tflite's file name
    model_sha256: str
    model_bytes: int
    names: ModelNames
    ops: tuple[str, ...]      # MicroMutableOpResolver Add* methods, in the model's order of first use
    registrations: tuple[str, ...]  # each method's argument: "" for TFLM's kernel, else the registration
    firmware_extras: tuple[str, ...]  # optional firmware/ files the project carries (tfgen_softmax)
    op_names: tuple[str, ...]
    arena_measured: int
    arena_source: str         # how arena_measured was measured, for the header's comment
    arena_size: int
    inputs: tuple[TensorPlan, ...]
    outputs: tuple[TensorPlan, ...]
    tflm_version: str
    tflm_files: tuple[str, ...]    # relative to the TFLM tree; copied to lib/tflm/
    tflm_root: str
    library_files: tuple[tuple[str, str], ...]    # (path in lib/tflm/, source file): wrappers + library
    optimized_ops: tuple[str, ...]  # builtin ops whose kernel is a CMSIS-NN or ESP-NN wrapper
    defines: tuple[str, ...]       # preprocessor flags every file of the project needs (-DCMSIS_NN)
    library_version: str           # the kernel library's version; "" with TFLM's reference kernels
    kernel_notes: tuple[str, ...]  # what the report must say about the kernels (e.g. the chip's assembly)
    include_dirs: tuple[str, ...]  # relative to the project
    with_vectors: bool
    vector_count: int
    environments: tuple[Environment, ...]   # the PlatformIO environments, the board's own first
    default_env: str
    template_groups: tuple[str, ...]        # templates/<group>/ rendered into the project
    sdkconfig: tuple[str, ...]              # ESP-IDF's sdkconfig.defaults lines
    arena_in_heap: bool                     # allocated at start-up (ESP-IDF), not a static array
    qemu: QemuPlan | None                   # the emulated board's files, with a `qemu` environment
    monitor_speed: int
    banner: tuple[str, ...]
    regenerate: str
    runtime: str = "tflm"                   # "tflm" (the interpreter) or "aot" (the model as code: aot.py)
    aot: aot_mod.AotPlan | None = None

    @property
    def environment_names(self) -> list[str]:
        return [e.name for e in self.environments]

    def template_data(self) -> dict:
        data = asdict(self)
        data["names"] = asdict(self.names)
        data["environment_names"] = self.environment_names
        return data


def arena_with_margin(measured: int) -> int:
    """The arena constant: the measured bytes plus at most ARENA_MARGIN_PERCENT, a multiple of
    ARENA_ALIGN (rounded down within the margin; never below the measurement)."""
    up = -(-measured // ARENA_ALIGN) * ARENA_ALIGN
    within = measured * (100 + ARENA_MARGIN_PERCENT) // 100 // ARENA_ALIGN * ARENA_ALIGN
    return max(up, within)


def template_kind(board: Board) -> str:
    if board.arch == "host":
        return "host"
    if board.platformio.framework == "espidf":
        return "espidf"
    if board.qemu is not None and not board.platformio.board:
        return "baremetal"
    return "arduino"


def _tensor(t: Tensor) -> TensorPlan:
    if t.dtype not in TFLITE_TYPES:
        raise TfgenError(f"tensor {t.name!r} has dtype {t.dtype}, which the generated header cannot describe",
                         f"inputs and outputs must be one of {', '.join(TFLITE_TYPES)}")
    if len(t.shape) > 6:
        raise TfgenError(f"tensor {t.name!r} has {len(t.shape)} dimensions; at most 6 are supported",
                         "reshape the model's inputs/outputs")
    q = t.quantization
    scale = float(q.scales[0]) if q else 0.0
    zero_point = q.zero_points[0] if q and q.zero_points else 0
    if not (math.isfinite(scale) and scale >= 0 and math.isfinite(float(np.float32(scale)))):
        raise TfgenError(f"tensor {t.name!r} has the scale {scale!r}, which is no quantization scale",
                         "re-export the model: the converter writes finite, positive scales")
    if not -(1 << 31) <= zero_point < (1 << 31) or any(not 0 <= d < (1 << 31) for d in t.shape):
        raise TfgenError(f"tensor {t.name!r} has the zero point {zero_point} or a dimension of {list(t.shape)} "
                         "outside 32 bits", "re-export the model: TFLM keeps both in 32-bit ints")
    return TensorPlan(c_string_literal(t.name), TFLITE_TYPES[t.dtype], tuple(t.shape),
                      tuple(t.shape) + (0,) * (6 - len(t.shape)),
                      t.elements * {"int8": 1, "uint8": 1, "bool": 1, "int16": 2}.get(t.dtype, 4),
                      _float_literal(scale), zero_point)


def _float_literal(value: float) -> str:
    """A C float literal that parses back to exactly this float32 value."""
    text = np.format_float_scientific(np.float32(value), unique=True)
    return text.replace("e+", "e") + "f"


def _size(n: int) -> str:
    return f"{n >> 20}M" if n % (1 << 20) == 0 else f"{n >> 10}K" if n % 1024 == 0 else str(n)


def _qemu_plan(target: targets.BoardTarget) -> QemuPlan:
    board = target.board
    flags = targets.CORE_FLAGS[board.core]
    fl = tuple(f for f in flags if f.startswith(("-mfloat-abi", "-mfpu")))
    q = board.qemu
    docs = ("https://www.qemu.org/docs/master/system/arm/mps2.html" if q.machine.startswith("mps")
            else "https://www.qemu.org/docs/master/system/target-arm.html")
    return QemuPlan(board.name, q.machine, target.machine_name, target.core_name, flags[0].removeprefix("-mcpu="), fl,
                    (*fl, *builder.ARM_LINK_FLAGS), board.cpu_mhz * 1_000_000,
                    f"{q.flash.origin:#010x}", q.flash.length, _size(q.flash.length),
                    f"{q.ram.origin:#010x}", q.ram.length, _size(q.ram.length), docs)


HOST_ARENA = ("the smallest arena with which the tflite_micro interpreter runs this model on a 64-bit "
              "host, an upper bound for 32-bit targets")


REFERENCE_SOFTMAX = "tfgen::Register_SOFTMAX_REFERENCE()"


def _sdkconfig(board: Board) -> tuple[str, ...]:
    """Run at the board's full speed; TFLM's arena is allocated at start-up, the main task needs room
    for the interpreter; ESP-NN exact; PSRAM for the arena where the board puts it there."""
    return (f"CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_{board.cpu_mhz}=y", *SDKCONFIG_COMMON, *SDKCONFIG_ESP_NN,
            *(SDKCONFIG_PSRAM if board.arena_placement == "psram" else ()))


def esp_softmax_overruns(ir: ModelIR) -> list[int]:
    """The SOFTMAX operators (indices) whose input esp-tflite-micro's ESP-NN softmax would overrun its
    scratch buffer with: int8 to int8 (the ESP-NN path), the buffer sized dims[1] * 4 bytes while the
    kernel writes 4 bytes per element of the last dimension (firmware/tfgen_softmax.h)."""
    found = []
    for i, op in enumerate(ir.operators):
        if op.name != "SOFTMAX" or op.subgraph != 0:
            continue
        x, y = ir.tensors[op.inputs[0]], ir.tensors[op.outputs[0]]
        shape = list(x.shape)
        if x.dtype == "int8" and y.dtype == "int8" and (len(shape) < 2 or shape[1] < shape[-1]):
            found.append(i)
    return found


def _overrun_notes(ir: ModelIR, overrun: list[int]) -> tuple[str, ...]:
    if not overrun:
        return ()
    shapes = ", ".join(f"op {i} (input {'x'.join(map(str, ir.tensors[ir.operators[i].inputs[0]].shape))})"
                       for i in overrun)
    return (f"SOFTMAX {shapes}: esp-tflite-micro's ESP-NN softmax sizes its scratch buffer from the input's "
            "dims[1] but writes the last dimension's worth, past the buffer; the project registers TFLM's "
            "reference softmax instead (src/tfgen_softmax.cc), on the chip and off it",)


@dataclass(frozen=True)
class KernelChoice:
    """Which kernel sources a project carries (in lib/tflm/) and how they are compiled."""
    kernels: str
    tflm_files: tuple[str, ...] = ()
    library_files: tuple[tuple[str, str], ...] = ()
    optimized: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()
    include_dirs: tuple[str, ...] = INCLUDE_DIRS
    version: str = ""


def choose_kernels(ir: ModelIR, board: Board, kind: str, tree: TflmTree | None, cmsis: cmsis_nn.CmsisNn | None,
                   espnn: esp_nn.EspNn | None) -> KernelChoice:
    """The board's kernel library where it is given and the board runs it (CMSIS-NN on Cortex-M,
    ESP-NN on ESP chips, replacing the reference files of the ops they wrap), else TFLM's reference
    kernels. No tree: nothing to copy (an ESP-IDF project takes TFLM from its component)."""
    if tree is None:
        return KernelChoice(board.kernels)
    op_names = [u.name for u in ir.ops]
    sources = tree.sources_for_ops(op_names)
    rest = tuple(tree.headers() + tree.licenses())
    if cmsis is not None and board.kernels == "cmsis-nn" and kind != "espidf":
        sel = cmsis.select(sources)
        return KernelChoice("cmsis-nn", tuple(sel.kernel_files) + rest,
                            tuple((dest, str(src)) for dest, src in sel.files),
                            tuple(cmsis_nn.optimized_ops(tree, op_names, sel.wrappers)), cmsis_nn.DEFINES,
                            INCLUDE_DIRS + cmsis_nn.INCLUDE_DIRS, cmsis.version)
    if espnn is not None and board.kernels == "esp-nn":
        kept, wrappers, used = esp_nn.select(tree.root, sources)
        optimized = tuple(cmsis_nn.optimized_ops(tree, op_names, tuple(used)))
        files = tuple((dest, str(src)) for dest, src in (*wrappers, *espnn.files()))
        return KernelChoice("esp-nn", tuple(kept) + rest, files, optimized, esp_nn.defines(board.chip),
                            INCLUDE_DIRS + esp_nn.INCLUDE_DIRS, espnn.version)
    return KernelChoice("reference", tuple(sources) + rest)


def make_plan(ir: ModelIR, board: Board, arena_measured: int, tree: TflmTree | None,
              vector_count: int, command: str, arena_source: str = HOST_ARENA,
              cmsis: cmsis_nn.CmsisNn | None = None, espnn: esp_nn.EspNn | None = None,
              runtime: str = "tflm", model: bytes = b"") -> ProjectPlan:
    """``cmsis``/``espnn``: the board's kernel library (``choose_kernels``); else TFLM's reference
    kernels. ``runtime`` "aot": the model as code (``aot``; ``model``'s bytes give the weights)."""
    require_tflm_int8(ir)
    kind = template_kind(board)
    aot_mod.check_runtime(ir, runtime)
    ops = tuple(u.tflm_method for u in ir.ops)
    tflm_version = f"esp-tflite-micro {PINNED_VERSION}"
    if tree is not None:
        if kind == "espidf" and tree.version != tflm_version:
            raise TfgenError(
                f"{tree.root}: is {tree.version}, but ESP32 projects use the {ESP_COMPONENT} "
                f"{PINNED_VERSION} component, and the host simulation must run the same TFLM",
                f"use an esp-tflite-micro v{PINNED_VERSION} checkout for --tflm-dir/TFGEN_TFLM_DIR")
        tflm_version = tree.version
    if runtime == "aot":
        k = _aot_kernels(ir, board, kind, tree, cmsis, espnn)
        lowered = aot_mod.lower(ir, model, k.kernels, board.core, board.chip)
        library = {"cmsis-nn": "cmsis_", "esp-nn": "esp_"}.get(k.kernels)
        if library:                             # the ops the generated code runs in the library
            k = replace(k, optimized=tuple(dict.fromkeys(
                o.name for o in lowered.ops if o.kind.startswith(library))))
    else:
        k, lowered = choose_kernels(ir, board, kind, tree, cmsis, espnn), None
    overrun = esp_softmax_overruns(ir) if board.kernels == "esp-nn" and not lowered else []   # aot sizes it
    registrations = tuple(REFERENCE_SOFTMAX if u.name == "SOFTMAX" and overrun else "" for u in ir.ops)
    optimized = tuple(o for o in k.optimized if not (o == "SOFTMAX" and overrun))   # replaced: see above
    kernel_notes = ((esp_nn.device_notes(board.chip, optimized) if k.kernels == "esp-nn" else ())
                    + _overrun_notes(ir, overrun))
    tflm_files, defines = k.tflm_files, k.defines
    names = model_symbol_names(Path(ir.source).stem)
    include_dirs = tuple(f"{TFLM_LIB}/{d}".rstrip("/.") if d != "." else TFLM_LIB for d in k.include_dirs)
    emulated = targets.emulated(board)
    envs = environments(kind, emulated, bool(tflm_files), defines, include_dirs, board)
    qemu = _qemu_plan(emulated) if any(e.role == "qemu" for e in envs) else None
    groups = ("common", *(("espidf",) if kind == "espidf" else ()), *(("tflm",) if tflm_files else ()),
              *(("aot",) if lowered else ()),
              *(("espnn",) if k.kernels == "esp-nn" and tflm_files else ()), *(("qemu",) if qemu else ()))
    banner = (f"Generated by tfgen {__version__} from {ir.source} (sha256 {ir.sha256}) for board {board.name}.",
              "Do not edit: regenerate with the command below.", command)
    return ProjectPlan(
        kind=kind, board=board.name, board_description=board.description,
        env_name=board.name, platform=board.platformio.platform, pio_board=board.platformio.board,
        framework=board.platformio.framework, core=board.core, kernels=k.kernels,
        arena_placement=board.arena_placement, model_file=ir.source, model_sha256=ir.sha256,
        model_bytes=ir.size_bytes, names=names, ops=ops, registrations=registrations,
        firmware_extras=("tfgen_softmax",) if overrun else (), op_names=tuple(u.name for u in ir.ops),
        arena_measured=arena_measured, arena_source=arena_source,
        arena_size=lowered.activation_bytes if lowered else arena_with_margin(arena_measured),
        inputs=tuple(_tensor(t) for t in ir.inputs), outputs=tuple(_tensor(t) for t in ir.outputs),
        tflm_version=tflm_version, tflm_files=tflm_files, tflm_root=str(tree.root) if tree else "",
        library_files=k.library_files, defines=defines, optimized_ops=optimized,
        library_version=k.version, kernel_notes=kernel_notes, include_dirs=include_dirs if tflm_files else (),
        with_vectors=vector_count > 0, vector_count=vector_count, environments=envs,
        default_env=default_env(kind, envs), template_groups=groups,
        sdkconfig=_sdkconfig(board) if kind == "espidf" else (),
        arena_in_heap=kind == "espidf", qemu=qemu, monitor_speed=MONITOR_SPEED, banner=banner, regenerate=command,
        runtime=runtime, aot=lowered)


def _aot_kernels(ir: ModelIR, board: Board, kind: str, tree: TflmTree | None,
                 cmsis: cmsis_nn.CmsisNn | None, espnn: esp_nn.EspNn | None = None) -> KernelChoice:
    """The aot runtime's sources: TFLM's headers (the reference kernel functions, the types) and two .cc
    files; with CMSIS-NN (a Cortex-M board given its setup) the library's sources of the model's ops,
    without TFLM's wrappers (the generated code calls the library as they do); with esp-nn (an ESP
    board) its generic C for the builds off the chip (the ESP-IDF build takes the esp-nn component)."""
    if tree is None:
        raise TfgenError("--runtime aot compiles TFLM's kernel functions and headers, and there is no TFLM tree",
                         "pass --tflm-dir DIR, set TFGEN_TFLM_DIR, or let tfgen download the pinned release")
    rest = tuple(aot_mod.TFLM_SOURCES) + tuple(tree.headers() + tree.licenses())
    if espnn is not None and board.kernels == "esp-nn":
        return KernelChoice("esp-nn", rest, tuple((dest, str(src)) for dest, src in espnn.files()), (),
                            esp_nn.defines(board.chip), INCLUDE_DIRS + esp_nn.INCLUDE_DIRS, espnn.version)
    if cmsis is None or board.kernels != "cmsis-nn" or kind == "espidf":
        return KernelChoice("reference", rest)
    sel = cmsis.select(tree.sources_for_ops([u.name for u in ir.ops]))
    library = tuple((dest, str(src)) for dest, src in sel.files if not dest.startswith(cmsis_nn.WRAPPERS_DIR))
    return KernelChoice("cmsis-nn", rest, library, (), cmsis_nn.DEFINES,
                        INCLUDE_DIRS + cmsis_nn.INCLUDE_DIRS, cmsis.version)
