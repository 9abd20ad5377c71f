"""Render, in-process and fast: a hand-built IR (helpers_render.make_ir) and a board -> the project's
files, checked against the expected-line specs in tests/render/ and against the plan they came from.

No .tflite, no TFLM interpreter, no compiler. ESP-IDF boards render without a TFLM tree (the ESP-IDF
project only); host and Arm boards need one, resolved as `tfgen` resolves it (needs.tflm(), which
skips where there is none): those tests only list the tree's files, they copy or compile nothing.
An ESP board with a tree builds ESP-NN off the chip where the esp-nn sources are given (needs.esp_nn()).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

import helpers_render as h
import needs
from codegen import __version__
from codegen.project import generate, plan as plan_mod, render
from codegen.project.plan import ProjectPlan
from codegen.resources import resource_dir
from codegen.toolchain import esp_nn


@dataclass(frozen=True)
class Case:
    board: str
    file: str                   # the rendered file the spec is about
    kind: str = "fc"            # helpers_render.make_ir's model
    tree: bool = False          # render with the TFLM tree (needs.tflm())
    espnn: bool = False         # and with the esp-nn sources (needs.esp_nn())


# tests/render/<name>.txt -> what it is checked against
CASES = {
    "esp32_platformio.ini": Case("esp32", "platformio.ini"),
    "esp32_tree_platformio.ini": Case("esp32", "platformio.ini", tree=True),
    "esp32_tree_espnn_platformio.ini": Case("esp32", "platformio.ini", tree=True, espnn=True),
    "esp32s3_tree_espnn_platformio.ini": Case("esp32s3", "platformio.ini", tree=True, espnn=True),
    "esp32c3_tree_espnn_platformio.ini": Case("esp32c3", "platformio.ini", tree=True, espnn=True),
    "esp32_softmax_tfgen_model_cc": Case("esp32", "src/tfgen_model.cc", "softmax"),
    "mps2_an386_softmax_tfgen_model_cc": Case("mps2_an386", "src/tfgen_model.cc", "softmax", tree=True),
    "esp32_sdkconfig": Case("esp32", "sdkconfig.defaults"),
    "esp32_tfgen_model_h": Case("esp32", "src/tfgen_model.h"),
    "esp32_tfgen_model_cc": Case("esp32", "src/tfgen_model.cc"),
    "esp32_idf_component_yml": Case("esp32", "src/idf_component.yml"),
    "esp32s3_psram_platformio.ini": Case("esp32s3_psram", "platformio.ini"),
    "esp32s3_psram_sdkconfig": Case("esp32s3_psram", "sdkconfig.defaults"),
    "esp32s3_psram_conv_softmax_tfgen_model_h": Case("esp32s3_psram", "src/tfgen_model.h", "conv_softmax"),
    "esp32s3_psram_conv_softmax_tfgen_model_cc": Case("esp32s3_psram", "src/tfgen_model.cc", "conv_softmax"),
    "host_platformio.ini": Case("host", "platformio.ini", tree=True),
    "host_tfgen_model_h": Case("host", "src/tfgen_model.h", tree=True),
    "host_tfgen_model_cc": Case("host", "src/tfgen_model.cc", tree=True),
    "mps2_an386_platformio.ini": Case("mps2_an386", "platformio.ini", tree=True),
    "mps2_an386_ld": Case("mps2_an386", "src/qemu/mps2_an386.ld", tree=True),
    "mps2_an386_board_json": Case("mps2_an386", "boards/tfgen_mps2_an386.json", tree=True),
    "nucleo_f446re_platformio.ini": Case("nucleo_f446re", "platformio.ini", tree=True),
    "nucleo_f446re_ld": Case("nucleo_f446re", "src/qemu/mps2_an386.ld", tree=True),
    "lm3s6965evb_platformio.ini": Case("lm3s6965evb", "platformio.ini", tree=True),
    "lm3s6965evb_ld": Case("lm3s6965evb", "src/qemu/lm3s6965evb.ld", tree=True),
    "lm3s6965evb_board_json": Case("lm3s6965evb", "boards/tfgen_lm3s6965evb.json", tree=True),
}

# (board, with a TFLM tree, with esp-nn) -> the template groups its project is rendered from
GROUPS = {
    ("esp32", False, False): ("common", "espidf"),
    ("esp32s3_psram", False, False): ("common", "espidf"),
    ("esp32", True, False): ("common", "espidf", "tflm", "qemu"),
    ("esp32", True, True): ("common", "espidf", "tflm", "espnn", "qemu"),
    ("esp32c3", True, True): ("common", "espidf", "tflm", "espnn", "qemu"),
    ("host", True, False): ("common", "tflm"),
    ("mps2_an386", True, False): ("common", "tflm", "qemu"),
    ("nucleo_f446re", True, False): ("common", "tflm", "qemu"),
    ("lm3s6965evb", True, False): ("common", "tflm", "qemu"),
}
PROJECTS = [pytest.param(b, t, e, id=f"{b}{'-tree' if t else ''}{'-espnn' if e else ''}") for b, t, e in GROUPS]
ESPNN_DEFINES = ("-DESP_NN", "-DCONFIG_NN_OPTIMIZED")
ESPNN_INCLUDE_DIRS = ("lib/tflm/third_party/esp_nn/include", "lib/tflm/third_party/esp_nn/src/common",
                      "lib/tflm/tfgen_esp_shim")
KERNELS = "lib/tflm/tensorflow/lite/micro/kernels"
# esp-tflite-micro's CMakeLists.txt: the reference kernel files its esp_nn/ wrappers replace
ESPNN_WRAPPED = ("add.cc", "conv.cc", "depthwise_conv.cc", "fully_connected.cc", "mul.cc", "pooling.cc",
                 "softmax.cc")
REFERENCE_SOFTMAX = "tfgen::Register_SOFTMAX_REFERENCE()"


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory) -> Path:
    """Where the hand-written boards' TOML files are written (and loaded from)."""
    return tmp_path_factory.mktemp("boards")


