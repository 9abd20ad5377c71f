"""The board database: one TOML file per board, validated on load into a frozen `Board`.

Built-in boards live in ``boards/`` (a checkout) or ``codegen/_data/boards/`` (an installed wheel);
a user may add a directory of their own (``--boards-dir``), whose boards are added to the built-in
ones and replace a built-in board of the same name. The schema is described in ``boards/README.md``.

Every failure raises `TfgenError` whose message names the file, the key, the bad value and what
was expected, e.g. ``boards/foo.toml: 'kernels' is 'cmsis' — expected one of cmsis-nn, esp-nn,
reference``.
"""
from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from codegen.errors import TfgenError
from codegen.resources import resource_dir

# core -> the arch it belongs to
CORES: Mapping[str, str] = MappingProxyType({
    "cortex-m0plus": "arm",
    "cortex-m3": "arm",
    "cortex-m4": "arm",
    "cortex-m4f": "arm",
    "cortex-m7": "arm",
    "cortex-m33": "arm",
    "cortex-m55": "arm",
    "xtensa-lx6": "xtensa",
    "xtensa-lx7": "xtensa",
    "riscv32-imc": "riscv",    # ESP32-C3
    "riscv32-imac": "riscv",   # ESP32-C6
    "host": "host",
})
ARCHES = ("arm", "host", "riscv", "xtensa")
# kernels -> the arches it runs on
KERNELS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "cmsis-nn": ("arm",),
    "esp-nn": ("xtensa", "riscv"),
    "reference": ARCHES,
})
ARENA_PLACEMENTS = ("internal", "psram")
# ESP-IDF targets (`idf.py set-target`): which chip an espidf board is, and so which esp-nn code it runs.
CHIPS: Mapping[str, str] = MappingProxyType({     # chip -> its arch
    "esp32": "xtensa", "esp32s2": "xtensa", "esp32s3": "xtensa",
    "esp32c3": "riscv", "esp32c6": "riscv", "esp32p4": "riscv",
})
FIRST_BOARD = "esp32"

_NAME_RE = re.compile(r"[a-z0-9_]+")
# platform / board: a PlatformIO id, version spec or URL ("espressif32", "platformio/ststm32@^19",
# "https://github.com/..."); written into platformio.ini, so no spaces, ';' or '#'.
_PIO_ID_RE = re.compile(r"[A-Za-z0-9_.@/:+~=^<>!-]+")
_FRAMEWORK_RE = re.compile(r"[a-z0-9_-]+(, ?[a-z0-9_-]+)*")
_QEMU_ID_RE = re.compile(r"[A-Za-z0-9_.+-]+")
_ADDRESS_SPACE = 1 << 32

_BOARD_KEYS = ("name", "description", "core", "arch", "cpu_mhz", "flash_bytes", "ram_bytes",
               "psram_bytes", "kernels", "arena_placement", "platformio")
_SCHEMA_HINT = "the board file format is described in boards/README.md"


@dataclass(frozen=True)
class PlatformIO:
    """How PlatformIO builds for the board: the ``[env]`` values of platformio.ini."""

    platform: str   # "espressif32", "ststm32", "native", ...
    board: str      # PlatformIO board id; "" for the native platform or a QEMU board
    framework: str  # "espidf", "arduino", ...; "" for none (bare metal or native)


@dataclass(frozen=True)
class MemoryRegion:
    """A linker memory region: ``origin`` and ``length`` in bytes."""

    origin: int
    length: int

    @property
    def end(self) -> int:
        """The first address past the region."""
        return self.origin + self.length


@dataclass(frozen=True)
class Qemu:
    """How QEMU emulates the board (``qemu-system-arm -M machine -cpu cpu``) and its memory map."""

    machine: str
    cpu: str
    flash: MemoryRegion
    ram: MemoryRegion


@dataclass(frozen=True)
class Board:
    """One validated board file."""

    name: str
    description: str
    platformio: PlatformIO
    core: str             # one of CORES
    arch: str             # one of ARCHES
    cpu_mhz: int          # 0 only for arch "host" (unknown)
    flash_bytes: int      # flash usable by the application
    ram_bytes: int        # internal RAM usable by the application for static data, heap and stack
    psram_bytes: int      # external RAM, 0 when none
    kernels: str          # one of KERNELS
    arena_placement: str  # one of ARENA_PLACEMENTS
    qemu: Qemu | None     # only for boards run under QEMU
    source: Path          # the file the board was loaded from
    overrides: Path | None = None  # the built-in file this user board replaces, if any
    chip: str = ""        # ESP-IDF target of an espidf board (one of CHIPS); "" for the others


