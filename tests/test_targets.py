"""Boards drive targets: a board with a [qemu] table is one TOML file away from `tfgen verify`; every
project says in tfgen.json what was decided for it; its regenerate line makes it again."""
from __future__ import annotations

import json
import shlex
import shutil
import subprocess

import pytest

import needs
from codegen.project import boards, targets
from conftest import model, run_tfgen
from helpers_render import emulated_board_toml

# A second emulated board, as a user would add one: QEMU's mps2-an500, a Cortex-M7 (double-precision
# FPU), with the same memory map as the AN386 (QEMU hw/arm/mps2.c).
M7_BOARD = emulated_board_toml("mps2_an500", "Arm MPS2 AN500 (Cortex-M7) emulated by QEMU mps2-an500", "cortex-m7",
                               "mps2-an500", 25, 4194304, 2097152, "cmsis-nn")


@pytest.fixture
def m7_boards(tmp_path):
    folder = tmp_path / "boards"
    folder.mkdir()
    (folder / "mps2_an500.toml").write_text(M7_BOARD)
    return folder


def test_only_boards_tfgen_can_run_have_a_target():
    known = boards.load_boards()
    have = sorted(name for name, b in known.items() if targets.for_board(b))
    assert have == ["host", "mps2_an386"]
    # every other board's `qemu` environment (and `verify --on qemu`) runs on the Cortex-M4F stand-in
    for name, b in known.items():
        emulated = targets.emulated(b)
        if b.arch == "host":
            assert emulated is None
        else:
            assert emulated.board.name == (name if b.qemu else targets.STAND_IN)
    # where verify runs a board: its own target, else the host; --on picks
    esp32 = known["esp32"]
    assert targets.verify_target(esp32).board.name == "host"
    assert targets.verify_target(esp32, "qemu").board.name == targets.STAND_IN
    assert targets.verify_target(known["mps2_an386"], "host").board.name == "host"


def test_target_flags_and_emulator_come_from_the_board_file(m7_boards):
    board = boards.get_board("mps2_an500", m7_boards)
    t = targets.for_board(board)
    assert t.emulator[:5] == ("qemu-system-arm", "-M", "mps2-an500", "-cpu", "cortex-m7")
    assert t.emulator[-1] == "-kernel" and "-icount" in t.emulator
    assert ("-mcpu=cortex-m7", "-mfpu=fpv5-d16") == (t.build.arch_flags[1], t.build.arch_flags[-2])
    assert "src/qemu/mps2_an500.ld" in t.build.link_flags and "-mfpu=fpv5-d16" in t.build.link_flags
    assert t.core_name == "Cortex-M7" and t.machine_name == "MPS2 AN500"


def test_a_board_file_makes_an_emulated_project(tmp_path, m7_boards):
    needs.tflm()
    out = tmp_path / "p"
    r = run_tfgen("generate", model("hello_world_int8"), "--board", "mps2_an500", "--boards-dir", m7_boards,
                  "--kernels", "reference", "-o", out)
    assert r.returncode == 0, r.stderr
    ini = (out / "platformio.ini").read_text()
    assert "default_envs = qemu" in ini
    assert "`qemu` runs it on an emulated Cortex-M7 (MPS2 AN500)" in ini
    assert ("upload_command = qemu-system-arm -M mps2-an500 -cpu cortex-m7 -icount shift=0" in ini
            and "board = tfgen_mps2_an500" in ini and "board_build.ldscript = src/qemu/mps2_an500.ld" in ini)
    ld = (out / "src" / "qemu" / "mps2_an500.ld").read_text()
    assert "RAM  (rwx) : ORIGIN = 0x20000000, LENGTH = 2M" in ld          # the board file's memory map
    pio_board = json.loads((out / "boards" / "tfgen_mps2_an500.json").read_text())
    assert pio_board["build"]["cpu"] == "cortex-m7" and pio_board["build"]["extra_flags"] == \
        "-mfloat-abi=hard -mfpu=fpv5-d16"
    assert pio_board["upload"]["maximum_ram_size"] == 0x200000
    link = (out / "src" / "qemu" / "platformio_link.py").read_text()
    assert '"-mfpu=fpv5-d16"' in link and "fpv4" not in link
    project = json.loads((out / "tfgen.json").read_text())
    assert project["board"] == "mps2_an500" and project["core"] == "cortex-m7"
    assert [e["name"] for e in project["environments"]] == ["sim", "qemu"]
    assert project["regenerate"].endswith("--kernels reference --boards-dir " + shlex.quote(str(m7_boards)))