def _tree(with_tree: bool):
    return needs.tflm() if with_tree else None


def _espnn(with_espnn: bool):
    return needs.esp_nn() if with_espnn else None


def spec_values(p: ProjectPlan) -> dict[str, object]:
    """What a spec's <<name>> placeholders stand for."""
    return {"arena_size": p.arena_size, "arena_measured": p.arena_measured, "sha256": p.model_sha256,
            "tfgen_version": __version__, "tflm_version": p.tflm_version}


# -- the specs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", sorted(CASES))
def test_rendered_file_matches_its_spec(spec, board_dir):
    case = CASES[spec]
    p, files = h.render_files(h.board(case.board, board_dir), case.kind, _tree(case.tree), espnn=_espnn(case.espnn))
    assert case.file in files, f"{case.file} was not rendered; the project has {sorted(files)}"
    h.expect_lines(h.text_of(files, case.file), h.RENDER_SPECS / f"{spec}.txt", spec_values(p),
                   what=f"{case.file} of {case.board}")


def test_every_spec_file_is_checked():
    on_disk = {p.name.removesuffix(".txt") for p in h.RENDER_SPECS.glob("*.txt")}
    assert on_disk == set(CASES), (f"specs without a case: {sorted(on_disk - set(CASES))}; "
                                   f"cases without a spec: {sorted(set(CASES) - on_disk)}")


def test_the_arena_is_the_measurement_plus_the_margin():
    p, files = h.render_files(h.board("esp32"))
    assert (p.arena_measured, p.arena_size) == (h.ARENA_MEASURED, h.ARENA_SIZE)
    assert f"inline constexpr std::size_t kArenaSize = {h.ARENA_SIZE};" in files["src/tfgen_model.h"].splitlines()


# -- the files are the plan's ------------------------------------------------------------------------

def _template_outputs(group: str, p: ProjectPlan) -> set[str]:
    """The files templates/<group>/ renders for this plan."""
    base = resource_dir("templates") / group
    board = p.qemu.board if p.qemu else p.board
    return {path.relative_to(base).as_posix().removesuffix(".j2").replace(render.BOARD_PLACEHOLDER, board)
            for path in base.rglob("*.j2")}


OPTIONAL_FIRMWARE = {"tfgen_softmax": ("tfgen_softmax.h", "tfgen_softmax.cc")}   # plan.firmware_extras


def _firmware_files(with_qemu: bool, extras: tuple[str, ...] = ()) -> set[str]:
    base = resource_dir("firmware")
    rels = {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()} - {"README.md"}
    optional = {f for name, fs in OPTIONAL_FIRMWARE.items() if name not in extras for f in fs}
    assert {f for fs in OPTIONAL_FIRMWARE.values() for f in fs} <= rels, "firmware/ lost an optional file"
    return {f"src/{r}" for r in rels - optional if with_qemu or not r.startswith("qemu/")}


