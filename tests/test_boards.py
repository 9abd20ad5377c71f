"""The board database: built-in boards load, every validation rule has an invalid example file,
user boards add to and override built-ins, and the listing helpers cover every board."""
from __future__ import annotations

import ast
import dataclasses
import json
import re
from pathlib import Path

import pytest

from codegen.project import boards
from codegen.project.boards import (ARCHES, ARENA_PLACEMENTS, CHIPS, CORES, KERNELS, Board, board_to_dict,
                            builtin_boards_dir, format_board_table, get_board, load_board_file,
                            load_boards)
from codegen.errors import TfgenError

REPO = Path(__file__).resolve().parent.parent
INVALID_DIR = Path(__file__).parent / "data" / "boards_invalid"
BUILTIN_NAMES = {"esp32", "esp32s3", "esp32s3_psram", "esp32c3", "esp32c6", "nano33ble", "nucleo_f446re",
                 "nucleo_h743zi", "disco_f746ng", "pico", "mps2_an386", "host"}
# Every built-in board's PlatformIO platform, pinned to the version its figures were taken from.
PINNED_PLATFORMS = {
    "esp32": "espressif32@6.13.0", "esp32s3": "espressif32@6.13.0", "esp32s3_psram": "espressif32@6.13.0",
    "esp32c3": "espressif32@6.13.0", "esp32c6": "espressif32@6.13.0",
    "nucleo_f446re": "ststm32@19.6.0", "nucleo_h743zi": "ststm32@19.6.0", "disco_f746ng": "ststm32@19.6.0",
    "mps2_an386": "ststm32@19.6.0", "nano33ble": "nordicnrf52@10.11.0", "pico": "raspberrypi@1.19.0",
    "host": "native",
}
# The ESP-IDF target of every built-in espidf board; "" for all the others.
BUILTIN_CHIPS = {"esp32": "esp32", "esp32s3": "esp32s3", "esp32s3_psram": "esp32s3", "esp32c3": "esp32c3",
                 "esp32c6": "esp32c6"}


def _error(excinfo: pytest.ExceptionInfo[TfgenError]) -> tuple[str, str]:
    """Split 'path: message' into the file name and the message."""
    shown, _, rest = excinfo.value.message.partition(": ")
    return Path(shown).name, rest


# --- built-in boards -------------------------------------------------------------------------------

def test_builtin_dir_is_the_checkout_boards_dir():
    assert builtin_boards_dir() == REPO / "boards"


@pytest.mark.parametrize("path", sorted((REPO / "boards").glob("*.toml")), ids=lambda p: p.stem)
def test_every_builtin_board_loads(path):
    board = load_board_file(path)
    assert board.name == path.stem
    assert board.source == path
    assert board.overrides is None


def test_builtin_board_set():
    assert set(load_boards()) == BUILTIN_NAMES


@pytest.mark.parametrize("path", sorted((REPO / "boards").glob("*.toml")), ids=lambda p: p.stem)
def test_every_builtin_number_names_its_source(path):
    """Every numeric value carries a comment beside it saying where the number comes from."""
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(r"\s*[a-z_]+\s*=\s*-?(0x)?[0-9a-fA-F_]+\s*(#|$)", line):
            value, _, comment = line.partition("#")
            assert len(comment.strip()) >= 10, f"{path.name}:{lineno}: number without a source: {line!r}"


@pytest.mark.parametrize("board", sorted(BUILTIN_NAMES))
def test_builtin_kernels_follow_the_core(board):
    """ESP32 family (Xtensa and RISC-V): esp-nn; Cortex-M4/M7: cmsis-nn; Cortex-M0+ and host: reference."""
    b = get_board(board)
    expected = {"xtensa-lx6": "esp-nn", "xtensa-lx7": "esp-nn", "riscv32-imc": "esp-nn",
                "riscv32-imac": "esp-nn", "cortex-m4f": "cmsis-nn", "cortex-m7": "cmsis-nn",
                "cortex-m0plus": "reference", "host": "reference"}[b.core]
    assert b.kernels == expected
    if b.arch in ("xtensa", "riscv"):
        assert b.platformio.platform == "espressif32@6.13.0"
        assert b.platformio.framework == "espidf"


