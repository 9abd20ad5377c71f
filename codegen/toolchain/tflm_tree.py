"""The TFLM source tree: where it is, which version, and which of its files a model needs.

No package registry carries TFLM's C++ sources; tfgen takes a self-contained tree (Espressif's
``esp-tflite-micro``: TFLM + flatbuffers + gemmlowp + ruy + kissfft) from ``--tflm-dir`` or
``TFGEN_TFLM_DIR``. Only the kernels of the model's ops are selected; the core is always needed.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from codegen.toolchain import tflm_fetch
from codegen.errors import TfgenError
from codegen.toolchain.tflm_fetch import PINNED_VERSION   # the esp-tflite-micro release every project uses
from codegen.model.tflm_ops import load_op_set

ENV_VAR = "TFGEN_TFLM_DIR"
KERNELS_DIR = "tensorflow/lite/micro/kernels"
# TFLM's signal library (the audio front end's CUSTOM ops, SignalWindow, SignalRfft, ...): its kernels,
# which register with ``TFLMRegistration* Register_*()``, and the DSP routines they call.
SIGNAL_KERNELS_DIR = "signal/micro/kernels"
SIGNAL_SRC_DIR = "signal/src"

# The interpreter core, as esp-tflite-micro's CMakeLists.txt lists it (less the kernels).
CORE_SOURCES = (
    "tensorflow/lite/micro/debug_log.cc",
    "tensorflow/lite/micro/flatbuffer_utils.cc",
    "tensorflow/lite/micro/memory_helpers.cc",
    "tensorflow/lite/micro/micro_allocation_info.cc",
    "tensorflow/lite/micro/micro_allocator.cc",
    "tensorflow/lite/micro/micro_context.cc",
    "tensorflow/lite/micro/micro_interpreter_context.cc",
    "tensorflow/lite/micro/micro_interpreter_graph.cc",
    "tensorflow/lite/micro/micro_interpreter.cc",
    "tensorflow/lite/micro/micro_log.cc",
    "tensorflow/lite/micro/micro_op_resolver.cc",
    "tensorflow/lite/micro/micro_profiler.cc",
    "tensorflow/lite/micro/micro_resource_variable.cc",
    "tensorflow/lite/micro/micro_time.cc",
    "tensorflow/lite/micro/micro_utils.cc",
    "tensorflow/lite/micro/recording_micro_allocator.cc",
    "tensorflow/lite/micro/system_setup.cc",
    "tensorflow/lite/micro/tflite_bridge/flatbuffer_conversions_bridge.cc",
    "tensorflow/lite/micro/tflite_bridge/micro_error_reporter.cc",
    "tensorflow/lite/micro/memory_planner/greedy_memory_planner.cc",
    "tensorflow/lite/micro/memory_planner/linear_memory_planner.cc",
    "tensorflow/lite/micro/memory_planner/non_persistent_buffer_planner_shim.cc",
    "tensorflow/lite/micro/arena_allocator/non_persistent_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/persistent_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/recording_single_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.cc",
    "tensorflow/lite/micro/kernels/kernel_util.cc",
    "tensorflow/lite/micro/kernels/micro_tensor_utils.cc",
    "tensorflow/lite/kernels/kernel_util.cc",
    "tensorflow/lite/core/c/common.cc",
    "tensorflow/lite/core/api/flatbuffer_conversions.cc",
    "tensorflow/lite/core/api/tensor_utils.cc",
    "tensorflow/lite/kernels/internal/common.cc",
    "tensorflow/lite/kernels/internal/quantization_util.cc",
    "tensorflow/lite/kernels/internal/portable_tensor_utils.cc",
    "tensorflow/lite/kernels/internal/tensor_utils.cc",
    "tensorflow/lite/kernels/internal/tensor_ctypes.cc",
    "tensorflow/lite/kernels/internal/reference/portable_tensor_utils.cc",
    "tensorflow/compiler/mlir/lite/core/api/error_reporter.cc",
    "tensorflow/compiler/mlir/lite/schema/schema_utils.cc",
)

# Header directories a build needs, relative to the tree (the tree's root comes first).
INCLUDE_DIRS = (".", "third_party/flatbuffers/include", "third_party/gemmlowp", "third_party/ruy",
                "third_party/kissfft")
# What a project copies besides the selected sources: every header, and the licences.
HEADER_ROOTS = ("tensorflow", "third_party/flatbuffers/include", "third_party/gemmlowp",
                "third_party/ruy", "third_party/kissfft", "signal")
# Sources that other sources #include (the signal library's kiss_fft wrappers include kissfft's .c
# files inside a namespace): copied with the headers, never compiled on their own.
TEXTUAL_INCLUDES = ("third_party/kissfft/kiss_fft.c", "third_party/kissfft/tools/kiss_fftr.c")
NOT_COMPILED_DIRS = ("third_party/kissfft",)
LICENSES = ("LICENSE", "third_party/flatbuffers/LICENSE", "third_party/gemmlowp/LICENSE",
            "third_party/ruy/LICENSE", "third_party/kissfft/COPYING")

# Kernel files that one op's kernel needs beyond its own file and its <stem>_common.cc. Proven by the
# link test in tools/code_size.py (`python -m tools.code_size`), which links a program per op from
# the core and only the selected kernel files; an unresolved symbol names the file to add here.
EXTRA_KERNEL_FILES = {
    # CalculateOpDataConv and the conv tensor indices (kConvBiasTensor, ...) live in conv_common.cc
    "DEPTHWISE_CONV_2D": ("conv_common.cc",),
    # DecodeState::Create* and the LUT, Huffman and prune decoders
    "TFLM_DECODE": ("decode_state.cc", "decode_state_huffman.cc", "decode_state_lut.cc",
                    "decode_state_prune.cc"),
    # FftAutoScalePrepare/Eval, shared with the kernel file that registers it
    "SignalFftAutoScale": ("fft_auto_scale_common.cc",),
    # the LSTM evaluator, and CalculateOpDataFullyConnected for its gates
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("fully_connected_common.cc", "lstm_eval.cc", "lstm_eval_common.cc"),
}

_DEFINES = re.compile(r"^TFLMRegistration\s*\*?\s*(Register_\w+)\s*\(", re.M)


@dataclass(frozen=True)
class TflmTree:
    root: Path
    version: str            # e.g. "esp-tflite-micro 1.3.8"

    def sources_for_ops(self, ops: list[str]) -> list[str]:
        """Core sources plus the kernel files of ``ops`` (builtin names), relative, sorted."""
        return sorted(set(CORE_SOURCES) | set(kernel_sources(self, ops)))

    def headers(self) -> list[str]:
        found = []
        for top in HEADER_ROOTS:
            base = self.root / top
            if base.is_dir():
                found += [p.relative_to(self.root).as_posix() for p in base.rglob("*.h")]
        return sorted(found + [p for p in TEXTUAL_INCLUDES if (self.root / p).is_file()])

    def licenses(self) -> list[str]:
        return [p for p in LICENSES if (self.root / p).is_file()]


def resolve(option: Path | None = None, download: bool = True) -> TflmTree:
    """The TFLM tree, from the first of: --tflm-dir, TFGEN_TFLM_DIR, tfgen's cache, or (when
    ``download``) the pinned esp-tflite-micro archive, downloaded, checked and cached."""
    chosen = option or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    if chosen is not None:
        return open_tree(chosen)
    cached = tflm_fetch.cached_tree()
    if cached is not None:
        return open_tree(cached)
    if not download:
        raise TfgenError(
            "no TFLM source tree: the project needs TFLM's C++ sources and none is cached",
            f"pass --tflm-dir DIR or set {ENV_VAR}=DIR, DIR being an espressif/esp-tflite-micro "
            f"v{PINNED_VERSION} checkout")
    return open_tree(tflm_fetch.download())


def available(option: Path | None = None) -> TflmTree | None:
    """The tree from --tflm-dir, TFGEN_TFLM_DIR or the cache, without downloading; None if none."""
    if option or os.environ.get(ENV_VAR) or tflm_fetch.cached_tree():
        return resolve(option, download=False)
    return None


def open_tree(root: Path) -> TflmTree:
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise TfgenError(f"{root}: no such directory for the TFLM tree",
                         f"point --tflm-dir/{ENV_VAR} at an esp-tflite-micro checkout")
    missing = [p for p in CORE_SOURCES if not (root / p).is_file()]
    if missing:
        raise TfgenError(f"{root}: not a TFLM tree tfgen can use ({len(missing)} core files missing, "
                         f"e.g. {missing[0]})",
                         f"use espressif/esp-tflite-micro v{PINNED_VERSION}")
    return TflmTree(root, tflm_fetch.tree_version(root) or "TFLM tree of unknown version")


@lru_cache(maxsize=8)
def _registrations(root: Path) -> dict[str, str]:
    """Register_* function -> the tree-relative kernel file that defines it (TFLM's kernels first,
    then the signal library's)."""
    found: dict[str, str] = {}
    for folder in (KERNELS_DIR, SIGNAL_KERNELS_DIR):
        for path in sorted((root / folder).glob("*.cc")):
            for fn in _DEFINES.findall(path.read_text(encoding="utf-8", errors="replace")):
                found.setdefault(fn, f"{folder}/{path.name}")
    return found


def _kernel_file(tree: TflmTree, op: str) -> str:
    """The tree-relative kernel file defining ``op``'s Register_* function."""
    op_set = load_op_set()
    defined = _registrations(tree.root)
    method = op_set.method_for(op)
    registration = op_set.registrations.get(method or "")
    if registration is None or registration not in defined:
        raise TfgenError(f"{tree.root}: no kernel source for op {op} ({registration or 'no Register_ function'})",
                         f"use espressif/esp-tflite-micro v{PINNED_VERSION}, whose kernels tfgen knows")
    return defined[registration]


def kernel_main_file(tree: TflmTree, op: str) -> str:
    """The kernel file defining ``op``'s Register_* function: its name for TFLM's own kernels (as
    CMSIS-NN names its wrappers), its tree-relative path for the signal library's."""
    rel = _kernel_file(tree, op)
    return rel.removeprefix(KERNELS_DIR + "/")


def signal_library(tree: TflmTree) -> list[str]:
    """The signal library's DSP sources (tree-relative), which its kernels call."""
    base = tree.root / SIGNAL_SRC_DIR
    return sorted(p.relative_to(tree.root).as_posix() for p in base.rglob("*.cc")) if base.is_dir() else []


def kernel_sources(tree: TflmTree, ops: list[str]) -> list[str]:
    """The kernel files that implement ``ops``: the file defining each op's Register_* function,
    its ``<stem>_common.cc`` when there is one, and the extras the table above names; for the signal
    library's ops also its DSP sources (unused ones cost nothing: the link drops unused sections)."""
    files: set[str] = set()
    for op in ops:
        main = _kernel_file(tree, op)
        folder = main.rsplit("/", 1)[0]
        files.add(main)
        common = main.removesuffix(".cc") + "_common.cc"
        if (tree.root / common).is_file():
            files.add(common)
        files.update(f"{folder}/{f}" for f in EXTRA_KERNEL_FILES.get(op, ()))
        if folder == SIGNAL_KERNELS_DIR:
            files.update(signal_library(tree))
    return sorted(files)
