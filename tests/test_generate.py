"""`tfgen generate`: a project per board and model, validated by PlatformIO's and ESP-IDF's own tools."""
from __future__ import annotations

import filecmp
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import needs
from codegen.project import boards as boards_mod
from codegen.model.inspection import parse_model
from codegen.toolchain.tflm_tree import ENV_VAR
from conftest import model, run_tfgen
from test_cgen import ARM_GXX, ARM_FLAGS, WARNINGS, _elf_symbols

MODELS = ["kws_ref_model", "ad01_int8", "hello_world_int8"]
BOARDS = list(boards_mod.load_boards())
ESP_BOARDS = [b for b in BOARDS if boards_mod.get_board(b).platformio.framework == "espidf"]
TOOLS_ENV = {**os.environ, "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No",
             "PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL": "9999"}


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        needs.lacking(f"needs {name} (pip install -e '.[test]')")
    return str(path)


def needs_tree(board: str) -> None:
    """Every board but the ESP ones (ESP-IDF's component brings TFLM) needs a TFLM tree."""
    if board not in ESP_BOARDS:
        needs.tflm()


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """Generate lazily, once per (model, board)."""
    root = tmp_path_factory.mktemp("projects")
    made: dict[tuple[str, str], Path] = {}

    def get(name: str, board: str, *extra) -> Path:
        key = (name, board)
        if key not in made:
            needs_tree(board)
            out = root / f"{name}-{board}"
            r = run_tfgen("generate", model(name), "--board", board, "-o", out, *extra)
            assert r.returncode == 0, r.stderr
            made[key] = out
        return made[key]
    return get


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("name", MODELS)
def test_every_board_and_model_gives_a_project_platformio_accepts(projects, name, board):
    out = projects(name, board)
    r = subprocess.run([tool("pio"), "project", "config", "--json-output"], cwd=out, capture_output=True,
                       text=True, timeout=120, env=TOOLS_ENV)
    assert r.returncode == 0, r.stderr[-2000:]
    sections = dict(json.loads(r.stdout))
    spec = boards_mod.get_board(board)
    envs = {s.removeprefix("env:") for s in sections if s.startswith("env:")}
    expected = set()
    if spec.platformio.framework:
        expected |= {board, "validate"}         # and its validation image, for `verify --port`
    if (out / "lib" / "tflm").is_dir():
        expected.add("sim")
        if spec.arch != "host":             # the board itself where QEMU emulates it, else the Cortex-M4F
            expected.add("qemu")
    assert envs == expected
    if spec.platformio.framework:
        env = dict(sections[f"env:{board}"])
        assert env["platform"] == spec.platformio.platform and env["board"] == spec.platformio.board
        validate = dict(sections["env:validate"])
        assert validate["extends"] == [f"env:{board}"] or validate["extends"] == f"env:{board}"
        assert {"-DTFGEN_VALIDATE", "-DTFGEN_PROFILE"} <= set(validate["build_flags"])
        assert set(env.get("build_flags", [])) <= set(validate["build_flags"])