@pytest.mark.parametrize("vectors", [0, 3], ids=["no-vectors", "vectors"])
@pytest.mark.parametrize("board_name,with_tree,with_espnn", PROJECTS)
def test_paths_are_what_the_plan_says(board_name, with_tree, with_espnn, vectors, board_dir):
    espnn = _espnn(with_espnn)
    p, files = h.render_files(h.board(board_name, board_dir), tree=_tree(with_tree), vector_count=vectors,
                              espnn=espnn)
    assert p.template_groups == GROUPS[(board_name, with_tree, with_espnn)]
    assert p.firmware_extras == ()          # the FC model has no SOFTMAX

    # templates: exactly those of the plan's groups, none of another group's
    all_groups = [d.name for d in resource_dir("templates").iterdir() if d.is_dir()]
    from_templates = set().union(*(_template_outputs(g, p) for g in p.template_groups))
    others = set().union(*(_template_outputs(g, p) for g in all_groups if g not in p.template_groups))
    assert from_templates <= set(files), f"not rendered: {sorted(from_templates - set(files))}"
    assert not others & set(files) - from_templates, \
        f"rendered from groups the plan does not name: {sorted(others & set(files) - from_templates)}"

    # everything else: the model, the harness, the vectors, TFLM's files
    rest = set(files) - from_templates
    expected = {f"src/{p.names.header_file}", f"src/{p.names.source_file}",
                *_firmware_files(p.qemu is not None, p.firmware_extras),
                *(("src/tfgen_vectors.h", "src/tfgen_vectors.cc") if vectors else ()),
                *(f"{plan_mod.TFLM_LIB}/{r}" for r in p.tflm_files),
                *(f"{plan_mod.TFLM_LIB}/{r}" for r, _ in p.library_files)}
    assert rest == expected, f"unexpected: {sorted(rest - expected)}; missing: {sorted(expected - rest)}"
    assert bool(p.tflm_files) == with_tree
    assert p.with_vectors == bool(vectors) and p.vector_count == vectors

    # the emulated board's PlatformIO board and linker script exist iff the plan has qemu
    boards_json = {f for f in files if f.startswith("boards/")}
    ld = {f for f in files if f.endswith(".ld")}
    if p.qemu:
        assert boards_json == {f"boards/tfgen_{p.qemu.board}.json"}
        assert ld == {f"src/qemu/{p.qemu.board}.ld"}
        # the board itself where QEMU emulates it, else the Cortex-M4F stand-in (Arm and ESP boards alike)
        assert p.qemu.board == (board_name if board_name in ("mps2_an386", "lm3s6965evb") else "mps2_an386")
        assert "qemu" in p.environment_names
    else:
        assert not boards_json and not ld and not any(f.startswith("src/qemu/") for f in files)
        assert "qemu" not in p.environment_names

    # every board but the host gets `qemu` when it carries TFLM's sources
    assert (p.qemu is not None) == (with_tree and board_name != "host")

    # TFLM's files (with the esp_nn wrappers) are copied from the tree and esp-nn's from its sources,
    # not held in memory; nothing else is a Path
    copied = {rel: c for rel, c in files.items() if isinstance(c, Path)}
    assert set(copied) == {f for f in expected if f.startswith(f"{plan_mod.TFLM_LIB}/")}
    esp_nn_dir = f"{plan_mod.TFLM_LIB}/{esp_nn.LIB_DEST}/"
    for rel, src in copied.items():
        root, prefix = (espnn.root, esp_nn_dir) if rel.startswith(esp_nn_dir) else \
            (Path(p.tflm_root), f"{plan_mod.TFLM_LIB}/")
        assert src.is_file() and src.is_relative_to(root), f"{rel}: {src} is no file of {root}"
        assert src.relative_to(root).as_posix() == rel.removeprefix(prefix), f"{rel} is a copy of {src}"
    assert all(isinstance(c, (str, bytes)) for rel, c in files.items() if rel not in copied)

    # ESP-NN's wrappers replace the reference kernels exactly where esp-nn is given
    assert (f"{KERNELS}/esp_nn/fully_connected.cc" in files) == with_espnn
    assert (f"{KERNELS}/fully_connected.cc" in files) == (with_tree and not with_espnn)
    assert any(f.startswith(esp_nn_dir) for f in files) == with_espnn


