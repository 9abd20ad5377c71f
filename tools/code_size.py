"""Measured flash and RAM of TFLM per op, per Cortex-M core: the table ``fit`` reads.

Every op's kernel selection (``tflm_tree.kernel_sources``) is also link-tested here: the core and all
kernel files are compiled once per core with arm-none-eabi-g++, then for each op a tiny program (an
interpreter plus a ``MicroMutableOpResolver`` that adds just that op) is linked from the core objects
and only the kernel objects the selection names. An unresolved symbol means the selection misses a
file; the error names the file that defines it. Regenerate the committed table with::

    python -m tools.code_size --tflm-dir PATH/TO/esp-tflite-micro --cmsis-nn-dir SETUP \
        --update codegen/data/code_size.json > new.json && mv new.json codegen/data/code_size.json

(``--kernels cmsis-nn`` or ``--core C`` re-measures only that part; ``--update`` keeps the rest of
the old table, and its ``notes``.)

Flags follow TFLM's own Makefile (``tools/make/Makefile``, target ``cortex_m_generic``, the default
build type, which keeps error strings so the firmware can say why allocation failed): core files at
-Os, kernel files at -O2. Sizes come from ``arm-none-eabi-size`` (Berkeley format): flash = text
(code + rodata) + data, RAM = data + bss. An op's figure is its program's flash minus the program
with an empty resolver. Summing those over a model's ops over-counts the helpers several ops share
(quantization utilities, reference kernels); ``shared_symbols``/``ops_shared`` record those helpers
so that ``ops_flash`` counts them once, and ``combination`` checks both sums against programs that
link the keyword-spotting op set and all ops together.

The same is measured a second time with CMSIS-NN (``KernelSet``), for the cores of the boards whose
kernels are cmsis-nn (M4F, M7): each op links the kernel selection ``cmsis_nn.CmsisNn.select`` makes
for a project (the wrapper in place of the reference kernel file, plus the CMSIS-NN library sources
that wrapper reaches; ops without a wrapper keep their reference files), and every file is compiled
with ``-DCMSIS_NN`` as in a project. The wrappers are kernel sources and the library's C files
third-party kernel sources, both at TFLM's -O2 (KERNEL_OPTIMIZATION_LEVEL,
THIRD_PARTY_KERNEL_OPTIMIZATION_LEVEL); the result is the table's ``cmsis-nn`` section.

This is developer tooling, run from the checkout (arm-none-eabi-gcc, a TFLM tree) and not in the
wheel: tfgen only reads the table, with ``codegen.project.code_size`` (``load_table``, ``ops_flash``).
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from codegen.toolchain import cmsis_nn, proc
from codegen.errors import TfgenError
from codegen.model.tflm_ops import load_op_set
from codegen.project.code_size import ops_flash
from codegen.toolchain.tflm_tree import (CORE_SOURCES, INCLUDE_DIRS, KERNELS_DIR, SIGNAL_KERNELS_DIR, TflmTree, kernel_sources,
                               open_tree, signal_library)

CXX = "arm-none-eabi-g++"
CC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
COMPILE_TIMEOUT_S = 600
LINK_TIMEOUT_S = 120

# -mcpu/-mfpu/-mfloat-abi per core, as TFLM's cortex_m_generic target sets them for +fp variants.
CORE_FLAGS: dict[str, tuple[str, ...]] = {
    "cortex-m4f": ("-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"),
    "cortex-m7": ("-mcpu=cortex-m7", "-mfpu=fpv5-d16", "-mfloat-abi=hard"),
    "cortex-m0plus": ("-mcpu=cortex-m0plus", "-mfloat-abi=soft"),
}
# TFLM Makefile COMMON_FLAGS + CXXFLAGS + cortex_m_generic PLATFORM_FLAGS (warnings left out).
CXXFLAGS = ("-std=c++17", "-mthumb", "-mlittle-endian", "-funsigned-char", "-fomit-frame-pointer",
            "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics", "-fno-unwind-tables",
            "-fno-asynchronous-unwind-tables", "-ffunction-sections", "-fdata-sections",
            "-fmessage-length=0", "-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON",
            "-DTF_LITE_MCU_DEBUG_LOG")
# TFLM Makefile CCFLAGS, for the C sources (CMSIS-NN's library): CXXFLAGS less the C++-only flags.
CFLAGS = ("-std=c17", *(f for f in CXXFLAGS if f not in ("-std=c++17", "-fno-rtti", "-fno-exceptions",
                                                         "-fno-threadsafe-statics")))
CORE_OPT = "-Os"        # TFLM Makefile CORE_OPTIMIZATION_LEVEL (gcc)
KERNEL_OPT = "-O2"      # TFLM Makefile KERNEL_OPTIMIZATION_LEVEL
LDFLAGS = ("--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections", "-Wl,--no-demangle")
LIBS = ("-lm",)

# The ops of MLPerf Tiny's keyword-spotting DS-CNN: linked together to check the sum of increments.
KWS_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX")
# The cores of the boards whose kernels are cmsis-nn (M4, M7): measured with CMSIS-NN too.
CMSIS_NN_CORES = ("cortex-m4f", "cortex-m7")
KERNEL_SETS = ("reference", "cmsis-nn")
# Resolver slots of the baseline and of the slot-cost probe (MicroMutableOpResolver<N> is static RAM).
SLOT_PROBE = 16
# Xtensa has no compiler here: its figures are the Cortex-M4F ones times this factor (XTENSA_NOTE).
XTENSA_FACTOR = 1.5
XTENSA_NOTE = ("not measured: Cortex-M4F figures x 1.5, an assumed allowance for Xtensa LX code "
               "density, esp-tflite-micro's -O3 and its ESP-NN kernels")

_UNDEFINED = re.compile(r"undefined reference to `([^']+)'")


class MissingKernelFiles(TfgenError):
    """A program did not link: ``files`` are the kernel files that define what was missing."""

    def __init__(self, message: str, files: list[str]):
        super().__init__(message, "add those files to EXTRA_KERNEL_FILES in codegen/toolchain/tflm_tree.py")
        self.files = files


@dataclass(frozen=True)
class Sizes:
    text: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss


def _object_name(rel: str) -> str:
    return rel.replace("/", "__").removesuffix(".cc").removesuffix(".c") + ".o"


def all_kernel_files(tree: TflmTree) -> list[str]:
    """Every kernel source in the tree's reference kernel directory (not the esp_nn/ ones), and the
    signal library's kernels and DSP sources."""
    return sorted([f"{KERNELS_DIR}/{p.name}" for p in (tree.root / KERNELS_DIR).glob("*.cc")]
                  + [f"{SIGNAL_KERNELS_DIR}/{p.name}" for p in (tree.root / SIGNAL_KERNELS_DIR).glob("*.cc")]
                  + signal_library(tree))