def test_the_kernel_libraries_and_the_arches_they_run_on():
    assert ARCHES == ("arm", "host", "riscv", "xtensa")
    assert dict(KERNELS) == {"cmsis-nn": ("arm",), "esp-nn": ("xtensa", "riscv"),
                             "reference": ("arm", "host", "riscv", "xtensa")}
    assert {core: arch for core, arch in CORES.items() if arch == "riscv"} == \
        {"riscv32-imc": "riscv", "riscv32-imac": "riscv"}
    assert dict(CHIPS) == {"esp32": "xtensa", "esp32s2": "xtensa", "esp32s3": "xtensa", "esp32c3": "riscv",
                           "esp32c6": "riscv", "esp32p4": "riscv"}


@pytest.mark.parametrize("board", sorted(BUILTIN_NAMES))
def test_builtin_platform_is_pinned(board):
    assert get_board(board).platformio.platform == PINNED_PLATFORMS[board]


@pytest.mark.parametrize("board", sorted(BUILTIN_NAMES))
def test_builtin_chip_is_the_esp_idf_target(board):
    b = get_board(board)
    assert b.chip == BUILTIN_CHIPS.get(board, "")
    assert bool(b.chip) == (b.platformio.framework == "espidf")


@pytest.mark.parametrize("name,core,board_id,chip", [
    ("esp32c3", "riscv32-imc", "esp32-c3-devkitm-1", "esp32c3"),
    ("esp32c6", "riscv32-imac", "esp32-c6-devkitc-1", "esp32c6"),
])
def test_riscv_esp_boards(name, core, board_id, chip):
    b = get_board(name)
    assert (b.core, b.arch, b.kernels, b.chip) == (core, "riscv", "esp-nn", chip)
    assert (b.platformio.platform, b.platformio.board, b.platformio.framework) == \
        ("espressif32@6.13.0", board_id, "espidf")
    assert (b.cpu_mhz, b.flash_bytes, b.ram_bytes, b.psram_bytes) == (160, 1048576, 327680, 0)
    assert (b.arena_placement, b.qemu) == ("internal", None)


def test_psram_board_places_the_arena_in_psram():
    b = get_board("esp32s3_psram")
    assert b.psram_bytes == 8 * 1024 * 1024
    assert b.arena_placement == "psram"
    assert b.platformio.board == get_board("esp32s3").platformio.board == "esp32-s3-devkitc-1"


def test_host_board_is_native():
    b = get_board("host")
    assert (b.arch, b.platformio.platform, b.platformio.board, b.platformio.framework) == \
        ("host", "native", "", "")
    assert b.qemu is None


def test_mps2_an386_memory_map():
    b = get_board("mps2_an386")
    assert b.qemu is not None
    assert (b.qemu.machine, b.qemu.cpu) == ("mps2-an386", "cortex-m4")
    assert (b.qemu.flash.origin, b.qemu.flash.length) == (0x0, 4 * 1024 * 1024)
    assert (b.qemu.ram.origin, b.qemu.ram.length) == (0x20000000, 4 * 1024 * 1024)
    assert b.qemu.ram.end == 0x20400000
    assert b.flash_bytes <= b.qemu.flash.length and b.ram_bytes <= b.qemu.ram.length


def test_esp32_listed_first_then_by_name():
    names = list(load_boards())
    assert names[0] == "esp32"
    assert names[1:] == sorted(names[1:])


def test_board_is_frozen():
    b = get_board("esp32")
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.ram_bytes = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.platformio.board = "x"  # type: ignore[misc]


# --- one invalid example file per rule -----------------------------------------------------------

def _expectation(path: Path) -> tuple[str, str]:
    """('exact' | 'start', text) from the file's '# expect: ...' or '# expect-start: ...' line."""
    for line in path.read_text().splitlines():
        m = re.match(r"# (expect|expect-start): (.*)$", line)
        if m:
            return ("exact" if m[1] == "expect" else "start"), m[2]
    raise AssertionError(f"{path.name} has no '# expect:' line")


INVALID_FILES = sorted(INVALID_DIR.glob("*.toml"))


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.stem)
def test_invalid_board_file(path):
    kind, expected = _expectation(path)
    with pytest.raises(TfgenError) as excinfo:
        load_board_file(path)
    name, message = _error(excinfo)
    assert name == path.name, excinfo.value.message
    if kind == "exact":
        assert message == expected
    else:
        assert message.startswith(expected), message