@pytest.mark.parametrize("board_name,with_tree,with_espnn", PROJECTS)
def test_rendering_twice_gives_identical_bytes(board_name, with_tree, with_espnn, board_dir):
    b, tree, espnn = h.board(board_name, board_dir), _tree(with_tree), _espnn(with_espnn)
    _, first = h.render_files(b, "conv_softmax", tree, vector_count=2, espnn=espnn)
    _, second = h.render_files(b, "conv_softmax", tree, vector_count=2, espnn=espnn)
    assert list(first) == list(second)
    differ = [rel for rel in first if first[rel] != second[rel] or type(first[rel]) is not type(second[rel])]
    assert not differ, f"rendered differently the second time: {differ}"


# -- ESP-NN off the chip ----------------------------------------------------------------------------

def test_esp32_with_esp_nn_carries_the_wrappers_not_the_reference_kernels():
    """What esp-tflite-micro's CMakeLists.txt does on the chip: its esp_nn/ wrappers instead of TFLM's
    reference files of the ops they wrap, esp-nn's headers and generic C, and tfgen's esp_timer.h."""
    p, files = h.render_files(h.board("esp32"), "conv_softmax", needs.tflm(), espnn=needs.esp_nn())
    assert (p.kernels, p.library_version) == ("esp-nn", "esp-nn 1.2.3")
    assert p.defines == ("-DESP_NN", "-DCONFIG_NN_OPTIMIZED", "-DCONFIG_IDF_TARGET_ESP32")
    assert p.include_dirs[-3:] == ESPNN_INCLUDE_DIRS and p.include_dirs[0] == "lib/tflm"
    for name in ("conv.cc", "softmax.cc"):
        assert f"{KERNELS}/esp_nn/{name}" in files
        assert f"{KERNELS}/{name}" not in files, f"the reference {name} is there beside its esp_nn wrapper"
    # the ops' common files stay (the wrappers and tfgen_softmax.cc use them); other ops' wrappers do not come
    assert {f"{KERNELS}/conv_common.cc", f"{KERNELS}/softmax_common.cc"} <= set(files)
    assert not {f"{KERNELS}/esp_nn/{n}" for n in ESPNN_WRAPPED if n not in ("conv.cc", "softmax.cc")} & set(files)
    lib = f"lib/tflm/{esp_nn.LIB_DEST}"
    assert {f"{lib}/LICENSE", f"{lib}/include/esp_nn.h", f"{lib}/src/common/common_functions.h",
            f"{lib}/src/convolution/esp_nn_conv_ansi.c", f"{lib}/src/convolution/esp_nn_conv_opt.c",
            f"{lib}/src/softmax/esp_nn_softmax_ansi.c", f"{lib}/src/softmax/esp_nn_softmax_opt.c"} <= set(files)
    assert {f"{lib}/{s}" for s in esp_nn.GENERIC_SOURCES} <= set(files)
    assert not [f for f in files if f.startswith(lib) and f.endswith((".S", ".s"))], "esp-nn's assembly came along"
    shim = h.text_of(files, "lib/tflm/tfgen_esp_shim/esp_timer.h")
    assert "static inline int64_t esp_timer_get_time(void) { return 0; }" in shim.splitlines()


def test_esp32_with_a_tree_but_no_esp_nn_builds_the_reference_kernels():
    p, files = h.render_files(h.board("esp32"), "conv_softmax", needs.tflm(), espnn=None)
    assert (p.kernels, p.library_version, p.defines, p.library_files) == ("reference", "", (), ())
    assert {f"{KERNELS}/conv.cc", f"{KERNELS}/softmax.cc"} <= set(files)
    assert not [f for f in files if "esp_nn" in f or "tfgen_esp_shim" in f]
    assert "espnn" not in p.template_groups and p.environment_names == ["esp32", "validate", "sim", "qemu"]


