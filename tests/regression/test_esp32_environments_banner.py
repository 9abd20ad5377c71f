"""An ESP32 project generated without a TFLM tree listed its environments with a dangling comma.

What broke: platformio.ini's environments banner was put together in the template from three
conditionals, and the board's part always ended in ", " on the assumption that `sim` would follow.
How it showed: `tfgen generate MODEL --board esp32` on a machine with no TFLM tree (no --tflm-dir, no
TFGEN_TFLM_DIR, nothing cached: ESP32 projects take TFLM from the ESP-IDF component, so none is
needed) wrote

    ; Environments: `esp32` builds for the board, .

Fixed in 465e0dd ("One generate() for the CLI, build, verify and bench; the plan decides
environments, ..."): the plan decides the environments once (codegen/project/environments.py) and the
template joins their list with ", ", so the line reads "; Environments: `esp32` builds for the board."
"""
from __future__ import annotations

import pytest

import helpers_render as h
from codegen.project import boards, generate, plan as plan_mod

ESP_IDF_BOARDS = [name for name, b in boards.load_boards().items() if plan_mod.template_kind(b) == "espidf"]


def _environments_lines(platformio_ini: str) -> list[str]:
    return [line for line in platformio_ini.splitlines() if line.startswith("; Environments:")]


def test_there_are_esp_idf_boards_to_check():
    assert {"esp32", "esp32s3", "esp32s3_psram"} <= set(ESP_IDF_BOARDS)


@pytest.mark.parametrize("board_name", ESP_IDF_BOARDS)
def test_the_banner_of_an_esp32_project_without_a_tree_ends_cleanly(board_name):
    p, files = h.render_files(h.board(board_name), tree=None)
    assert p.environment_names == [board_name, "validate"]
    ini = files["platformio.ini"]
    assert _environments_lines(ini) == [f"; Environments: `{board_name}` builds for the board, `validate` is the "
                                        "validation firmware `tfgen verify --port` talks to."]
    assert not [line for line in ini.splitlines() if line.rstrip().endswith((", .", ",.", ","))]


def test_tfgen_generate_on_a_machine_without_a_tree(monkeypatch, tmp_path):
    """The way users met it: generate() with no --tflm-dir, no TFGEN_TFLM_DIR and an empty cache."""
    monkeypatch.delenv("TFGEN_TFLM_DIR", raising=False)
    monkeypatch.setenv("TFGEN_CACHE_DIR", str(tmp_path / "empty-cache"))
    ir = h.make_ir("fc")
    made = generate.generate(ir, h.model_bytes(ir.source), h.board("esp32"),
                             generate.Options(arena_measured=h.ARENA_MEASURED))
    assert made.plan.tflm_files == ()
    assert _environments_lines(made.files["platformio.ini"]) == [
        "; Environments: `esp32` builds for the board, `validate` is the validation firmware `tfgen verify --port` "
        "talks to."]