class _Table:
    """One TOML table being validated; every getter raises TfgenError naming file and key."""

    def __init__(self, data: dict[str, Any], shown_path: str, prefix: str = ""):
        self.data = data
        self.shown_path = shown_path
        self.prefix = prefix  # "" for the top level, "platformio." for [platformio], ...

    def error(self, message: str, hint: str | None = _SCHEMA_HINT) -> TfgenError:
        return TfgenError(f"{self.shown_path}: {message}", hint)

    def key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def check_keys(self, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
        allowed = required + optional
        unknown = [k for k in self.data if k not in allowed]
        if unknown:
            names = ", ".join(f"'{self.key(k)}'" for k in unknown)
            expected = ", ".join(self.key(k) for k in sorted(allowed))
            plural = "s" if len(unknown) > 1 else ""
            raise self.error(f"unknown key{plural} {names} — expected only {expected}")
        missing = [k for k in required if k not in self.data]
        if missing:
            names = ", ".join(f"'{self.key(k)}'" for k in missing)
            plural = "s" if len(missing) > 1 else ""
            raise self.error(f"missing key{plural} {names}")

    def _typed(self, key: str, expected_type: type, expected: str) -> Any:
        value = self.data[key]
        # bool is a subclass of int in Python, but `true` is not an integer in TOML
        if not isinstance(value, expected_type) or (expected_type is int and isinstance(value, bool)):
            raise self.error(f"'{self.key(key)}' is {_show(value)} ({_toml_type(value)}) — "
                             f"expected {expected}")
        return value

    def string(self, key: str, *, empty_ok: bool = False) -> str:
        value = self._typed(key, str, "a string")
        if not value and not empty_ok:
            raise self.error(f"'{self.key(key)}' is '' — expected a non-empty string")
        return value

    def integer(self, key: str, *, minimum: int) -> int:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        value = self._typed(key, int, expected)
        if value < minimum:
            raise self.error(f"'{self.key(key)}' is {value} — expected {expected}")
        return value

    def choice(self, key: str, allowed: Iterable[str]) -> str:
        options = sorted(allowed)
        value = self._typed(key, str, "one of " + ", ".join(options))
        if value not in options:
            raise self.error(f"'{self.key(key)}' is {value!r} — expected one of {', '.join(options)}")
        return value

    def matching(self, key: str, pattern: re.Pattern[str], expected: str, *, empty_ok: bool = False) -> str:
        value = self.string(key, empty_ok=empty_ok)
        if value and not pattern.fullmatch(value):
            raise self.error(f"'{self.key(key)}' is {value!r} — expected {expected}")
        return value

    def table(self, key: str) -> _Table:
        value = self._typed(key, dict, f"a table [{self.key(key)}]")
        return _Table(value, self.shown_path, f"{self.key(key)}.")


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{...}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _toml_type(value: Any) -> str:
    for python_type, name in ((bool, "a boolean"), (int, "an integer"), (float, "a float"),
                              (str, "a string"), (list, "an array"), (dict, "a table")):
        if isinstance(value, python_type):
            return name
    return "a date/time"


def _display_path(path: Path) -> str:
    """The path as a user would type it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def load_board_file(path: Path) -> Board:
    """Read and validate one board file; raise TfgenError naming the file, key and value."""
    path = Path(path)
    shown = _display_path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise TfgenError(f"{shown}: no such board file", "check the path") from None
    except OSError as e:
        raise TfgenError(f"{shown}: cannot read the board file: {e.strerror or e}", None) from None
    except UnicodeDecodeError:
        raise TfgenError(f"{shown}: not valid TOML: the file is not UTF-8 text", _SCHEMA_HINT) from None
    except tomllib.TOMLDecodeError as e:
        raise TfgenError(f"{shown}: not valid TOML: {e}", _SCHEMA_HINT) from None
    return _parse_board(_Table(data, shown), path)


def _parse_board(top: _Table, path: Path) -> Board:
    top.check_keys(_BOARD_KEYS, optional=("qemu", "chip"))

    name = top.string("name")
    if not _NAME_RE.fullmatch(name):
        raise top.error(f"'name' is {name!r} — expected lower-case letters, digits and '_' only "
                        "([a-z0-9_]+)")
    if name != path.stem:
        raise top.error(f"'name' is {name!r} but the file is {path.name} — expected name = {path.stem!r}",
                        f"a board file is named after its board: rename the file to {name}.toml "
                        "or fix 'name'")
    description = top.string("description")

    core = top.choice("core", CORES)
    arch = top.choice("arch", ARCHES)
    if CORES[core] != arch:
        raise top.error(f"'core' is {core!r} but 'arch' is {arch!r} — core {core} has arch {CORES[core]!r}")

    cpu_mhz = top.integer("cpu_mhz", minimum=0)
    if cpu_mhz == 0 and arch != "host":
        raise top.error("'cpu_mhz' is 0 — expected a positive integer (0 is allowed only for arch 'host')")
    flash_bytes = top.integer("flash_bytes", minimum=1)
    ram_bytes = top.integer("ram_bytes", minimum=1)
    psram_bytes = top.integer("psram_bytes", minimum=0)

    kernels = top.choice("kernels", KERNELS)
    if arch not in KERNELS[kernels]:
        usable = ", ".join(k for k in sorted(KERNELS) if arch in KERNELS[k])
        raise top.error(f"'kernels' is {kernels!r} but 'arch' is {arch!r} — {kernels} runs only on arch "
                        f"{', '.join(KERNELS[kernels])}; expected one of {usable}")
    arena_placement = top.choice("arena_placement", ARENA_PLACEMENTS)
    if arena_placement == "psram" and psram_bytes == 0:
        raise top.error("'arena_placement' is 'psram' but 'psram_bytes' is 0 — expected 'internal' "
                        "for a board without PSRAM")

    has_qemu = "qemu" in top.data
    if has_qemu and arch != "arm":
        raise top.error(f"a [qemu] table is given but 'arch' is {arch!r} — [qemu] is allowed only "
                        "with arch 'arm'")
    platformio = _parse_platformio(top.table("platformio"), arch, has_qemu)
    qemu = _parse_qemu(top.table("qemu"), flash_bytes, ram_bytes) if has_qemu else None
    chip = _parse_chip(top, platformio)

    return Board(name=name, description=description, platformio=platformio, core=core, arch=arch,
                 cpu_mhz=cpu_mhz, flash_bytes=flash_bytes, ram_bytes=ram_bytes,
                 psram_bytes=psram_bytes, kernels=kernels, arena_placement=arena_placement,
                 qemu=qemu, source=path, chip=chip)


def _parse_chip(top: _Table, platformio: PlatformIO) -> str:
    if platformio.framework != "espidf":
        if "chip" in top.data:
            raise top.error("'chip' is given but 'platformio.framework' is not 'espidf' — 'chip' names the "
                            "ESP-IDF target of an ESP board")
        return ""
    if "chip" not in top.data:
        raise top.error(f"no 'chip' — an espidf board names its ESP-IDF target, one of {', '.join(CHIPS)}")
    chip = top.choice("chip", CHIPS)
    if "arch" in top.data and CHIPS[chip] != top.data["arch"]:
        raise top.error(f"'chip' is {chip!r} but 'arch' is {top.data['arch']!r} — the {chip} is {CHIPS[chip]}")
    return chip


def _parse_platformio(table: _Table, arch: str, has_qemu: bool) -> PlatformIO:
    table.check_keys(("platform", "board", "framework"))
    pio_id = "a PlatformIO id (letters, digits and _.@/:+~=^<>!-, no spaces)"
    platform = table.matching("platform", _PIO_ID_RE, pio_id)
    board = table.matching("board", _PIO_ID_RE, pio_id, empty_ok=True)
    framework = table.matching("framework", _FRAMEWORK_RE,
                               "'' or PlatformIO framework names such as 'arduino' or 'espidf'",
                               empty_ok=True)
    if arch == "host" and platform != "native":
        raise table.error(f"'platformio.platform' is {platform!r} but 'arch' is 'host' — expected 'native'")
    if platform == "native" and arch != "host":
        raise table.error(f"'platformio.platform' is 'native' but 'arch' is {arch!r} — the native "
                          "platform builds for the host; expected arch 'host'")
    if platform == "native" and board:
        raise table.error(f"'platformio.board' is {board!r} — expected '' "
                          "(the native platform takes no board)")
    if platform != "native" and not board and not has_qemu:
        raise table.error("'platformio.board' is '' — expected a PlatformIO board id such as 'esp32dev' "
                          "(empty only for platform 'native' or a board with a [qemu] table)")
    return PlatformIO(platform=platform, board=board, framework=framework)


def _parse_qemu(table: _Table, flash_bytes: int, ram_bytes: int) -> Qemu:
    table.check_keys(("machine", "cpu", "flash", "ram"))
    qemu_id = "a QEMU name (letters, digits and _.+-)"
    machine = table.matching("machine", _QEMU_ID_RE, qemu_id)
    cpu = table.matching("cpu", _QEMU_ID_RE, qemu_id)
    flash = _parse_region(table.table("flash"))
    ram = _parse_region(table.table("ram"))
    if flash.origin < ram.end and ram.origin < flash.end:
        raise table.error(f"'qemu.flash' ({flash.origin:#x}..{flash.end:#x}) overlaps 'qemu.ram' "
                          f"({ram.origin:#x}..{ram.end:#x}) — expected separate regions")
    for key, size, region in (("flash", flash_bytes, flash), ("ram", ram_bytes, ram)):
        if size > region.length:
            raise table.error(f"'{key}_bytes' is {size} but 'qemu.{key}.length' is {region.length} — "
                              f"expected {key}_bytes <= qemu.{key}.length")
    return Qemu(machine=machine, cpu=cpu, flash=flash, ram=ram)


def _parse_region(table: _Table) -> MemoryRegion:
    table.check_keys(("origin", "length"))
    region = MemoryRegion(origin=table.integer("origin", minimum=0),
                          length=table.integer("length", minimum=1))
    if region.end > _ADDRESS_SPACE:
        raise table.error(f"'{table.prefix.rstrip('.')}' ends at {region.end:#x} — expected it to end "
                          f"at or below {_ADDRESS_SPACE:#x} (32-bit address space)")
    return region


def builtin_boards_dir() -> Path:
    """The built-in boards: ``codegen/_data/boards`` when installed, else ``<repo>/boards``."""
    return resource_dir("boards")


def _load_dir(directory: Path) -> dict[str, Board]:
    boards = {}
    for path in sorted(directory.glob("*.toml")):
        board = load_board_file(path)
        boards[board.name] = board
    return boards


def _ordered(boards: Mapping[str, Board]) -> dict[str, Board]:
    return {name: boards[name] for name in sorted(boards, key=lambda n: (n != FIRST_BOARD, n))}


def load_boards(extra_dir: Path | None = None) -> dict[str, Board]:
    """All boards by name: built-ins plus those in `extra_dir`, `esp32` first, then by name.

    A board in `extra_dir` with a built-in board's name replaces it; its `overrides` field then
    holds the built-in file's path so the caller can report it.
    """
    builtin_dir = builtin_boards_dir()
    builtin = _load_dir(builtin_dir)
    if not builtin:
        raise TfgenError(f"the built-in board directory {builtin_dir} has no board files (*.toml)",
                         "reinstall tfgen, or restore boards/ in a checkout")
    boards = dict(builtin)
    if extra_dir is not None:
        extra_dir = Path(extra_dir)
        shown = _display_path(extra_dir)
        if not extra_dir.is_dir():
            raise TfgenError(f"board directory {shown} does not exist or is not a directory",
                             "pass a directory of <name>.toml board files to --boards-dir")
        user = _load_dir(extra_dir)
        if not user:
            raise TfgenError(f"board directory {shown} has no board files (*.toml)",
                             "add a <name>.toml per board; " + _SCHEMA_HINT)
        for name, board in user.items():
            if name in builtin:
                board = dataclasses.replace(board, overrides=builtin[name].source)
            boards[name] = board
    return _ordered(boards)


def get_board(name: str, extra_dir: Path | None = None) -> Board:
    """The board called `name`; TfgenError listing the known boards if there is none."""
    boards = load_boards(extra_dir)
    if name in boards:
        return boards[name]
    close = difflib.get_close_matches(name, list(boards), n=1)
    hint = f"did you mean {close[0]!r}? Otherwise put" if close else "to add a board, put"
    hint += f" {name}.toml in a directory passed with --boards-dir ({_SCHEMA_HINT})"
    raise TfgenError(f"unknown board {name!r} — known boards: {', '.join(boards)}", hint)


def _size(n: int) -> str:
    if n == 0:
        return "-"
    for unit, suffix in ((1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= unit:
            return f"{n / unit:.1f}".removesuffix(".0") + " " + suffix
    return f"{n} B"


def format_board_table(boards: Mapping[str, Board] | Iterable[Board]) -> str:
    """A fixed-width table of the boards, one line each, plus a note per overridden built-in."""
    rows = list(boards.values()) if isinstance(boards, Mapping) else list(boards)
    header = ("name", "core", "MHz", "flash", "RAM", "PSRAM", "kernels", "arena")
    lines = [header] + [
        (b.name + ("*" if b.overrides else ""), b.core, str(b.cpu_mhz) if b.cpu_mhz else "-",
         _size(b.flash_bytes), _size(b.ram_bytes), _size(b.psram_bytes), b.kernels, b.arena_placement)
        for b in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right_aligned = {2, 3, 4, 5}
    text = [
        "  ".join(cell.rjust(w) if i in right_aligned else cell.ljust(w)
                  for i, (cell, w) in enumerate(zip(line, widths))).rstrip()
        for line in lines
    ]
    text.extend(f"* {b.name}: {_display_path(b.source)} overrides the built-in {_display_path(b.overrides)}"
                for b in rows if b.overrides)
    return "\n".join(text) + "\n"


def board_to_dict(board: Board) -> dict[str, Any]:
    """The board as plain JSON-ready values (for ``--json``); paths become strings."""
    data = dataclasses.asdict(board)
    data["source"] = str(board.source)
    data["overrides"] = str(board.overrides) if board.overrides else None
    return data