@dataclass(frozen=True)
class KernelSet:
    """The kernels a measurement links: TFLM's reference kernel files, or, with ``cmsis``, the files
    ``cmsis.select`` puts into a project (named by their path in ``lib/tflm/``), every file then
    compiled with -DCMSIS_NN and CMSIS-NN's include dirs."""
    cmsis: cmsis_nn.CmsisNn | None = None

    @property
    def name(self) -> str:
        return "reference" if self.cmsis is None else "cmsis-nn"

    def flags(self) -> tuple[str, ...]:
        if self.cmsis is None:
            return ()
        return (*cmsis_nn.DEFINES, f"-I{self.cmsis.library}", f"-I{self.cmsis.library / 'Include'}")

    def files(self, tree: TflmTree, ops: list[str] | None = None) -> list[str]:
        """The kernel sources a project for ``ops`` carries (None: for every kernel file the tree has)."""
        chosen = all_kernel_files(tree) if ops is None else kernel_sources(tree, ops)
        if self.cmsis is None:
            return chosen
        selection = self.cmsis.select(chosen)
        sources = [dest for dest, _ in selection.files if dest.endswith((".c", ".cc"))]
        return [*selection.kernel_files, *sources]

    def path(self, tree: TflmTree, rel: str) -> Path:
        if self.cmsis is not None and rel.startswith(cmsis_nn.WRAPPERS_DIR + "/"):
            return self.cmsis.wrappers / rel[len(cmsis_nn.WRAPPERS_DIR) + 1:]
        if self.cmsis is not None and rel.startswith(cmsis_nn.LIB_DEST + "/"):
            return self.cmsis.library / rel[len(cmsis_nn.LIB_DEST) + 1:]
        return tree.root / rel


