"""What tfgen writes, and refuses to write: one line and exit 2 for every bad output path, --force
only over what tfgen made, and no project for a model the board cannot hold or that cannot compile."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import model, run_tfgen
from test_bad_input import fb_schema, rebuild


def _one_line(r, code: int = 2) -> str:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    line, = r.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def _mutated(tmp_path: Path, name: str, change) -> Path:
    fb = fb_schema()
    m = fb.ModelT.InitFromObj(fb.Model.GetRootAs(model("hello_world_int8").read_bytes(), 0))
    change(m)
    path = tmp_path / name
    path.write_bytes(rebuild(m))
    return path


@pytest.mark.parametrize("where", [".", ".."])
def test_force_refuses_the_current_directory_and_its_parents(tmp_path, where):
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine.txt").write_text("keep")
    r = run_tfgen("generate", model("hello_world_int8"), "--board", "esp32", "-o", where, "--force", cwd=work)
    assert "refusing to use" in _one_line(r)
    assert (work / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]           # no ..old.* left behind


def test_force_replaces_only_a_directory_tfgen_made(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    r = run_tfgen("generate", model("hello_world_int8"), "--board", "esp32", "-o", out, "--force")
    assert "not a project tfgen generated" in _one_line(r)
    assert (out / "thesis.tex").read_text() == "years of work"
    project = tmp_path / "p"
    for _ in range(2):                                  # its own project: replaced, as before
        r = run_tfgen("generate", model("hello_world_int8"), "--board", "esp32", "-o", project, "--force")
        assert r.returncode == 0, r.stderr
    assert (project / ".tfgen-project").is_file()


@pytest.mark.parametrize("command", ["generate", "reference"])
def test_an_unwritable_output_is_one_line(tmp_path, command):
    out = Path("/proc/tfgen-cannot-be-here/out")
    args = ["--board", "esp32", "-o", out] if command == "generate" else ["-o", out / "v.tfgv", "--vectors", 1]
    _one_line(run_tfgen(command, model("hello_world_int8"), *args))


def test_a_name_that_is_not_utf8_is_no_traceback(tmp_path):
    bad = Path(tmp_path / "x\udcff.tflite")
    bad.write_bytes(b"not a model")
    assert "x\\udcff.tflite" in _one_line(run_tfgen("inspect", bad))        # escaped, never a crash
    good = tmp_path / "y\udcfe.tflite"
    good.write_bytes(model("hello_world_int8").read_bytes())
    r = run_tfgen("generate", good, "--board", "esp32", "-o", tmp_path / "p\udcfd")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


def test_a_model_without_operators_is_refused_at_inspect(tmp_path):
    def drop(m):
        m.subgraphs[0].operators = []
        m.subgraphs[0].outputs = m.subgraphs[0].inputs
    path = _mutated(tmp_path, "empty.tflite", drop)
    assert "no operators" in _one_line(run_tfgen("inspect", path))
    assert "no operators" in _one_line(run_tfgen("generate", path, "--board", "host", "-o", tmp_path / "p"))
    assert not (tmp_path / "p").exists()


def test_a_tensor_too_large_for_any_target_is_refused_before_allocating(tmp_path):
    def grow(m):
        g = m.subgraphs[0]
        g.tensors[g.inputs[0]].shape = [65536, 65536]
    path = _mutated(tmp_path, "huge.tflite", grow)
    for command in (["inspect", path], ["reference", path, "-o", tmp_path / "v.tfgv"],
                    ["generate", path, "--board", "host", "-o", tmp_path / "p"]):
        line = _one_line(run_tfgen(*command))
        assert "4,294,967,296 bytes" in line, line


def test_too_many_vectors_are_refused_with_the_size(tmp_path):
    line = _one_line(run_tfgen("reference", model("ad01_int8"), "--vectors", 10_000_000, "-o", tmp_path / "v.tfgv"))
    assert "bytes of input" in line and "--vectors" in line


@pytest.mark.parametrize("value", ["0", "999999999999"])
def test_arena_from_is_validated(tmp_path, value):
    line = _one_line(run_tfgen("generate", model("hello_world_int8"), "--board", "esp32", "-o", tmp_path / "p",
                               "--arena-from", value))
    assert "--arena-from" in line and not (tmp_path / "p").exists()


def test_generate_refuses_a_model_larger_than_the_boards_flash(tmp_path):
    big = model("hello_world_int8").parent / "mobilenet_v2_quantized_1x3x224x224.tflite"
    if not big.is_file():
        pytest.skip(f"needs {big}")
    line = _one_line(run_tfgen("generate", big, "--board", "nano33ble", "-o", tmp_path / "p", "--arena-from",
                               1 << 20), code=1)
    assert "does not fit nano33ble's flash" in line and "bytes over" in line
    assert not (tmp_path / "p").exists()


def test_generate_warns_where_fits_estimate_says_it_does_not_fit(tmp_path):
    """An arena of 200,000 B is more than NUCLEO-F446RE's 128 KiB of RAM; the model itself fits its flash."""
    r = run_tfgen("generate", model("kws_ref_model"), "--board", "nucleo_f446re", "-o", tmp_path / "p", "--json",
                  "--arena-from", 200_000)
    assert r.returncode == 0, r.stderr
    import json
    notes = json.loads(r.stdout)["notes"]
    assert any("does not fit nucleo_f446re" in n and "RAM" in n for n in notes), notes
