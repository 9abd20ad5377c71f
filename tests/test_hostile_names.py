"""A model file name and an -o name crafted to inject code or build configuration are rendered for
each language of the project (codegen/project/escape.py): every file parses (the compiler builds and runs the
firmware, PlatformIO's own reader, json.loads, compote) with the same sections, keys and lines as for
a plain name, and nothing of the name becomes a line of its own."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import needs
from codegen.toolchain import builder
from codegen.run import replay
from codegen.model import vectors
from conftest import model, run_tfgen

# A newline-separated payload for every language: a C #error, an INI section with a PlatformIO
# pre-script, a YAML key, an HTML comment end, Markdown/HTML breakers (a file name has no "*/"), a bidi override, a byte that
# is not UTF-8 (surrogate-escaped), a trailing backslash.
HOSTILE = ("x\n#error FROM_FILENAME\n[env]\nextra_scripts = pre:evil.py\ndependencies: {evil: '*'}\n"
           "--> `|` [a](javascript:b) <img src=x> \u202e \udcff \\")
TEXT_FILES = ("platformio.ini", "README.md", "src/tfgen_model.h", "src/tfgen_model.cc", "lib/tflm/library.json",
              "src/idf_component.yml", "src/CMakeLists.txt", "CMakeLists.txt", "sdkconfig.defaults")


def _generate(tmp_path: Path, name: str, board: str, vectors_file: Path | None = None) -> Path:
    src = tmp_path / f"{name}.tflite"
    shutil.copy(model("hello_world_int8"), src)
    out = tmp_path / f"out {name}"
    extra = ["--vectors", vectors_file] if vectors_file else []
    r = run_tfgen("generate", src, "--board", board, "-o", out, *extra)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return out


def _pio_sections(project: Path) -> dict:
    pio = Path(sys.executable).parent / "pio"
    r = subprocess.run([pio, "project", "config", "--json-output"], cwd=project, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No"})
    assert r.returncode == 0, r.stderr[-2000:]
    return {section: sorted(k for k, _ in items) for section, items in json.loads(r.stdout)}


@pytest.mark.parametrize("board", ["host", "esp32", "nucleo_f446re"])
def test_hostile_names_change_no_section_key_or_line(tmp_path, board):
    needs.tflm()
    plain, hostile = _generate(tmp_path, "plain", board), _generate(tmp_path, HOSTILE, board)
    assert _pio_sections(hostile) == _pio_sections(plain)
    for rel in TEXT_FILES:
        if not (plain / rel).is_file():
            continue
        text = (hostile / rel).read_text(encoding="utf-8")          # it encodes as UTF-8, too
        assert len(text.splitlines()) == len((plain / rel).read_text(encoding="utf-8").splitlines()), rel
        for line in text.splitlines():
            assert not line.lstrip().startswith(("#error", "[env]", "extra_scripts = pre:evil", "dependencies: {evil")), \
                (rel, line)
        assert "\u202e" not in text, rel
        if rel == "README.md":          # the banner comment is line 1; no raw HTML outside code spans
            first, *rest = text.splitlines()
            assert first.startswith("<!--") and first.endswith("-->") and first.count("-->") == 1
            assert "<img" not in re.sub(r"(`+).*?\1", "", "\n".join(rest))
    if (plain / "lib/tflm/library.json").is_file():
        assert json.loads((hostile / "lib/tflm/library.json").read_text()).keys() == \
            json.loads((plain / "lib/tflm/library.json").read_text()).keys()
    if board == "esp32":
        compote = Path(sys.executable).parent / "compote"
        r = subprocess.run([compote, "manifest", "lint"], cwd=hostile / "src", capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        yaml = pytest.importorskip("yaml", reason="PyYAML comes with idf-component-manager (the test extra)")
        manifests = [yaml.safe_load((p / "src" / "idf_component.yml").read_text()) for p in (hostile, plain)]
        assert manifests[0].keys() == manifests[1].keys()
        assert manifests[0]["dependencies"] == manifests[1]["dependencies"]


def test_a_project_with_hostile_names_builds_and_replays_on_the_host(tmp_path):
    """The compiler takes every C/C++ file as it is (warnings as errors), and the firmware computes."""
    needs.tflm()
    needs.tools("g++")
    src = tmp_path / f"{HOSTILE}.tflite"
    shutil.copy(model("hello_world_int8"), src)
    tfgv = tmp_path / "v.tfgv"
    r = run_tfgen("reference", src, "--vectors", 5, "-o", tfgv, "--no-crosscheck")
    assert r.returncode == 0, r.stderr
    project = _generate(tmp_path, HOSTILE, "host", tfgv)
    built = builder.build(project)
    run = builder.run_program(built.executable)
    log = replay.parse(run.stdout)
    assert (run.returncode, log.result, log.errors) == (0, "pass", ()), run.stdout + run.stderr
    assert replay.compare(vectors.read(tfgv), log).ok