REFERENCE = KernelSet()


def _compile_cmd(tree: TflmTree, core: str, src: Path, obj: Path, opt: str,
                 flags: tuple[str, ...] = (), kernel_set: "KernelSet | None" = None) -> list[str]:
    includes = [f"-I{tree.root / d}" for d in INCLUDE_DIRS]
    compiler, language = (CC, CFLAGS) if src.suffix == ".c" else (CXX, CXXFLAGS)
    return [compiler, *CORE_FLAGS[core], *language, *flags, opt, "-fstack-usage",
            *_prefix_maps(tree, kernel_set), *includes, "-c", str(src), "-o", str(obj)]


PREFIX_MAP_NOTE = ("-ffile-prefix-map: the TFLM tree as lib/tflm, CMSIS-NN's wrappers and library where a "
                   "project has them, so __FILE__ in TFLM's error strings is the same wherever the tree is")


def _prefix_maps(tree: TflmTree, kernel_set: "KernelSet | None") -> list[str]:
    """Source paths as a project has them: ``__FILE__`` (TFLM's error strings) lands in the image, so
    the figures must not depend on where the tree is. The sources map to their place in a generated
    project (``lib/tflm/...``); GCC uses the last map that matches."""
    maps = [(tree.root, "lib/tflm")]
    if kernel_set is not None and kernel_set.cmsis is not None:
        maps += [(kernel_set.cmsis.wrappers, f"lib/tflm/{cmsis_nn.WRAPPERS_DIR}"),
                 (kernel_set.cmsis.library, f"lib/tflm/{cmsis_nn.LIB_DEST}")]
    return [f"-ffile-prefix-map={Path(old).resolve()}={new}" for old, new in maps]


def compile_tree(tree: TflmTree, core: str, objdir: Path, jobs: int, kernels: list[str] | None = None,
                 kernel_set: KernelSet = REFERENCE) -> tuple[dict[str, Path], list[str]]:
    """Compile the core and ``kernels`` (default: every kernel file of ``kernel_set``); returns
    {relative source: object} and the kernel files that do not compile on their own, which no
    selection may name. Files under the kernels directory (also kernel_util.cc and
    micro_tensor_utils.cc, which tfgen counts as core) and CMSIS-NN's library at KERNEL_OPT, the rest
    at CORE_OPT."""
    objdir.mkdir(parents=True, exist_ok=True)
    chosen = kernel_set.files(tree) if kernels is None else kernels
    sources = sorted(set(CORE_SOURCES)) + [k for k in chosen if k not in CORE_SOURCES]

    def one(rel: str) -> tuple[str, Path | None]:
        obj = objdir / _object_name(rel)
        src = kernel_set.path(tree, rel)
        if obj.is_file() and obj.stat().st_mtime >= src.stat().st_mtime:
            return rel, obj                     # kept from an earlier run with --workdir
        opt = KERNEL_OPT if rel.startswith((KERNELS_DIR + "/", "signal/", cmsis_nn.LIB_DEST + "/")) else CORE_OPT
        result = proc.run(_compile_cmd(tree, core, src, obj, opt, kernel_set.flags(), kernel_set),
                          what=f"{CC if src.suffix == '.c' else CXX} {rel}",
                          timeout=COMPILE_TIMEOUT_S, check=rel in CORE_SOURCES)
        return rel, obj if result.returncode == 0 else None

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        done = list(pool.map(one, sources))
    objects = {rel: obj for rel, obj in done if obj is not None}
    failed = [rel for rel, obj in done if obj is None]
    return objects, failed


def program_source(methods: list[str], slots: int) -> str:
    """A program that builds an interpreter with a resolver adding ``methods``; the model and arena
    come through volatile pointers, so nothing is optimized away and no arena is counted."""
    adds = "".join(f"  resolver.{m}();\n" for m in methods)
    return (
        '#include <cstddef>\n#include <cstdint>\n'
        '#include "tensorflow/lite/micro/micro_interpreter.h"\n'
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n'
        'const unsigned char* volatile g_model;\nstd::uint8_t* volatile g_arena;\n'
        'volatile std::size_t g_arena_size;\n'
        'int main() {\n'
        f'  static tflite::MicroMutableOpResolver<{slots}> resolver;\n'
        f'{adds}'
        '  static tflite::MicroInterpreter interpreter(tflite::GetModel(g_model), resolver, g_arena,\n'
        '                                              g_arena_size);\n'
        '  if (interpreter.AllocateTensors() != kTfLiteOk) return 1;\n'
        '  return interpreter.Invoke() == kTfLiteOk ? 0 : 2;\n'
        '}\n')