@pytest.mark.parametrize("board_name,chip_define", [
    ("esp32", ("-DCONFIG_IDF_TARGET_ESP32",)), ("esp32c3", ("-DCONFIG_IDF_TARGET_ESP32C3",)),
    ("esp32c6", ("-DCONFIG_IDF_TARGET_ESP32C6",)),
    ("esp32s3", ()), ("esp32s3_psram", ()),     # the S3's esp-nn is assembly: its generic C is built instead
])
def test_the_esp_nn_flags_are_in_sim_and_qemu_only(board_name, chip_define):
    p, _ = h.make_plan(h.board(board_name), tree=needs.tflm(), espnn=needs.esp_nn())
    wanted = (*ESPNN_DEFINES, *chip_define)
    by_name = {e.name: e for e in p.environments}
    assert list(by_name) == [board_name, "validate", "sim", "qemu"]
    for env in ("sim", "qemu"):
        flags = by_name[env].build_flags
        defines = tuple(f for f in flags if f.startswith(("-DESP_NN", "-DCONFIG_")))
        assert defines == wanted, f"[env:{env}]"
        assert tuple(f for f in flags if f.startswith("-I ")) == tuple(f"-I {d}" for d in p.include_dirs)
        assert not [f for f in flags if f.startswith("-DCMSIS_NN")]
    assert by_name[board_name].build_flags == ()      # the ESP-IDF build sets its own
    assert by_name["validate"].build_flags == ("-DTFGEN_VALIDATE", "-DTFGEN_PROFILE")   # and no ESP-NN define
    assert dict(by_name["validate"].options) == {"extends": f"env:{board_name}"}
    assert dict(by_name["qemu"].options)["platform"] == "ststm32@19.6.0"


def test_the_kernel_notes_say_what_the_s3_runs_in_assembly():
    notes = {name: h.make_plan(h.board(name), tree=needs.tflm(), espnn=needs.esp_nn())[0].kernel_notes
             for name in ("esp32", "esp32c3", "esp32s3")}
    assert notes == {"esp32": (), "esp32c3": (), "esp32s3": (
        "the ESP32-S3 runs esp-nn's assembly for FULLY_CONNECTED, which cannot run here: its generic C, the same "
        "functions, was built and verified instead",)}


def test_the_s3_assembly_note_leaves_out_the_softmax_the_project_replaced():
    p, _ = h.make_plan(h.board("esp32s3"), "conv_softmax", tree=needs.tflm(), espnn=needs.esp_nn())
    assert p.optimized_ops == ("CONV_2D",) and p.registrations == ("", REFERENCE_SOFTMAX)
    assert p.kernel_notes[0] == ("the ESP32-S3 runs esp-nn's assembly for CONV_2D, which cannot run here: its "
                                 "generic C, the same functions, was built and verified instead")


# (board, arena placement) -> its sdkconfig.defaults lines: the board's clock first
SDKCONFIG = {
    "esp32": ("CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240=y",),
    "esp32s3": ("CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240=y",),
    "esp32s3_psram": ("CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240=y",),
    "esp32c3": ("CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_160=y",),
    "esp32c6": ("CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_160=y",),
}


@pytest.mark.parametrize("board_name", sorted(SDKCONFIG))
def test_sdkconfig_lines(board_name):
    p, files = h.render_files(h.board(board_name))
    psram = ("CONFIG_SPIRAM=y", "CONFIG_SPIRAM_MODE_OCT=y", "CONFIG_SPIRAM_USE_CAPS_ALLOC=y")
    expected = (*SDKCONFIG[board_name], "CONFIG_ESP_MAIN_TASK_STACK_SIZE=8192", "CONFIG_COMPILER_OPTIMIZATION_PERF=y",
                "CONFIG_NN_OPTIMIZED=y", "# CONFIG_NN_SKIP_NUDGE is not set",
                *(psram if board_name == "esp32s3_psram" else ()))
    assert p.sdkconfig == expected
    lines = files["sdkconfig.defaults"].splitlines()
    start = lines.index(expected[0])
    assert lines[start:] == list(expected)


@pytest.mark.parametrize("board_name", ["host", "mps2_an386", "nucleo_f446re"])
def test_no_sdkconfig_off_esp_idf(board_name):
    p, files = h.render_files(h.board(board_name), tree=needs.tflm())
    assert p.sdkconfig == () and "sdkconfig.defaults" not in files


