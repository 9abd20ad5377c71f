"""Render, in-process and fast: a hand-built IR (helpers_render.make_ir) and a board -> the project's
files, checked against the expected-line specs in tests/render/ and against the plan they came from.

No .tflite, no TFLM interpreter, no compiler. ESP-IDF boards render without a TFLM tree (the ESP-IDF
project only); host and Arm boards need one, resolved as `tfgen` resolves it (needs.tflm(), which
skips where there is none): those tests only list the tree's files, they copy or compile nothing.
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


@dataclass(frozen=True)
class Case:
    board: str
    file: str                   # the rendered file the spec is about
    kind: str = "fc"            # helpers_render.make_ir's model
    tree: bool = False          # render with the TFLM tree (needs.tflm())


# tests/render/<name>.txt -> what it is checked against
CASES = {
    "esp32_platformio.ini": Case("esp32", "platformio.ini"),
    "esp32_tree_platformio.ini": Case("esp32", "platformio.ini", tree=True),
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

# (board, with a TFLM tree) -> the template groups its project is rendered from
GROUPS = {
    ("esp32", False): ("common", "espidf"),
    ("esp32s3_psram", False): ("common", "espidf"),
    ("esp32", True): ("common", "espidf", "tflm"),
    ("host", True): ("common", "tflm"),
    ("mps2_an386", True): ("common", "tflm", "qemu"),
    ("nucleo_f446re", True): ("common", "tflm", "qemu"),
    ("lm3s6965evb", True): ("common", "tflm", "qemu"),
}
PROJECTS = [pytest.param(b, t, id=f"{b}{'-tree' if t else ''}") for b, t in GROUPS]


@pytest.fixture(scope="module")
def board_dir(tmp_path_factory) -> Path:
    """Where the hand-written boards' TOML files are written (and loaded from)."""
    return tmp_path_factory.mktemp("boards")


def _tree(with_tree: bool):
    return needs.tflm() if with_tree else None


def spec_values(p: ProjectPlan) -> dict[str, object]:
    """What a spec's <<name>> placeholders stand for."""
    return {"arena_size": p.arena_size, "arena_measured": p.arena_measured, "sha256": p.model_sha256,
            "tfgen_version": __version__, "tflm_version": p.tflm_version}


# -- the specs ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", sorted(CASES))
def test_rendered_file_matches_its_spec(spec, board_dir):
    case = CASES[spec]
    p, files = h.render_files(h.board(case.board, board_dir), case.kind, _tree(case.tree))
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


def _firmware_files(with_qemu: bool) -> set[str]:
    base = resource_dir("firmware")
    rels = {p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file()} - {"README.md"}
    return {f"src/{r}" for r in rels if with_qemu or not r.startswith("qemu/")}


@pytest.mark.parametrize("vectors", [0, 3], ids=["no-vectors", "vectors"])
@pytest.mark.parametrize("board_name,with_tree", PROJECTS)
def test_paths_are_what_the_plan_says(board_name, with_tree, vectors, board_dir):
    p, files = h.render_files(h.board(board_name, board_dir), tree=_tree(with_tree), vector_count=vectors)
    assert p.template_groups == GROUPS[(board_name, with_tree)]

    # templates: exactly those of the plan's groups, none of another group's
    all_groups = [d.name for d in resource_dir("templates").iterdir() if d.is_dir()]
    from_templates = set().union(*(_template_outputs(g, p) for g in p.template_groups))
    others = set().union(*(_template_outputs(g, p) for g in all_groups if g not in p.template_groups))
    assert from_templates <= set(files), f"not rendered: {sorted(from_templates - set(files))}"
    assert not others & set(files) - from_templates, \
        f"rendered from groups the plan does not name: {sorted(others & set(files) - from_templates)}"

    # everything else: the model, the harness, the vectors, TFLM's files
    rest = set(files) - from_templates
    expected = {f"src/{p.names.header_file}", f"src/{p.names.source_file}", *_firmware_files(p.qemu is not None),
                *(("src/tfgen_vectors.h", "src/tfgen_vectors.cc") if vectors else ()),
                *(f"{plan_mod.TFLM_LIB}/{r}" for r in p.tflm_files),
                *(f"{plan_mod.TFLM_LIB}/{r}" for r, _ in p.cmsis_nn_files)}
    assert rest == expected, f"unexpected: {sorted(rest - expected)}; missing: {sorted(expected - rest)}"
    assert bool(p.tflm_files) == with_tree
    assert p.with_vectors == bool(vectors) and p.vector_count == vectors

    # the emulated board's PlatformIO board and linker script exist iff the plan has qemu
    boards_json = {f for f in files if f.startswith("boards/")}
    ld = {f for f in files if f.endswith(".ld")}
    if p.qemu:
        assert boards_json == {f"boards/tfgen_{p.qemu.board}.json"}
        assert ld == {f"src/qemu/{p.qemu.board}.ld"}
        assert p.qemu.board == ("mps2_an386" if board_name == "nucleo_f446re" else board_name)
        assert "qemu" in p.environment_names
    else:
        assert not boards_json and not ld and not any(f.startswith("src/qemu/") for f in files)
        assert "qemu" not in p.environment_names

    # TFLM's files are copied from the tree, not held in memory; nothing else is a Path
    copied = {rel: c for rel, c in files.items() if isinstance(c, Path)}
    assert set(copied) == {f for f in expected if f.startswith(f"{plan_mod.TFLM_LIB}/")}
    for rel, src in copied.items():
        assert src.is_file() and src.is_relative_to(p.tflm_root), f"{rel}: {src} is no file of {p.tflm_root}"
    assert all(isinstance(c, (str, bytes)) for rel, c in files.items() if rel not in copied)


@pytest.mark.parametrize("board_name,with_tree", PROJECTS)
def test_rendering_twice_gives_identical_bytes(board_name, with_tree, board_dir):
    b, tree = h.board(board_name, board_dir), _tree(with_tree)
    _, first = h.render_files(b, "conv_softmax", tree, vector_count=2)
    _, second = h.render_files(b, "conv_softmax", tree, vector_count=2)
    assert list(first) == list(second)
    differ = [rel for rel in first if first[rel] != second[rel] or type(first[rel]) is not type(second[rel])]
    assert not differ, f"rendered differently the second time: {differ}"


# -- tfgen.json --------------------------------------------------------------------------------------

@pytest.mark.parametrize("board_name,with_tree", PROJECTS)
def test_project_file_has_the_plans_decisions(board_name, with_tree, board_dir):
    p, _ = h.make_plan(h.board(board_name, board_dir), tree=_tree(with_tree), vector_count=1)
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
    assert data["environments"] == [{"name": "esp32", "role": "board"}]
    assert data["arena"]["size"] == p.arena_size == h.ARENA_SIZE and data["board"] == "esp32"
    assert made.report["environments"] == ["esp32"] and made.report["files"] == len(made.files)


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