def test_verify_on_a_board_added_as_one_toml_file(m7_boards):
    """The issue's acceptance: a Cortex-M7 machine QEMU has, from a temporary boards folder, verified."""
    needs.cortex_m()
    needs.cmsis_nn()
    r = run_tfgen("verify", model("hello_world_int8"), "--board", "mps2_an500", "--boards-dir", m7_boards,
                  "--vectors", "20", "--json", timeout=900)
    assert r.returncode == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert report["ok"] and report["board"] == "mps2_an500" and report["mismatched_bytes"] == 0
    assert report["bytes_compared"] == 20 and report["target_bits"] == 32
    assert report["kernels"].startswith("cmsis-nn") and report["instructions_per_inference"] > 0


def test_the_firmware_is_built_for_the_board_files_core(tmp_path, m7_boards):
    """Not the M4F's flags under another name: the ELF's build attributes say Cortex-M7 with FPv5."""
    needs.cortex_m()
    needs.tools("arm-none-eabi-readelf")
    out = tmp_path / "p"
    r = run_tfgen("build", model("hello_world_int8"), "--board", "mps2_an500", "--boards-dir", m7_boards,
                  "--kernels", "reference", "-o", out, "--json", timeout=900)
    assert r.returncode == 0, r.stderr
    elf = json.loads(r.stdout)["elf"]
    attributes = subprocess.run(["arm-none-eabi-readelf", "-A", elf], capture_output=True, text=True).stdout
    assert "Tag_CPU_name: \"7E-M\"" in attributes or "cortex-m7" in attributes.lower(), attributes
    assert "FPv5/FP-D16" in attributes, attributes


def test_verify_refuses_what_it_cannot_run_in_one_line():
    r = run_tfgen("verify", model("hello_world_int8"), "--board", "host", "--on", "qemu")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "--on qemu: host is the host" in r.stderr and "Traceback" not in r.stderr


def test_build_reads_what_generate_decided(tmp_path):
    needs.tflm()
    out = tmp_path / "p"
    assert run_tfgen("generate", model("hello_world_int8"), "--board", "host", "-o", out).returncode == 0
    decided = json.loads((out / "tfgen.json").read_text())
    r = run_tfgen("build", out, "--board", "host", "--json", timeout=900)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["arena_bytes"] == decided["arena"]["size"]
    # a project made for one board is not built as another's
    r = run_tfgen("build", out, "--board", "mps2_an386")
    assert r.returncode == 2 and "generated for host, not mps2_an386" in r.stderr
    # a project without tfgen.json (an older tfgen's) gets one line, not a guess from its headers
    (out / "tfgen.json").unlink()
    r = run_tfgen("build", out, "--board", "host")
    assert r.returncode == 2 and "no tfgen.json" in r.stderr and r.stderr.count("\n") == 1


def test_the_regenerate_line_makes_the_same_project(tmp_path):
    """The banner's command, run where the model and the project are, gives the project byte for byte."""
    tree = needs.tflm()
    work = tmp_path / "w"
    work.mkdir()
    shutil.copy(model("hello_world_int8"), work / "hello.tflite")
    r = run_tfgen("generate", "hello.tflite", "--board", "mps2_an386", "--kernels", "reference", "--tflm-dir",
                  tree.root, "-o", "proj", cwd=work)
    assert r.returncode == 0, r.stderr
    command = json.loads((work / "proj" / "tfgen.json").read_text())["regenerate"]
    assert command in (work / "proj" / "platformio.ini").read_text()
    argv = shlex.split(command)
    assert argv[:2] == ["tfgen", "generate"] and "--kernels" in argv and "--tflm-dir" in argv
    before = {p.relative_to(work / "proj"): p.read_bytes() for p in (work / "proj").rglob("*") if p.is_file()}
    r = run_tfgen(*argv[1:], "--force", cwd=work)
    assert r.returncode == 0, r.stderr
    after = {p.relative_to(work / "proj"): p.read_bytes() for p in (work / "proj").rglob("*") if p.is_file()}
    assert before == after


def test_generated_and_hand_written_halves_of_other_versions_do_not_compile(tmp_path):
    """The version handshake: a tfgen_model.h of another firmware API stops the first compile, saying
    to regenerate, instead of failing somewhere in the harness or computing with a stale contract."""
    needs.tflm()
    out = tmp_path / "p"
    assert run_tfgen("generate", model("hello_world_int8"), "--board", "host", "-o", out).returncode == 0
    header = out / "src" / "tfgen_model.h"
    text = header.read_text()
    assert "#define TFGEN_FIRMWARE_API 1\n" in text
    header.write_text(text.replace("#define TFGEN_FIRMWARE_API 1\n", "#define TFGEN_FIRMWARE_API 2\n"))
    r = run_tfgen("build", out, "--board", "host", timeout=900)
    assert r.returncode == 2 and "regenerate the project" in r.stderr, r.stderr