# -- SOFTMAX on ESP-NN -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,overruns", [
    ((1, 1, 1, 8), True),       # dims[1] 1 < 8
    ((1, 4, 8), True),          # 4 < 8
    ((8,), True),               # rank 1: no dims[1]
    ((1, 8), False),            # dims[1] is the last dimension
    ((1, 8, 1, 8), False),      # dims[1] 8 == 8
    ((1, 16, 8), False),        # 16 > 8
], ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v))
def test_an_esp_board_registers_the_reference_softmax_where_esp_nn_would_overrun(shape, overruns):
    ir = h.make_ir("softmax", softmax_shape=shape)
    p, files = h.render_files(h.board("esp32"), ir=ir)
    cc = files["src/tfgen_model.cc"].splitlines()
    assert p.ops == ("AddSoftmax",)
    if overruns:
        assert p.registrations == (REFERENCE_SOFTMAX,) and p.firmware_extras == ("tfgen_softmax",)
        assert {"src/tfgen_softmax.h", "src/tfgen_softmax.cc"} <= set(files)
        assert f"  if (resolver.AddSoftmax({REFERENCE_SOFTMAX}) != kTfLiteOk) return kTfLiteError;" in cc
        assert '#include "tfgen_softmax.h"  // see its comment: this model\'s SOFTMAX on ESP-NN' in cc
        assert '        "tfgen_softmax.cc"' in files["src/CMakeLists.txt"].splitlines()   # ESP-IDF compiles it
        assert len(p.kernel_notes) == 1
        assert p.kernel_notes[0].startswith(f"SOFTMAX op 0 (input {'x'.join(map(str, shape))}): esp-tflite-micro's "
                                            "ESP-NN softmax sizes its scratch buffer from the input's dims[1]")
    else:
        assert p.registrations == ("",) and p.firmware_extras == () and p.kernel_notes == ()
        assert not [f for f in files if "tfgen_softmax" in f]
        assert "  if (resolver.AddSoftmax() != kTfLiteOk) return kTfLiteError;" in cc
        assert not [line for line in cc if "tfgen_softmax" in line or REFERENCE_SOFTMAX in line]


def test_the_replaced_softmax_is_no_esp_nn_op_off_the_chip_either():
    ir = h.make_ir("softmax")
    p, files = h.render_files(h.board("esp32"), tree=needs.tflm(), espnn=needs.esp_nn(), ir=ir)
    assert p.registrations == (REFERENCE_SOFTMAX,) and p.firmware_extras == ("tfgen_softmax",)
    assert p.optimized_ops == ()
    assert {"src/tfgen_softmax.h", "src/tfgen_softmax.cc", f"{KERNELS}/softmax_common.cc"} <= set(files)
    data = json.loads(generate.project_file(p))
    assert data["optimized_ops"] == [] and data["kernels"] == "esp-nn"


@pytest.mark.parametrize("board_name", ["mps2_an386", "host"])
def test_other_boards_keep_tflm_s_softmax(board_name):
    ir = h.make_ir("softmax")
    p, files = h.render_files(h.board(board_name), tree=needs.tflm(), ir=ir)
    assert p.registrations == ("",) and p.firmware_extras == () and p.kernel_notes == ()
    assert not [f for f in files if "tfgen_softmax" in f]
    assert "  if (resolver.AddSoftmax() != kTfLiteOk) return kTfLiteError;" in files["src/tfgen_model.cc"].splitlines()


# -- tfgen.json --------------------------------------------------------------------------------------