def largest_frames(objdir: Path, count: int = 3) -> list[list]:
    """The largest stack frames GCC reports (-fstack-usage) over the compiled files: [bytes, function]."""
    frames = []
    for su in objdir.glob("*.su"):
        for line in su.read_text(encoding="utf-8", errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) >= 3 and parts[1].isdigit():
                frames.append([int(parts[1]), parts[0].rsplit(":", 1)[-1] + f" ({parts[2]})"])
    return sorted(frames, reverse=True)[:count]


def measure_size(elf: Path) -> Sizes:
    out = proc.run([SIZE, "-B", str(elf)], what=SIZE, timeout=60).stdout.splitlines()
    text, data, bss = (int(v) for v in out[1].split()[:3])
    return Sizes(text, data, bss)


@lru_cache(maxsize=None)
def _defined_symbols(obj: Path) -> frozenset[str]:
    out = proc.run(["arm-none-eabi-nm", "--defined-only", "-g", str(obj)], what="arm-none-eabi-nm",
                   timeout=60).stdout
    return frozenset(line.split()[-1] for line in out.splitlines() if line.strip())


def flash_symbols(elf: Path) -> set[tuple[str, int]]:
    """(name, size) of every sized symbol that occupies flash (code, rodata, initialised data), one per
    address (aliases dropped); ``main`` is left out, as it differs between programs."""
    out = proc.run(["arm-none-eabi-nm", "-S", "--defined-only", str(elf)], what="arm-none-eabi-nm",
                   timeout=60).stdout
    by_address: dict[int, tuple[str, int]] = {}
    for line in out.splitlines():
        parts = line.split(maxsplit=3)
        if len(parts) == 4 and parts[2] in "tTrRdDwWvV" and parts[3] != "main":
            address, key = int(parts[0], 16) & ~1, (parts[3], int(parts[1], 16))
            if address not in by_address or key < by_address[address]:
                by_address[address] = key
    return set(by_address.values())


def shared_symbols(per_op: dict[str, set[tuple[str, int]]]) -> tuple[list[list], dict[str, list[int]]]:
    """The symbols that more than one op pulls in (as [name, size]) and, per op, which of them it uses."""
    users: dict[tuple[str, int], int] = {}
    for syms in per_op.values():
        for key in syms:
            users[key] = users.get(key, 0) + 1
    shared = sorted(k for k, n in users.items() if n > 1)
    index = {k: i for i, k in enumerate(shared)}
    return ([list(k) for k in shared],
            {op: sorted(index[k] for k in syms if k in index) for op, syms in sorted(per_op.items())})


def link_program(tree: TflmTree, core: str, objects: dict[str, Path], kernels: list[str],
                 methods: list[str], slots: int, workdir: Path, tag: str,
                 flags: tuple[str, ...] = ()) -> Sizes:
    """Compile the program for ``methods`` (with ``flags``, a ``KernelSet``'s) and link it with the
    core and ``kernels`` objects only.

    An unresolved symbol is an error naming the kernel file that defines it."""
    src = workdir / f"{tag}.cc"
    src.write_text(program_source(methods, slots), encoding="utf-8")
    main_obj = workdir / f"{tag}.o"
    proc.run(_compile_cmd(tree, core, src, main_obj, CORE_OPT, flags), what=f"{CXX} {tag}.cc",
             timeout=COMPILE_TIMEOUT_S)
    elf = workdir / f"{tag}.elf"
    objs = [objects[c] for c in sorted(set(CORE_SOURCES))] + [objects[k] for k in kernels]
    result = proc.run([CXX, *CORE_FLAGS[core], "-mthumb", *LDFLAGS, str(main_obj), *map(str, objs),
                       *LIBS, "-o", str(elf)], what=f"linking {tag}", timeout=LINK_TIMEOUT_S, check=False)
    if result.returncode != 0:
        missing = sorted(set(_UNDEFINED.findall(result.stderr)))
        if not missing:
            raise TfgenError(f"linking {tag} for {core} failed: {proc.tail(result.stderr, 3)}")
        chosen = {objects[k] for k in kernels} | {objects[c] for c in CORE_SOURCES}
        owners = sorted({rel for rel, obj in objects.items() if obj not in chosen
                         for sym in missing if sym in _defined_symbols(obj)})
        raise MissingKernelFiles(f"{tag} does not link for {core}: {len(missing)} unresolved symbols, "
                                 f"e.g. {missing[0]}", owners)
    return measure_size(elf)


