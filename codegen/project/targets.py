"""Targets from board data: how tfgen itself builds and runs firmware for a board.

A board has a target when tfgen can run its firmware here: ``host`` (the build machine) and every
Cortex-M board with a ``[qemu]`` table. The compiler flags come from the board's core, the emulator's
command line from its ``[qemu]`` table and the linker script from its memory map, so a second
emulated board is one TOML file. The generated project's ``sim`` and ``qemu`` PlatformIO environments
are made from the same target (``plan``), so tfgen's builder and PlatformIO compile alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codegen.errors import TfgenError
from codegen.project.boards import Board
from codegen.toolchain import builder, proc

QEMU = "qemu-system-arm"
# GCC's flags per Cortex-M core, as Arm's and the boards' own build systems give them (hard float
# where the core has an FPU: single precision on M4F/M33, double on M7).
CORE_FLAGS = {
    "cortex-m0plus": ("-mcpu=cortex-m0plus", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m3": ("-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m4": ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft"),
    "cortex-m4f": ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
    "cortex-m7": ("-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"),
    "cortex-m33": ("-mcpu=cortex-m33", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
    "cortex-m55": ("-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"),
}
# -icount shift=0: one instruction per virtual nanosecond, so time is instructions and deterministic.
QEMU_OPTIONS = ("-icount", "shift=0", "-nographic", "-monitor", "none", "-serial", "none",
                "-semihosting-config", "enable=on,target=native")


@dataclass(frozen=True)
class BoardTarget:
    board: Board
    build: builder.Target
    emulator: tuple[str, ...]       # the command that runs the firmware (its path appended); () natively
    core_name: str                  # "Cortex-M4F", for people
    machine_name: str               # "MPS2 AN386", for people ("" on the host)

    @property
    def counts_instructions(self) -> bool:
        return bool(self.emulator)

    def run_command(self, executable) -> list:
        """The command that runs ``executable``. QEMU gets the raw image where the code starts at 0:
        QEMU 7.2 leaves the low memory of some large ELF files (a 3.8 MB mobilenet_v2 image) unloaded,
        zeros where the vector table and the start-up code belong, while it runs the same image as a
        raw binary (loaded at 0) correctly."""
        if not self.emulator:
            return [executable]
        if self.board.qemu.flash.origin != 0:
            return [*self.emulator, executable]
        return [*self.emulator, raw_image(self.build, Path(executable))]


def raw_image(build: builder.Target, elf: Path) -> Path:
    """``elf`` as the raw binary beside it (objcopy -O binary: its loadable sections from the lowest
    address); an image that is no ELF file (PlatformIO's firmware.bin) is that already."""
    try:
        with open(elf, "rb") as f:
            if f.read(4) != b"\x7fELF":
                return elf
    except OSError:
        return elf                          # QEMU says what is wrong with it
    out = elf.with_suffix(".qemu.bin")      # beside it, not over a firmware.bin of PlatformIO's
    objcopy = build.cxx.removesuffix("g++") + "objcopy"
    proc.run([objcopy, "-O", "binary", elf, out], what=f"{objcopy} (the raw image for QEMU)", timeout=120)
    return out


def core_name(core: str) -> str:
    """cortex-m4f -> Cortex-M4F, cortex-m0plus -> Cortex-M0+."""
    return core.replace("cortex-m", "Cortex-M").replace("plus", "+").replace("f", "F")


def ldscript(board: Board) -> str:
    return f"src/qemu/{board.name}.ld"


def for_board(board: Board) -> BoardTarget | None:
    """The board's target, or None where tfgen cannot run its firmware here."""
    if board.arch == "host":
        return BoardTarget(board, builder.HOST, (), "host", "")
    if board.qemu is None or board.core not in CORE_FLAGS:
        return None
    flags = CORE_FLAGS[board.core]
    return BoardTarget(board, builder.emulated_cortex_m(board.name, flags, ldscript(board), board.cpu_mhz * 1_000_000),
                       (QEMU, "-M", board.qemu.machine, "-cpu", board.qemu.cpu, *QEMU_OPTIONS, "-kernel"),
                       core_name(board.core), board.qemu.machine.upper().replace("-", " "))


STAND_IN = "mps2_an386"     # the emulated Cortex-M4F the `qemu` environment of other Arm boards runs on


def emulated(board: Board) -> BoardTarget | None:
    """The emulated board a project's `qemu` environment runs on: the board itself where QEMU
    emulates it, else, for any other board, the built-in Cortex-M4F stand-in (its code, and for ESP
    chips ESP-NN's portable C, tested on a 32-bit microcontroller before flashing); None on the host."""
    target = for_board(board)
    if target is not None and target.emulator:
        return target
    if board.arch == "host":
        return None
    from codegen.project.boards import get_board
    return for_board(get_board(STAND_IN))


ON_CHOICES = ("host", "qemu")


def verify_target(board: Board, on: str | None = None) -> BoardTarget:
    """Where `verify` runs a board's firmware: ``on`` "host" (the build machine) or "qemu" (the board
    itself where QEMU emulates it, else the Cortex-M4F stand-in); None: the board's own target, else
    the host. The project is always the board's own, with its kernels."""
    own = for_board(board)
    if on is None:
        if own is not None:
            return own
        on = "host"
    if on == "host":
        from codegen.project.boards import get_board
        return own if own is not None and not own.emulator else for_board(get_board("host"))
    if on != "qemu":
        raise TfgenError(f"--on {on}: expected one of {', '.join(ON_CHOICES)}", "pass --on host or --on qemu")
    target = emulated(board)
    if target is None:
        raise TfgenError(f"--on qemu: {board.name} is the host", "pass --on host, or leave --on out")
    return target