@pytest.mark.parametrize("board_name,with_tree,with_espnn", PROJECTS)
def test_project_file_has_the_plans_decisions(board_name, with_tree, with_espnn, board_dir):
    p, _ = h.make_plan(h.board(board_name, board_dir), tree=_tree(with_tree), vector_count=1,
                       espnn=_espnn(with_espnn))
    text = generate.project_file(p)
    assert text.endswith("}\n") and text == generate.project_file(p)
    data = json.loads(text)
    assert data["format"] == generate.PROJECT_FORMAT and data["firmware_api"] == plan_mod.FIRMWARE_API == 1
    assert (data["board"], data["kind"], data["core"]) == (board_name, p.kind, p.core)
    assert data["arena"] == {"size": p.arena_size, "measured": h.ARENA_MEASURED, "source": p.arena_source,
                             "placement": p.arena_placement, "in_heap": p.kind == "espidf"}
    assert data["arena"]["size"] == h.ARENA_SIZE
    assert data["environments"] == [{"name": e.name, "role": e.role} for e in p.environments]
    assert [e["name"] for e in data["environments"]] == p.environment_names
    assert data["default_env"] == p.default_env in p.environment_names
    assert data["model"] == {"file": "tiny_fc.tflite", "sha256": p.model_sha256,
                             "bytes": len(h.model_bytes("tiny_fc.tflite"))}
    assert data["ops"] == ["FULLY_CONNECTED"] and data["vectors"] == 1
    assert data["regenerate"] == f"tfgen generate tiny_fc.tflite --board {board_name} -o project"
    # the kernels and what every file is compiled with
    assert "cmsis_nn" not in data
    assert data["build"] == {"defines": list(p.defines), "include_dirs": list(p.include_dirs)}
    # a project without TFLM's sources (ESP-IDF without a tree) has nothing of its own to include
    assert data["build"]["include_dirs"][:1] == (["lib/tflm"] if p.tflm_files else [])
    if with_espnn:
        chip = {"esp32": ["-DCONFIG_IDF_TARGET_ESP32"], "esp32c3": ["-DCONFIG_IDF_TARGET_ESP32C3"]}[board_name]
        assert (data["kernels"], data["kernel_library"]) == ("esp-nn", "esp-nn 1.2.3")
        assert data["optimized_ops"] == ["FULLY_CONNECTED"]
        assert data["build"]["defines"] == [*ESPNN_DEFINES, *chip]
        assert data["build"]["include_dirs"][-3:] == list(ESPNN_INCLUDE_DIRS)
    else:
        assert data["kernel_library"] is None and data["optimized_ops"] == [] and data["build"]["defines"] == []
        assert not set(ESPNN_INCLUDE_DIRS) & set(data["build"]["include_dirs"])
        assert data["kernels"] == ("esp-nn" if not with_tree and board_name.startswith("esp32") else "reference")


def _hide_tflm_tree(monkeypatch, tmp_path):
    """No --tflm-dir, no TFGEN_TFLM_DIR and an empty cache: what a machine without a tree has."""
    monkeypatch.delenv("TFGEN_TFLM_DIR", raising=False)
    monkeypatch.setenv("TFGEN_CACHE_DIR", str(tmp_path / "empty-cache"))


def test_generate_is_the_plan_rendered_plus_tfgen_json(monkeypatch, tmp_path):
    _hide_tflm_tree(monkeypatch, tmp_path)
    ir, b = h.make_ir("fc"), h.board("esp32")
    model = h.model_bytes(ir.source)
    made = generate.generate(ir, model, b, generate.Options(arena_measured=h.ARENA_MEASURED))
    p = made.plan
    assert p.tflm_files == () and p.template_groups == ("common", "espidf")
    assert made.files == {**render.render_project(p, model, None), generate.PROJECT_FILE: generate.project_file(p)}
    data = json.loads(made.files[generate.PROJECT_FILE])
    assert data["environments"] == [{"name": "esp32", "role": "board"}, {"name": "validate", "role": "validate"}]
    assert data["arena"]["size"] == p.arena_size == h.ARENA_SIZE and data["board"] == "esp32"
    assert made.report["environments"] == ["esp32", "validate"] and made.report["files"] == len(made.files)


def test_generate_for_esp32_builds_esp_nn_where_it_is_given(monkeypatch):
    tree, espnn = needs.tflm(), needs.esp_nn()
    monkeypatch.setenv("TFGEN_TFLM_DIR", str(tree.root))
    monkeypatch.setenv(esp_nn.ENV_VAR, str(espnn.root))
    ir, b = h.make_ir("fc"), h.board("esp32")
    made = generate.generate(ir, h.model_bytes(ir.source), b, generate.Options(arena_measured=h.ARENA_MEASURED))
    data = json.loads(made.files[generate.PROJECT_FILE])
    assert (data["kernels"], data["kernel_library"], data["optimized_ops"]) == ("esp-nn", "esp-nn 1.2.3",
                                                                              ["FULLY_CONNECTED"])
    assert [e["name"] for e in data["environments"]] == ["esp32", "validate", "sim", "qemu"]
    assert f"{KERNELS}/esp_nn/fully_connected.cc" in made.files and made.report["kernels"] == "esp-nn (esp-nn 1.2.3)"
    assert not [n for n in made.notes if "esp-nn" in n]