def measurable_ops(tree: TflmTree) -> dict[str, str]:
    """Op name -> resolver method for every builtin, plus the custom ops whose kernel the tree has
    (TFLM's kernels directory or the signal library's)."""
    op_set = load_op_set()
    ops = dict(op_set.builtins)
    for name, method in op_set.customs.items():
        try:
            kernel_sources(tree, [name])
        except TfgenError:
            continue
        ops[name] = method
    return ops


def measure_core(tree: TflmTree, core: str, jobs: int, workdir: Path, log=None,
                 kernel_set: KernelSet = REFERENCE) -> dict:
    say = log or (lambda _msg: None)
    what = f"{core} ({kernel_set.name} kernels)"
    flags = kernel_set.flags()
    start = time.monotonic()
    objects, failed = compile_tree(tree, core, workdir / "obj", jobs, kernel_set=kernel_set)
    compile_s = time.monotonic() - start
    say(f"{what}: compiled {len(objects)} files in {compile_s:.0f} s ({len(failed)} kernel files do not "
        f"compile stand-alone: {', '.join(Path(f).name for f in failed) or 'none'})")
    progs = workdir / "prog"
    progs.mkdir(exist_ok=True)
    base = link_program(tree, core, objects, [], [], 1, progs, "baseline", flags)
    probe = link_program(tree, core, objects, [], [], SLOT_PROBE, progs, "slots", flags)
    ops = measurable_ops(tree)

    def one(item: tuple[str, str]) -> tuple[str, Sizes, list[str]]:
        op, method = item
        kernels = kernel_set.files(tree, [op])
        unusable = [k for k in kernels if k not in objects]
        if unusable:
            raise TfgenError(f"{op}: its kernel files do not compile for {what}: {', '.join(unusable)}")
        try:
            return op, link_program(tree, core, objects, kernels, [method], 1, progs, op, flags), kernels
        except MissingKernelFiles as first:
            extra: list[str] = []
            error = first
            while error.files:            # add the defining files until it links: the full set
                extra += error.files
                try:
                    link_program(tree, core, objects, kernels + extra, [method], 1, progs, op, flags)
                    break
                except MissingKernelFiles as again:
                    error = again
            names = ", ".join(Path(f).name for f in extra) or "no compiled file defines them"
            raise MissingKernelFiles(f"{first.message}; it links with {names} added", extra) from None

    def guarded(item: tuple[str, str]):
        try:
            return one(item)
        except TfgenError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(guarded, sorted(ops.items())))
    errors = [r for r in results if isinstance(r, TfgenError)]
    if errors:
        raise TfgenError(f"{len(errors)} ops do not link for {what}: "
                         + "; ".join(e.message for e in errors), errors[0].hint)
    measured = results
    base_syms = flash_symbols(progs / "baseline.elf")
    entry: dict = {
        "runtime_flash": base.flash,
        "runtime_ram": base.ram,
        "ram_per_op_slot": (probe.ram - base.ram) // (SLOT_PROBE - 1),
        "ops": {op: s.flash - base.flash for op, s, _ in measured},
        "ops_ram": {op: s.ram - base.ram for op, s, _ in measured if s.ram != base.ram},
    }
    entry["shared_symbols"], entry["ops_shared"] = shared_symbols(
        {op: flash_symbols(progs / f"{op}.elf") - base_syms for op, _, _ in measured})
    checks = {}
    for name, chosen in (("kws", list(KWS_OPS)), ("all", sorted(ops))):
        sizes = link_program(tree, core, objects, kernel_set.files(tree, chosen), [ops[o] for o in chosen],
                             len(chosen), progs, f"combination_{name}", flags)
        checks[name] = _check(entry, chosen, sizes.flash - base.flash)
    entry["combination"] = checks
    say(f"{what}: linked {len(measured)} op programs; {time.monotonic() - start:.0f} s in all")
    entry["largest_stack_frames"] = largest_frames(workdir / "obj")
    return entry