@pytest.mark.parametrize("board", ESP_BOARDS)
def test_esp_projects_pin_esp_tflite_micro_and_pass_the_manifest_lint(projects, board):
    out = projects("kws_ref_model", board)
    manifest = (out / "src" / "idf_component.yml").read_text()
    assert 'espressif/esp-tflite-micro:\n    version: "==1.3.8"' in manifest
    r = subprocess.run([tool("compote"), "manifest", "lint"], cwd=out / "src", capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    cmake = (out / "src" / "CMakeLists.txt").read_text()
    for f in sorted((out / "src").glob("*.c*")):
        if f.suffix in (".cc", ".cpp", ".c"):
            assert f'"{f.name}"' in cmake, f"{f.name} is not compiled by the ESP-IDF component"
    psram = boards_mod.get_board(board).arena_placement == "psram"
    assert ("CONFIG_SPIRAM=y" in (out / "sdkconfig.defaults").read_text()) == psram
    assert ("MALLOC_CAP_SPIRAM" in (out / "src" / "tfgen_model.cc").read_text()) == psram


@pytest.mark.parametrize("name", MODELS)
def test_the_resolver_registers_exactly_the_models_ops(projects, name):
    out = projects(name, "esp32")
    ir = parse_model(model(name).read_bytes(), model(name).name)
    text = (out / "src" / "tfgen_model.cc").read_text()
    registered = re.findall(r"resolver\.(Add\w+)\(\)", text)
    assert registered == [u.tflm_method for u in ir.ops]
    assert f"kNumOps = {len(ir.ops)};" in (out / "src" / "tfgen_model.h").read_text()


def test_header_carries_shapes_scales_zero_points_and_the_arena(projects):
    out = projects("kws_ref_model", "esp32")
    header = (out / "src" / "tfgen_model.h").read_text()
    source = (out / "src" / "tfgen_model.cc").read_text()
    arena = int(re.search(r"kArenaSize = (\d+);", header).group(1))
    measured = json.loads(run_tfgen("inspect", "--json", model("kws_ref_model")).stdout)["arena"]["min_bytes"]
    assert arena % 16 == 0 and measured * 1.05 - 16 < arena <= measured * 1.05
    assert '{"input_1", kTfLiteInt8, 4, {1, 49, 10, 1, 0, 0}, 490, 5.847029e-01f, 83}' in source
    assert '{"Identity", kTfLiteInt8, 2, {1, 12, 0, 0, 0, 0}, 12, 3.90625e-03f, -128}' in source


@pytest.mark.parametrize("board", ["esp32", "nucleo_f446re"])
def test_generation_is_byte_reproducible(tmp_path, board):
    needs_tree(board)
    a, b = tmp_path / "a" / "p", tmp_path / "b" / "p"
    for out in (a, b):
        out.parent.mkdir()
        assert run_tfgen("generate", model("hello_world_int8"), "--board", board, "-o", out).returncode == 0
    cmp = filecmp.dircmp(a, b)
    pending = [cmp]
    while pending:
        c = pending.pop()
        assert not (c.left_only or c.right_only or c.diff_files or c.funny_files), c.report()
        pending += c.subdirs.values()
    assert not re.search(r"20\d\d-\d\d-\d\d", (a / "src" / "tfgen_model.h").read_text())


def test_an_existing_project_is_kept_without_force(tmp_path):
    """A project tfgen made is replaced whole with --force (never merged), and kept without it."""
    out = tmp_path / "p"
    assert run_tfgen("generate", model("hello_world_int8"), "--board", "esp32", "-o", out).returncode == 0
    (out / "notes.txt").write_text("mine")
    r = run_tfgen("generate", model("hello_world_int8"), "--board", "esp32", "-o", out)
    assert r.returncode == 2 and "not empty" in r.stderr and "--force" in r.stderr
    assert (out / "notes.txt").read_text() == "mine"
    r = run_tfgen("generate", model("hello_world_int8"), "--board", "esp32", "-o", out, "--force")
    assert r.returncode == 0, r.stderr
    assert not (out / "notes.txt").exists() and (out / "platformio.ini").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]     # no temporary left over


@pytest.mark.parametrize("args, message", [
    (["--board", "esp33"], "unknown board"),
    (["--board", "esp32", "--vectors", "VECTORS_OF_ANOTHER_MODEL"], "test vectors of another model"),
])
def test_bad_generate_input_is_one_line(tmp_path, args, message):
    if "VECTORS_OF_ANOTHER_MODEL" in args:
        vec = tmp_path / "v.tfgv"
        assert run_tfgen("reference", model("ad01_int8"), "--vectors", 1, "-o", vec,
                         "--no-crosscheck").returncode == 0
        args = [str(vec) if a == "VECTORS_OF_ANOTHER_MODEL" else a for a in args]
    r = run_tfgen("generate", model("hello_world_int8"), *args, "-o", tmp_path / "p")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    line, = r.stderr.strip().splitlines()
    assert message in line.lower()
    assert not (tmp_path / "p").exists()