def test_generate_for_esp32_without_esp_nn_says_sim_runs_reference_kernels(monkeypatch, tmp_path):
    tree = needs.tflm()
    monkeypatch.setenv("TFGEN_TFLM_DIR", str(tree.root))
    monkeypatch.setenv(esp_nn.ENV_VAR, str(tmp_path / "no-esp-nn"))
    ir, b = h.make_ir("fc"), h.board("esp32")
    made = generate.generate(ir, h.model_bytes(ir.source), b, generate.Options(arena_measured=h.ARENA_MEASURED))
    assert made.plan.kernels == "reference" and made.plan.library_files == ()
    assert f"{KERNELS}/fully_connected.cc" in made.files and f"{KERNELS}/esp_nn/fully_connected.cc" not in made.files
    notes = [n for n in made.notes if n.startswith("esp-nn not available")]
    assert len(notes) == 1 and "use TFLM's reference kernels, not the ESP-NN kernels the chip runs" in notes[0]
    assert notes[0].endswith(f"set {esp_nn.ENV_VAR}")


def test_generate_for_host_uses_the_tree_and_lists_sim(monkeypatch):
    tree = needs.tflm()
    monkeypatch.setenv("TFGEN_TFLM_DIR", str(tree.root))
    ir, b = h.make_ir("conv_softmax"), h.board("host")
    made = generate.generate(ir, h.model_bytes(ir.source), b, generate.Options(arena_measured=h.ARENA_MEASURED))
    data = json.loads(made.files[generate.PROJECT_FILE])
    assert data["environments"] == [{"name": "sim", "role": "sim"}] and data["default_env"] == "sim"
    assert data["ops"] == ["CONV_2D", "SOFTMAX"] and data["tflm"] == tree.version
    assert "; Environments: `sim` runs the model on this computer." in made.files["platformio.ini"].splitlines()


# -- expect_lines itself -----------------------------------------------------------------------------

RENDERED = "[platformio]\ndefault_envs = esp32\n\n[env:esp32]\nplatform = espressif32   \nboard = esp32dev\n"


def _spec(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_expect_lines_passes_whole_lines_in_order_and_skips_comments(tmp_path):
    h.expect_lines(RENDERED, _spec(tmp_path, "# a comment\n\n[platformio]\n[env:<<name>>]\n"
                                             "platform = espressif32\n![env:sim]\n!\\# a comment\n"),
                   {"name": "esp32"})


@pytest.mark.parametrize("spec,message,context", [
    ("[env:esp32]\nboard = esp32devkit\n",
     "spec.txt:2: missing line 'board = esp32devkit' after line 4\n  closest line after that: 'board = esp32dev'",
     ">    4 | [env:esp32]\n     5 | platform = espressif32\n     6 | board = esp32dev"),
    ("[env:esp32]\n[platformio]\n",
     "spec.txt:2: missing line '[platformio]' after line 4 (it is only at line(s) [1], too early)",
     ">    4 | [env:esp32]"),
    ("default_envs = esp3\n", "spec.txt:1: missing line 'default_envs = esp3'\n",     # a prefix is no whole line
     "  the rendered text begins:\n     1 | [platformio]\n     2 | default_envs = esp32"),
    ("board\n", "spec.txt:1: missing line 'board'", "     1 | [platformio]"),
    ("![env:esp32]\n", "spec.txt:1: line '[env:esp32]' must not appear, yet it is line 4",
     "     3 | \n>    4 | [env:esp32]\n     5 | platform = espressif32"),
], ids=["missing", "out-of-order", "prefix", "part", "negation"])
def test_expect_lines_fails_saying_which_line_and_where(tmp_path, spec, message, context):
    with pytest.raises(AssertionError) as failure:
        h.expect_lines(RENDERED, _spec(tmp_path, spec))
    assert message in str(failure.value)
    assert context in str(failure.value)        # the rendered text around where the line was looked for


def test_expect_lines_reports_every_problem_at_once(tmp_path):
    with pytest.raises(AssertionError, match=r"\(3 problems\)"):
        h.expect_lines(RENDERED, _spec(tmp_path, "[env:sim]\nboard = x\n!board = esp32dev\n"))


def test_an_unknown_placeholder_is_an_error_in_the_spec(tmp_path):
    with pytest.raises(KeyError, match=r"spec.txt:1: placeholder <<arena>> has no value \(given: name\)"):
        h.expect_lines(RENDERED, _spec(tmp_path, "kArenaSize = <<arena>>\n"), {"name": "esp32"})
