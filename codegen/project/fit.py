"""Does a model fit a board? Flash and RAM needed against the board's limits, each figure with how it
is estimated.

Flash = the .tflite bytes (a const array) + TFLM's runtime + the measured code size of the model's ops
on the board's core + tfgen's firmware harness (measured once, ``HARNESS_FLASH``) + the board
framework's own code where a figure is known. RAM = the tensor arena (the 64-bit host figure from
``oracle.measure_arena``, an upper bound for 32-bit targets, plus the generator's margin,
``plan.arena_with_margin``) + the runtime's static RAM + resolver slots + a stack allowance. With
``arena_placement = "psram"`` the arena counts against ``psram_bytes``. Code sizes come from
``codegen/data/code_size.json`` (``python -m tools.code_size``), for the kernel set a build would
use: CMSIS-NN's figures on the boards whose kernels are cmsis-nn (M4F, M7), unless ``--kernels
reference``; the reference kernels' elsewhere. Only the table is read: fit needs no CMSIS-NN sources.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from codegen.toolchain import cmsis_nn, esp_nn
from codegen.project.boards import Board
from codegen.project.code_size import load_table, ops_flash
from codegen.errors import DoesNotFit, TfgenError
from codegen.model.ir import ModelIR
from codegen.project.plan import ARENA_ALIGN, ARENA_MARGIN_PERCENT, arena_with_margin  # the generator's margin

# Stack for main + MicroInterpreter::Invoke + a reference kernel: an allowance, not a measurement.
# GCC's -fstack-usage puts TFLM's largest single frames at ~1.3 KiB (FullyConnectedEval, ConvEval:
# code_size.json, largest_stack_frames); 8 KiB covers such a frame under main -> Invoke -> Eval ->
# the reference op, plus the harness's printf.
STACK_BYTES = 8192
HOST_ARENA = "measured by tflite_micro on the 64-bit host (an upper bound for a 32-bit target)"
# Framework code outside tfgen's program, where a published figure exists: (flash, RAM, source).
FRAMEWORK_COST: dict[str, tuple[int, int, str]] = {
    "espidf": (170638, 8488, "ESP-IDF Programming Guide, 'Minimizing Binary Size', idf.py size of "
                             "hello_world: image 170,638 B, .data 6,504 + .bss 1,984 B"),
}
# tfgen's firmware harness (firmware/*.cc: runner, replay, platform output, plus the libc they pull
# in). Measured with `tfgen build MODEL --board mps2_an386` (tfgen's own Cortex-M4F builder, -Os):
# ad01_int8's image is 324,880 B of flash = 276,976 B model + 47,904 B, which is 8,672 B more than
# code_size.json's Cortex-M4F runtime (28,488) + FULLY_CONNECTED (10,744). Rounded up to 9 KiB for
# the model-specific strings (model and tensor names); scaled by the core's factor where estimated.
HARNESS_FLASH = 9216
MEASURED_CORES = ("cortex-m4f", "cortex-m7", "cortex-m0plus")
XTENSA_KEY = "xtensa"
CMSIS_NN_KEY = "cmsis-nn"           # the table's section measured with CMSIS-NN (tools.code_size.KernelSet)


@dataclass(frozen=True)
class FitRow:
    board: str
    core: str
    kernels: str                    # the kernel set the code sizes assume: reference, cmsis-nn, esp-nn
    flash_needed: int
    flash_limit: int
    ram_needed: int                 # internal RAM
    ram_limit: int
    psram_needed: int               # 0 unless the arena goes to PSRAM
    psram_limit: int
    flash_parts: dict[str, int] = field(default_factory=dict)
    ram_parts: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()     # how each figure is estimated, one clause each

    @property
    def method(self) -> str:
        return "; ".join(self.notes)

    @property
    def flash_headroom_percent(self) -> float:
        return _headroom(self.flash_needed, self.flash_limit)

    @property
    def ram_headroom_percent(self) -> float:
        return _headroom(self.ram_needed, self.ram_limit)

    @property
    def psram_headroom_percent(self) -> float | None:
        return _headroom(self.psram_needed, self.psram_limit) if self.psram_needed else None

    @property
    def fits(self) -> bool:
        return (self.flash_needed <= self.flash_limit and self.ram_needed <= self.ram_limit
                and self.psram_needed <= self.psram_limit)

    def verdict(self) -> str:
        """One line naming what overflows, by how much."""
        over = [f"{what} needs {need:,} B, {limit:,} B available ({need - limit:,} B over)"
                for what, need, limit in (("flash", self.flash_needed, self.flash_limit),
                                          ("RAM", self.ram_needed, self.ram_limit),
                                          ("PSRAM", self.psram_needed, self.psram_limit))
                if need > limit]
        return "; ".join(over) if over else "fits"


def _headroom(needed: int, limit: int) -> float:
    return round(100 * (limit - needed) / limit, 1)


def _core_figures(core: str, kernels: str, sizes: dict) -> tuple[dict | None, str]:
    """The code-size entry for ``core`` with ``kernels`` and how it was obtained."""
    cores = sizes["cores"]
    if kernels == "cmsis-nn" and CMSIS_NN_KEY not in sizes:
        raise TfgenError("the code-size table has no CMSIS-NN figures (no cmsis-nn section)",
                         "regenerate codegen/data/code_size.json with python -m tools.code_size "
                         "--cmsis-nn-dir DIR, or pass --kernels reference")
    cmsis = sizes[CMSIS_NN_KEY]["cores"] if kernels == "cmsis-nn" else {}
    if core == "host":
        return None, "host: code size not applicable (tfgen budget, no flash to estimate)"
    if core.startswith(("xtensa", "riscv")):
        entry = cores[XTENSA_KEY]              # one allowance for the ESP chips' cores, Xtensa or RISC-V
        family = "Xtensa" if core.startswith("xtensa") else "RISC-V (the Xtensa allowance)"
        return entry, f"estimated for {family}: {entry['note']}"
    if core in cmsis:
        return cmsis[core], f"measured for {core} (arm-none-eabi-gcc, CMSIS-NN kernels)"
    if kernels != "cmsis-nn" and core in cores and core in MEASURED_CORES:
        return cores[core], f"measured for {core} (arm-none-eabi-gcc, TFLM reference kernels)"
    # Not measured (another Cortex-M core, or CMSIS-NN on a core it was not measured with): the
    # measured entry with the largest runtime, scaled up so that each figure is at least the largest
    # measured one, over the reference kernels of every core and, for cmsis-nn, CMSIS-NN's.
    candidates = {c: cores[c] for c in MEASURED_CORES if c in cores}
    candidates.update({f"{c} with CMSIS-NN": entry for c, entry in cmsis.items()})
    measured = list(candidates.values())
    largest = max(measured, key=lambda m: m["runtime_flash"])
    merged = dict(largest)
    for key in ("runtime_flash", "runtime_ram", "ram_per_op_slot"):
        merged[key] = max(m[key] for m in measured)
    merged["ops"] = {op: max(m["ops"][op] for m in measured) for op in largest["ops"]}
    merged["ops_ram"] = {op: max(m["ops_ram"].get(op, 0) for m in measured)
                         for m in measured for op in m["ops_ram"]}
    merged.pop("combination", None)
    what = "CMSIS-NN" if kernels == "cmsis-nn" else "code size"
    return merged, f"{what} not measured for {core}: the largest figure of {', '.join(candidates)}"


def _kernels_note(kernels: str) -> str:
    """For a board whose kernels are cmsis-nn."""
    if kernels == "cmsis-nn":
        return ("kernels: CMSIS-NN, the board's default (a build without a CMSIS-NN setup, none given, "
                "cached or downloadable, falls back to the reference kernels, which are smaller)")
    return "kernels: reference (--kernels reference; the board's default is cmsis-nn)"


def esp_kernels_note(board: Board) -> str:
    """Which kernels an ESP chip runs (the esp-tflite-micro component, whatever --kernels says)."""
    chip = board.chip or "esp32"
    if chip in esp_nn.ASSEMBLY_CHIPS:
        how = (f"esp-nn's assembly on the {esp_nn.ASSEMBLY_CHIPS[chip]} (tfgen verify checks its generic C, "
               "the same functions)")
    else:
        how = "esp-nn's generic C, which tfgen verify builds and checks on the host and in QEMU"
    return (f"kernels: ESP-NN {esp_nn.PINNED_VERSION} for {', '.join(esp_nn.OPS)} ({how}); TFLM's reference "
            "kernels for the other ops")


def _build_check(sizes: dict, core: str, kernels: str) -> str:
    """How the whole estimate compared with real builds of this core and kernel set, if any."""
    checked = sizes.get("notes", {}).get("checked_against_builds", {})
    builds = checked.get("cores", {}).get(core, {}).get(kernels)
    if not builds:
        return ""
    errors = ", ".join(f"{model} {100 * (b['estimated'] - b['real']) / b['real']:+.1f} %"
                       for model, b in builds.items())
    return f"; flash estimate against real {checked['board']} builds: {errors}"


def fit_board(ir: ModelIR, arena_bytes: int, board: Board, sizes: dict,
              arena_source: str = HOST_ARENA, kernels: str | None = None) -> FitRow:
    """``kernels``: generate's --kernels (None: the board's; cmsis-nn on a board that cannot use it is
    an error, as there)."""
    kernels = cmsis_nn.kernels_for(board.kernels, kernels)
    if board.kernels == "esp-nn":
        kernels = "esp-nn"          # the chip runs the component's ESP-NN whatever --kernels says
    figures, how = _core_figures(board.core, kernels, sizes)
    op_names = [op.name for op in ir.ops]
    arena = arena_with_margin(arena_bytes)
    flash = {"model": ir.size_bytes}
    ram = {"stack": STACK_BYTES}
    notes = [f"model: the .tflite size ({ir.size_bytes:,} B) as a const array",
             f"arena: {arena_bytes:,} B {arena_source} + at most {ARENA_MARGIN_PERCENT} %, a multiple of "
             f"{ARENA_ALIGN} B = {arena:,} B",
             f"stack: {STACK_BYTES:,} B allowance (not measured)"]
    if figures is not None:
        missing = [op for op in op_names if op not in figures["ops"]]
        if missing:
            raise TfgenError(f"{ir.source}: no code size known for op {', '.join(missing)}",
                             "regenerate codegen/data/code_size.json with python -m tools.code_size")
        flash["runtime"] = figures["runtime_flash"]
        flash["ops"] = ops_flash(figures, op_names)
        flash["harness"] = round(HARNESS_FLASH * figures.get("factor", 1))
        ram["runtime"] = figures["runtime_ram"]
        ram["resolver"] = figures["ram_per_op_slot"] * max(len(op_names) - 1, 0)
        ram["ops"] = sum(figures["ops_ram"].get(op, 0) for op in op_names)
        notes.append("code: runtime = interpreter + empty resolver + newlib-nano; ops = per-op "
                     "increments with helpers shared between ops counted once; harness = tfgen's "
                     f"firmware harness, {HARNESS_FLASH:,} B (measured in an mps2_an386 build)")
        check = figures.get("combination", {}).get("kws")
        notes.append(f"code size {how}" + (f"; ops estimate {check['estimate_error_percent']:+} % against "
                                           "the kws op set linked together" if check else "")
                     + _build_check(sizes, board.core, kernels))
        if board.kernels == "cmsis-nn":
            notes.append(_kernels_note(kernels))
        if board.kernels == "esp-nn":
            notes.append(esp_kernels_note(board))
    else:
        notes.append(how)
    framework = board.platformio.framework
    if framework in FRAMEWORK_COST:
        fw_flash, fw_ram, source = FRAMEWORK_COST[framework]
        flash["framework"] = fw_flash
        ram["framework"] = fw_ram
        notes.append(f"framework {framework}: {source}")
    elif framework:
        notes.append(f"framework {framework}: its own code and RAM are not counted (no figure measured)")
    psram = 0
    if board.arena_placement == "psram":
        psram = arena
        notes.append("arena placed in PSRAM: counted against psram_bytes")
    else:
        ram["arena"] = arena
    return FitRow(board=board.name, core=board.core, kernels=kernels, flash_needed=sum(flash.values()),
                  flash_limit=board.flash_bytes, ram_needed=sum(ram.values()), ram_limit=board.ram_bytes,
                  psram_needed=psram, psram_limit=board.psram_bytes, flash_parts=flash, ram_parts=ram,
                  notes=tuple(notes))


def fit(ir: ModelIR, arena_bytes: int, boards: Iterable[Board], sizes: dict | None = None,
        arena_source: str = HOST_ARENA, kernels: str | None = None) -> list[FitRow]:
    """One row per board: flash and RAM needed against its limits. ``arena_bytes`` is the measured
    arena without margin (``oracle.measure_arena(...).min_bytes``, or a 32-bit figure with
    ``arena_source`` saying where it comes from); ``sizes`` defaults to the committed code-size
    table. ``kernels`` (generate's --kernels) applies to the boards that can take it; with one board
    that cannot, it is an error, as for generate."""
    if arena_bytes < 0:
        raise TfgenError(f"arena of {arena_bytes} bytes: expected a size >= 0", "measure it with tfgen inspect")
    sizes = sizes if sizes is not None else load_table()
    boards = list(boards)
    return [fit_board(ir, arena_bytes, b, sizes, arena_source,
                      kernels if len(boards) == 1 or b.kernels == "cmsis-nn" else None) for b in boards]


def certainly_too_big(ir: ModelIR, board: Board, vector_bytes: int = 0, runtime: str = "tflm") -> str | None:
    """Why ``ir`` cannot fit ``board``'s flash whatever the build does, or None: the model array and
    TFLM's runtime alone (the smallest measured runtime of the board's core), with ``vector_bytes``
    of embedded test vectors, are more than its flash; with ``runtime`` "aot", its constant tensors
    alone (no flatbuffer, no interpreter).
    ``build`` and ``verify`` check this before compiling; the full estimate (``fit``) is an upper bound,
    so only this lower bound refuses a build."""
    if board.core == "host" or not board.flash_bytes:
        return None
    if runtime == "aot":
        least = ir.weights_bytes + vector_bytes
        if least <= board.flash_bytes:
            return None
        vectors = f" + {vector_bytes:,} B of test vectors" if vector_bytes else ""
        return (f"{ir.source} does not fit {board.name}'s flash: {least - board.flash_bytes:,} bytes over (its "
                f"weights' {ir.weights_bytes:,} B{vectors}, before any code, of {board.flash_bytes:,} B)")
    sizes = load_table()
    runtime = None
    if not board.core.startswith("xtensa") and board.core in sizes["cores"]:
        runtime = min([sizes["cores"][board.core]["runtime_flash"]]
                      + [sizes.get(CMSIS_NN_KEY, {}).get("cores", {}).get(board.core, {}).get("runtime_flash",
                                                                                               1 << 62)])
    least = ir.size_bytes + (runtime or 0) + vector_bytes
    if least <= board.flash_bytes:
        return None
    parts = (f"the model's {ir.size_bytes:,} B" + (f" + TFLM's runtime {runtime:,} B" if runtime else "")
             + (f" + {vector_bytes:,} B of test vectors" if vector_bytes else ""))
    return (f"{ir.source} does not fit {board.name}'s flash: {least - board.flash_bytes:,} bytes over "
            f"({parts}, before any kernel, of {board.flash_bytes:,} B)")


def check_before_generate(ir: ModelIR, board: Board, arena_bytes: int, kernels: str | None = None,
                          vector_bytes: int = 0, runtime: str = "tflm") -> str | None:
    """What generate says about fitting ``board``: DoesNotFit where the model (with ``vector_bytes`` of
    embedded vectors) certainly cannot fit its flash; a warning where fit's estimate, an upper bound,
    says it does not fit; None where it fits. (fit estimates TFLM images: aot gets the lower bound only.)"""
    too_big = certainly_too_big(ir, board, vector_bytes, runtime)
    if too_big:
        raise DoesNotFit(too_big, "use a smaller model or a board with more flash (`tfgen fit MODEL` compares "
                                  "them)" + ("; or embed fewer --vectors" if vector_bytes else ""))
    if runtime == "aot":
        return None
    try:
        row = fit_board(ir, arena_bytes, board, load_table(), kernels=kernels)
    except TfgenError:
        return None                 # no code size known for some op: fit says so itself
    if row.fits:
        return None
    return (f"tfgen fit estimates that this does not fit {board.name}: {row.verdict()} (an upper bound; "
            f"`tfgen build` measures the real image)")


def fit_to_dict(rows: list[FitRow]) -> dict:
    return {"boards": [{
        "board": r.board, "core": r.core, "kernels": r.kernels, "fits": r.fits, "verdict": r.verdict(),
        "flash": {"needed": r.flash_needed, "limit": r.flash_limit,
                  "headroom_percent": r.flash_headroom_percent, "parts": dict(r.flash_parts)},
        "ram": {"needed": r.ram_needed, "limit": r.ram_limit, "headroom_percent": r.ram_headroom_percent,
                "parts": dict(r.ram_parts)},
        "psram": {"needed": r.psram_needed, "limit": r.psram_limit,
                  "headroom_percent": r.psram_headroom_percent},
        "method": r.method,
    } for r in rows], "arena_margin_percent": ARENA_MARGIN_PERCENT, "stack_bytes": STACK_BYTES}
