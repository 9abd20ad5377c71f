"""Build: a generated project -> firmware, with its real flash and RAM from the ELF.

Boards with a target (``host`` and the emulated Cortex-M boards, ``project.targets``) are built by
tfgen's own builder (``toolchain.builder``: the same sources and flags as the project's ``sim`` and
``qemu`` environments); every other board by PlatformIO (``pio run``).
Where PlatformIO cannot install the board's platform or toolchain (offline), one error says what is
missing; the project stays generated.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from codegen.toolchain import elfsize, builder, proc
from codegen.project import targets
from codegen.project.generate import read_project_file
from codegen.project.boards import Board
from codegen.errors import TfgenError

PIO_TIMEOUT_S = 3600
_PIO_OFFLINE = re.compile(r"HTTPClientError|Could not resolve host|Max retries exceeded|"
                          r"(?i:internet connection)|UnknownPackageError|PackageException", re.I)


@dataclass(frozen=True)
class Firmware:
    elf: Path
    size: elfsize.ImageSize
    builder: str                 # "tfgen" or "platformio"
    seconds: float
    compiled: int | None = None  # files compiled (tfgen's builder)


def pio_env() -> dict[str, str]:
    return {**os.environ, "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No"}


def build_project(project: Path, board: Board) -> Firmware:
    made_for = read_project_file(project)["board"]
    if made_for != board.name:
        raise TfgenError(f"{project}: generated for {made_for}, not {board.name}",
                         f"build it with --board {made_for}, or generate a project for {board.name}")
    target = targets.for_board(board)
    if target is not None:
        built = builder.build(project, test_mode=False, target=target.build)
        return Firmware(built.executable, elfsize.image_size(built.executable), "tfgen", built.seconds,
                        len(built.compiled))
    return _pio_build(project, board)


def _pio_build(project: Path, board: Board) -> Firmware:
    import time
    start = time.monotonic()
    pio = _pio()
    result = proc.run([pio, "run", "-d", project, "-e", board.name], what=f"pio run -e {board.name}",
                      timeout=PIO_TIMEOUT_S, check=False, env=pio_env())
    output = result.stdout + result.stderr
    if result.returncode != 0:
        if "Installing" in output and _PIO_OFFLINE.search(output):
            raise TfgenError(
                f"PlatformIO could not install the {_platform(board.platformio.platform)} or its toolchain "
                f"for {board.name} (no access to PlatformIO's registry); the project is generated in {project}",
                f"build it where `pio run` can download {board.platformio.platform}, or install the "
                "platform offline with `pio pkg install -g -p <folder>`")
        lines = [l for l in output.splitlines() if "error" in l.lower()]
        raise TfgenError(f"pio run -e {board.name} failed: {(lines or [proc.tail(output, 1)])[0].strip()}",
                         f"see the whole log with: cd {project} && pio run -e {board.name}")
    elf = project / ".pio" / "build" / board.name / "firmware.elf"
    if not elf.is_file():
        raise TfgenError(f"pio run succeeded but left no {elf}", "build it by hand to see where it went")
    return Firmware(elf, elfsize.image_size(elf), "platformio", time.monotonic() - start)


def _platform(spec: str) -> str:
    """"espressif32@6.13.0" -> "espressif32 platform (pinned 6.13.0)"."""
    name, _, version = spec.partition("@")
    return f"{name} platform" + (f" (pinned {version})" if version else "")


def _pio() -> str:
    import shutil
    import sys
    local = Path(sys.executable).parent / "pio"
    found = str(local) if local.exists() else shutil.which("pio")
    if not found:
        raise TfgenError("PlatformIO (pio) is not installed", "pip install platformio")
    return found


def run_pio(project: Path, args: list[str], interactive: bool = False) -> int:
    """`pio ARGS` in the project: upload and monitor, passing the terminal through."""
    import subprocess
    cmd = [_pio(), *args, "-d", str(project)] if args[0] == "run" else [_pio(), *args]
    if interactive:
        return subprocess.call(cmd, cwd=project, env=pio_env())
    return proc.run(cmd, what=f"pio {' '.join(args)}", timeout=PIO_TIMEOUT_S, cwd=project, check=False,
                    env=pio_env()).returncode


def fit_report(project: Path, board: Board, firmware: Firmware) -> dict:
    """The firmware's flash, RAM and PSRAM (the arena, where it lives there) against the board's limits."""
    arena_plan = read_project_file(project)["arena"]
    arena, heap_arena = int(arena_plan["size"]), bool(arena_plan["in_heap"])
    flash, ram = firmware.size.flash, firmware.size.ram
    ram_needed = ram + (arena if heap_arena and board.arena_placement == "internal" else 0)
    psram_needed = arena if board.arena_placement == "psram" else 0
    rows = [("flash", flash, board.flash_bytes), ("RAM", ram_needed, board.ram_bytes)]
    if board.psram_bytes:
        rows.append(("PSRAM", psram_needed, board.psram_bytes))
    fits = all(used <= limit for _, used, limit in rows)
    verdict = "; ".join(f"{what} {used:,} of {limit:,} bytes" for what, used, limit in rows)
    return {"project": str(project), "board": board.name, "elf": str(firmware.elf), "builder": firmware.builder,
            "build_seconds": round(firmware.seconds, 2), "arena_bytes": arena,
            "arena_in": "heap" if heap_arena else "static RAM",
            "memory": [{"region": w, "used": u, "limit": l, "headroom_percent": round(100 * (l - u) / l, 1)}
                       for w, u, l in rows],
            "sections": firmware.size.to_dict()["sections"], "fits": fits, "verdict": verdict}