def _check(entry: dict, ops: list[str], measured: int) -> dict:
    summed = sum(entry["ops"][o] for o in ops)
    estimate = ops_flash(entry, ops)
    return {"ops": ops if len(ops) < 10 else f"all {len(ops)} measured ops",
            "measured": measured, "sum_of_increments": summed,
            "sum_error_percent": round(100 * (summed - measured) / measured, 1),
            "estimate": estimate, "estimate_error_percent": round(100 * (estimate - measured) / measured, 1)}


def compiler_version() -> str:
    return proc.run([CXX, "--version"], what=CXX, timeout=60).stdout.splitlines()[0].strip()


def measure(tree: TflmTree, cores: list[str], jobs: int, log=None, workdir: Path | None = None,
            cmsis: cmsis_nn.CmsisNn | None = None, kernel_sets: tuple[str, ...] = KERNEL_SETS) -> dict:
    """The table for ``cores``: the reference kernels under ``cores`` (with Xtensa's estimate and the
    host), and with ``cmsis`` CMSIS-NN under ``cmsis-nn``, for those of ``cores`` in CMSIS_NN_CORES."""
    table: dict = {
        "tflm": tree.version,
        "compiler": compiler_version(),
        "flags": {"common": " ".join(CXXFLAGS), "core_sources": CORE_OPT, "kernel_sources": KERNEL_OPT,
                  "link": " ".join(LDFLAGS + LIBS),
                  "source_paths": PREFIX_MAP_NOTE,
                  "per_core": {c: " ".join(CORE_FLAGS[c]) for c in cores}},
        "method": ("flash = text + data of arm-none-eabi-size (Berkeley); runtime_flash/runtime_ram: a "
                   "program with an interpreter and an empty MicroMutableOpResolver<1> (newlib-nano, "
                   "nosys stubs, vfprintf for DebugLog; no arena, no model); ops: flash of the program "
                   "adding only that op minus runtime_flash; ops_ram: the same for data + bss where "
                   "not 0; ram_per_op_slot: static RAM of one more MicroMutableOpResolver slot; "
                   "shared_symbols: code and data symbols (arm-none-eabi-nm) "
                   "that more than one op's program adds, ops_shared: which of them each op adds, so "
                   "a set of ops counts them once (codegen.project.code_size.ops_flash); combination: the kws "
                   "op set and all ops linked together, against the plain sum of increments and "
                   "against ops_flash"),
        "kernels": ("cores: TFLM reference kernels (tensorflow/lite/micro/kernels/*.cc); cmsis-nn: the "
                    "same measurement with CMSIS-NN (see its kernels)"),
        "cores": {},
    }
    with tempfile.TemporaryDirectory(prefix="tfgen-size-") as tmp:
        base = workdir or Path(tmp)
        if "reference" in kernel_sets:
            for core in cores:
                table["cores"][core] = measure_core(tree, core, jobs, base / core, log)
        if "cmsis-nn" in kernel_sets and cmsis is not None:
            kernel_set = KernelSet(cmsis)
            table["cmsis-nn"] = {
                "kernels": (f"{cmsis.version}: each op links the files codegen.toolchain.cmsis_nn select() puts in a "
                            "project, the wrapper in place of the reference kernel file it replaces plus "
                            "the CMSIS-NN library sources that wrapper reaches (data/cmsis_nn_sources.json); "
                            "ops without a wrapper link their reference kernel files"),
                "flags": {"every_file": " ".join(cmsis_nn.DEFINES), "wrappers": KERNEL_OPT,
                          "library": f"{CC} {' '.join(CFLAGS)} {KERNEL_OPT} (TFLM's "
                                     "THIRD_PARTY_KERNEL_OPTIMIZATION_LEVEL)"},
                "method": "as for the reference kernels (method), every program built with these kernels",
                "wrapped_ops": [op for op in sorted(measurable_ops(tree)) if any(
                    f.startswith(cmsis_nn.WRAPPERS_DIR + "/") for f in kernel_set.files(tree, [op]))],
                "cores": {core: measure_core(tree, core, jobs, base / f"{core}-cmsis-nn", log, kernel_set)
                          for core in cores if core in CMSIS_NN_CORES},
            }
    if "cortex-m4f" in table["cores"]:
        m4 = table["cores"]["cortex-m4f"]
        table["cores"]["xtensa"] = {
            "estimated_from": "cortex-m4f", "factor": XTENSA_FACTOR, "note": XTENSA_NOTE,
            "runtime_flash": round(m4["runtime_flash"] * XTENSA_FACTOR),
            **{key: m4[key] for key in ("runtime_ram", "ram_per_op_slot", "ops_ram", "ops_shared")},
            "ops": {op: round(n * XTENSA_FACTOR) for op, n in m4["ops"].items()},
            "shared_symbols": [[name, round(size * XTENSA_FACTOR)] for name, size in m4["shared_symbols"]],
        }
    if "reference" in kernel_sets:
        table["cores"]["host"] = {"not_applicable": "host builds have no flash limit worth estimating"}
    return table