def test_there_are_invalid_examples():
    assert len(INVALID_FILES) >= 30
    names = {p.stem for p in INVALID_FILES}
    assert {"chip_missing", "chip_not_espidf", "chip_unknown", "core_arch_mismatch_riscv",
            "kernels_cmsis_nn_on_riscv"} <= names


# (invalid example, its one wrong line, the line that makes it a valid board)
ONE_LINE_FROM_VALID = [
    ("arch_unknown", 'arch = "mips"', 'arch = "arm"'),
    ("core_arch_mismatch_riscv", 'arch = "xtensa"', 'arch = "riscv"'),
    ("kernels_arch_mismatch", 'kernels = "esp-nn"', 'kernels = "cmsis-nn"'),
    ("kernels_cmsis_nn_on_riscv", 'kernels = "cmsis-nn"', 'kernels = "esp-nn"'),
    ("chip_missing", 'kernels = "esp-nn"', 'chip = "esp32"\nkernels = "esp-nn"'),
    ("chip_not_espidf", 'chip = "esp32"\n', ''),
    ("chip_unknown", 'chip = "esp32s4"', 'chip = "esp32s3"'),
]


@pytest.mark.parametrize("stem,wrong,right", ONE_LINE_FROM_VALID, ids=[c[0] for c in ONE_LINE_FROM_VALID])
def test_invalid_example_is_one_line_from_a_valid_board(tmp_path, stem, wrong, right):
    """The example fails on its own rule: with that one line put right, the same file loads."""
    text = (INVALID_DIR / f"{stem}.toml").read_text()
    assert text.count(wrong) == 1, f"{stem}.toml has not exactly one {wrong!r}"
    path = tmp_path / f"{stem}.toml"
    path.write_text(text.replace(wrong, right))
    board = load_board_file(path)
    assert board.name == stem


def test_every_invalid_example_breaks_only_its_rule():
    """Each invalid example is a valid board with one change: no two share an expected message."""
    expectations = [_expectation(p)[1] for p in INVALID_FILES]
    assert len(set(expectations)) == len(expectations)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes('description = "caf\xe9"\n'.encode("latin-1"))
    with pytest.raises(TfgenError) as excinfo:
        load_board_file(path)
    assert _error(excinfo) == ("latin1.toml", "not valid TOML: the file is not UTF-8 text")


def test_missing_file(tmp_path):
    with pytest.raises(TfgenError) as excinfo:
        load_board_file(tmp_path / "nope.toml")
    assert _error(excinfo) == ("nope.toml", "no such board file")


def test_error_has_a_hint():
    with pytest.raises(TfgenError) as excinfo:
        load_board_file(INVALID_DIR / "kernels_unknown.toml")
    assert excinfo.value.hint and "boards/README.md" in excinfo.value.hint


# --- user boards -----------------------------------------------------------------------------------