def test_float_model_is_refused(tmp_path):
    r = run_tfgen("generate", model("hello_world_float"), "--board", "esp32", "-o", tmp_path / "p")
    assert r.returncode == 2 and "tfgen quantize" in r.stderr


def test_non_esp_board_without_a_tflm_tree_says_how_to_get_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    env |= {"TFGEN_CACHE_DIR": str(tmp_path / "cache"), "TFGEN_TFLM_URL": (tmp_path / "none.tar.gz").as_uri()}
    r = subprocess.run([sys.executable, "-m", "codegen", "generate", str(model("hello_world_int8")),
                        "--board", "nucleo_f446re", "-o", str(tmp_path / "p")], capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 2
    assert "--tflm-dir" in r.stderr and ENV_VAR in r.stderr and not (tmp_path / "p").exists()


@pytest.mark.parametrize("compiler", ["g++", ARM_GXX])
def test_generated_model_array_is_exact_aligned_and_read_only(projects, tmp_path, compiler):
    needs.tools(compiler)
    out = projects("kws_ref_model", "esp32")
    [source] = (out / "src").glob("*_model_data.cc")
    obj = tmp_path / "m.o"
    flags = ["-O2"] if compiler == "g++" else [*ARM_FLAGS, "-ffunction-sections", "-fdata-sections"]
    subprocess.run([compiler, *flags, *WARNINGS, "-std=c++17", "-c", source, "-o", obj], check=True,
                   timeout=300)
    sym = _elf_symbols(obj, ("g_kws_ref_model_model_data",))["g_kws_ref_model_model_data"]
    assert sym["bytes"] == model("kws_ref_model").read_bytes()
    assert sym["value"] % 16 == 0 and sym["align"] >= 16 and sym["section"].startswith(".rodata")


def test_the_arena_can_be_sized_from_the_32_bit_figure(tmp_path):
    out = tmp_path / "p"
    r = run_tfgen("generate", model("kws_ref_model"), "--board", "esp32", "-o", out, "--arena-from", 22772)
    assert r.returncode == 0, r.stderr
    header = (out / "src" / "tfgen_model.h").read_text()
    assert "kArenaSize = 23904;" in header          # 22,772 + at most 5 %, a multiple of 16
    assert "--arena-from 22772" in header and "given with --arena-from" in header


@pytest.mark.parametrize("board", ["esp32", "esp32s3_psram"])
def test_esp_wiring_compiles_for_esp_idf(projects, board, tmp_path):
    """The ESP-IDF branch of tfgen_model.cc (the heap arena, PSRAM where the board has it) compiles
    against TFLM's headers with ESP-IDF's allocator declared by a stand-in header."""
    needs_tree("nucleo_f446re")
    out = projects("kws_ref_model", board)
    stubs = Path(__file__).parent / "firmware" / "stubs"
    includes = [f"-I{out / 'src'}", f"-I{stubs}"] + [
        f"-isystem{out / 'lib' / 'tflm' / d}" for d in (".", "third_party/flatbuffers/include",
                                                        "third_party/gemmlowp", "third_party/ruy")]
    if not (out / "lib" / "tflm").is_dir():                        # no tree given: use the tree's own
        root = needs.tflm().root
        includes += [f"-isystem{root / d}" for d in (".", "third_party/flatbuffers/include",
                                                     "third_party/gemmlowp", "third_party/ruy")]
    r = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-DESP_PLATFORM",
                        "-DTF_LITE_STATIC_MEMORY", *includes, str(out / "src" / "tfgen_model.cc")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def test_json_files_of_the_project_are_valid(projects):
    needs_tree("nucleo_f446re")
    out = projects("kws_ref_model", "nucleo_f446re")
    library = json.loads((out / "lib" / "tflm" / "library.json").read_text())
    assert library["name"] == "tflm" and library["version"] == "1.3.8"
    qemu_board = json.loads((out / "boards" / "tfgen_mps2_an386.json").read_text())
    assert qemu_board["build"]["cpu"] == "cortex-m4"
    assert qemu_board["upload"]["maximum_size"] == 4 * 1024 * 1024