def merge(old: dict, new: dict) -> dict:
    """``old`` with what ``new`` measured put in its place (cores, the cmsis-nn cores); ``old``'s
    ``notes`` and everything else ``new`` did not measure are kept. Both must come from the same TFLM,
    compiler and flags."""
    for key in ("tflm", "compiler"):
        if old.get(key) != new[key]:
            raise TfgenError(f"the table to update has {key} {old.get(key)!r}, this measurement {new[key]!r}",
                             "regenerate the whole table (without --update)")
    same = {k: v for k, v in new["flags"].items() if k != "per_core"}
    if {k: v for k, v in old.get("flags", {}).items() if k != "per_core"} != same:
        raise TfgenError("the table to update was measured with other flags", "regenerate the whole table "
                         "(without --update)")
    table = json.loads(json.dumps(old))
    table["flags"]["per_core"].update(new["flags"]["per_core"])
    table.update({k: new[k] for k in ("method", "kernels")})
    table["cores"].update(new["cores"])
    if "cmsis-nn" in new:
        cores = {**table.get("cmsis-nn", {}).get("cores", {}), **new["cmsis-nn"]["cores"]}
        table["cmsis-nn"] = {**table.get("cmsis-nn", {}), **new["cmsis-nn"], "cores": cores}
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflm-dir", type=Path, required=True)
    parser.add_argument("--core", action="append", choices=sorted(CORE_FLAGS),
                        help="measure only this core (repeatable; default: all)")
    parser.add_argument("--kernels", action="append", choices=KERNEL_SETS,
                        help="measure only this kernel set (repeatable; default: both; cmsis-nn only for "
                             f"{', '.join(CMSIS_NN_CORES)})")
    parser.add_argument("--cmsis-nn-dir", type=Path, metavar="DIR",
                        help=f"CMSIS-NN setup (default: ${cmsis_nn.ENV_VAR}, else the cached or downloaded "
                             "pinned archives)")
    parser.add_argument("--update", type=Path, metavar="TABLE",
                        help="print TABLE with what this run measured in its place (keeps the rest and "
                             "its notes)")
    parser.add_argument("--jobs", type=int, default=2, help="parallel compiler runs (default 2)")
    parser.add_argument("--workdir", type=Path, metavar="DIR",
                        help="keep objects in DIR and reuse them next time (a fresh DIR after changing flags)")
    args = parser.parse_args(argv)
    kernel_sets = tuple(args.kernels or KERNEL_SETS)
    try:
        cmsis = cmsis_nn.resolve(args.cmsis_nn_dir) if "cmsis-nn" in kernel_sets else None
        table = measure(open_tree(args.tflm_dir), args.core or list(CORE_FLAGS), args.jobs,
                        log=lambda m: print(m, file=sys.stderr, flush=True), workdir=args.workdir,
                        cmsis=cmsis, kernel_sets=kernel_sets)
        if args.update:
            table = merge(json.loads(args.update.read_text(encoding="utf-8")), table)
    except TfgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    json.dump(table, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