def _user_board(directory: Path, name: str, **changes: str) -> Path:
    """Write <directory>/<name>.toml: a copy of nucleo_f446re.toml with `name` and `changes`."""
    text = (REPO / "boards" / "nucleo_f446re.toml").read_text()
    text = text.replace('name = "nucleo_f446re"', f'name = "{name}"')
    for key, value in changes.items():
        text, count = re.subn(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
        assert count == 1, key
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    path.write_text(text)
    return path


def test_user_board_is_added(tmp_path):
    _user_board(tmp_path, "my_board", ram_bytes="65536")
    loaded = load_boards(tmp_path)
    assert set(loaded) == BUILTIN_NAMES | {"my_board"}
    assert loaded["my_board"].ram_bytes == 65536
    assert loaded["my_board"].overrides is None
    names = list(loaded)
    assert names[0] == "esp32" and names[1:] == sorted(names[1:])
    assert get_board("my_board", tmp_path).source == tmp_path / "my_board.toml"


def test_user_board_overrides_builtin(tmp_path):
    path = _user_board(tmp_path, "esp32", ram_bytes="100000")
    loaded = load_boards(tmp_path)
    esp32 = loaded["esp32"]
    assert esp32.ram_bytes == 100000
    assert esp32.source == path
    assert esp32.overrides == REPO / "boards" / "esp32.toml"
    assert list(loaded)[0] == "esp32"
    table = format_board_table(loaded)
    assert re.search(r"(?m)^esp32\* ", table)
    assert "overrides the built-in" in table
    assert board_to_dict(esp32)["overrides"] == str(REPO / "boards" / "esp32.toml")
    # the built-ins themselves are unchanged
    assert get_board("esp32").ram_bytes == 327680


def test_invalid_user_board_names_its_file(tmp_path):
    _user_board(tmp_path, "broken", kernels='"cmsis"')
    with pytest.raises(TfgenError) as excinfo:
        load_boards(tmp_path)
    assert _error(excinfo) == ("broken.toml",
                               "'kernels' is 'cmsis' — expected one of cmsis-nn, esp-nn, reference")


def test_user_dir_missing(tmp_path):
    with pytest.raises(TfgenError) as excinfo:
        load_boards(tmp_path / "nope")
    assert "does not exist" in excinfo.value.message
    assert "--boards-dir" in excinfo.value.hint


def test_user_dir_without_boards(tmp_path):
    (tmp_path / "README.md").write_text("not a board\n")
    with pytest.raises(TfgenError) as excinfo:
        load_boards(tmp_path)
    assert "has no board files (*.toml)" in excinfo.value.message


# --- lookup ----------------------------------------------------------------------------------------

def test_get_board():
    assert get_board("nucleo_f446re").platformio.board == "nucleo_f446re"


def test_unknown_board_lists_known_boards():
    with pytest.raises(TfgenError) as excinfo:
        get_board("esp32s4")
    message = excinfo.value.message
    assert message.startswith("unknown board 'esp32s4' — known boards: esp32, ")
    for name in BUILTIN_NAMES:
        assert name in message
    assert "did you mean" in excinfo.value.hint


# --- listing ---------------------------------------------------------------------------------------

def test_format_board_table_contains_every_board():
    loaded = load_boards()
    lines = format_board_table(loaded).splitlines()
    assert lines[0].split() == ["name", "core", "MHz", "flash", "RAM", "PSRAM", "kernels", "arena"]
    assert [line.split()[0] for line in lines[1:]] == list(loaded)
    assert lines[1].startswith("esp32 ")
    # fixed width: every line has its 'core' cell where the header has 'core'
    core_column = lines[0].index("core")
    for line, board in zip(lines[1:], loaded.values()):
        assert line[core_column:].startswith(board.core + " "), line
    assert format_board_table(loaded.values()) == format_board_table(loaded)


def test_format_board_table_sizes():
    table = format_board_table([get_board("esp32s3_psram"), get_board("nano33ble"), get_board("host")])
    assert re.search(r"esp32s3_psram .* 1 MiB +320 KiB +8 MiB +esp-nn +psram", table)
    assert re.search(r"nano33ble .* 960 KiB +255.5 KiB +- +cmsis-nn", table)
    assert re.search(r"(?m)^host +host +- ", table)


@pytest.mark.parametrize("name", sorted(BUILTIN_NAMES))
def test_board_to_dict_is_json(name):
    board = get_board(name)
    data = json.loads(json.dumps(board_to_dict(board)))
    assert set(data) == {f.name for f in dataclasses.fields(Board)}
    assert data["name"] == name
    assert data["platformio"]["board"] == board.platformio.board
    assert data["source"] == str(board.source)
    if board.qemu is None:
        assert data["qemu"] is None
    else:
        assert data["qemu"]["ram"] == {"origin": board.qemu.ram.origin, "length": board.qemu.ram.length}


# --- packaging and code rules ----------------------------------------------------------------------

def test_builtin_copy_loads_from_anywhere(tmp_path, monkeypatch):
    """The loader does not depend on the working directory."""
    monkeypatch.chdir(tmp_path)
    assert set(load_boards()) == BUILTIN_NAMES


def test_readme_documents_every_key_and_value():
    readme = (REPO / "boards" / "README.md").read_text()
    tables = ("platformio", "qemu", "qemu.flash", "qemu.ram")
    keys = [f.name for f in dataclasses.fields(Board) if f.name not in ("source", "overrides", *tables)]
    keys += ["platform", "board", "framework", "machine", "cpu", "origin", "length"]
    values = list(CORES) + list(ARCHES) + list(KERNELS) + list(ARENA_PLACEMENTS) + list(CHIPS)
    for word in keys + values:
        assert f"`{word}`" in readme, word
    for table in tables:
        assert f"`[{table}]`" in readme, table


def test_library_has_no_assert_or_print():
    tree = ast.parse(Path(boards.__file__).read_text())
    for node in ast.walk(tree):
        assert not isinstance(node, ast.Assert), f"assert at line {node.lineno}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "print", f"print at line {node.lineno}"
