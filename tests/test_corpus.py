"""The corpus tier: every .tflite in ../shared/models/ (more may come) through inspect -> reference ->
generate (every built-in board) -> verify on the host and on mps2_an386 (QEMU's Cortex-M4F) with TFLM's
reference kernels and with CMSIS-NN, and for esp32 with the ESP-NN kernels the chip runs, on the host
(sanitized) and on QEMU; then `--runtime aot` on the host, with CMSIS-NN and with esp-nn; by the steps
of bench/corpus.py.

Every integer model verifies byte-exact against the oracle wherever it fits; a board that cannot
hold a model says so with the figure (it is recorded, not skipped). inspect's ops, the generated
resolver on every board and the ops the model's operators use are one list; the firmware checks
that list at start (a verify that passes has checked it). With TFGEN_CORPUS_OUT=DIR each model's row
is written to DIR/<model>.json, from which `bench/corpus.py --from DIR` writes bench/CORPUS.md.
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

import needs
from codegen.project import boards
from conftest import REPO, SHARED_MODELS

_spec = importlib.util.spec_from_file_location("corpus", REPO / "bench" / "corpus.py")
corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(corpus)

MODELS = corpus.models(SHARED_MODELS) if SHARED_MODELS.is_dir() else {}
# What tfgen refuses, and the word its one line must carry.
REFUSED = {"hello_world_float": "tfgen quantize"}
# The models --runtime aot covers today (every op, int8): they must stay covered, and byte-exact.
AOT_COVERED = {"ad01_int8", "hello_world_int8", "kws_ref_model", "mobilenet_v2_quantized_1x3x224x224", "person_detect",
               "simple_add_model"}

pytestmark = pytest.mark.slow


def _aot(key: str) -> bool:
    """A verify column of --runtime aot ("host/aot", "mps2_an386/cmsis-nn aot", "esp32/esp-nn aot on host")."""
    return "aot" in key.split("/", 1)[1].split()


def opcodes_used(path: Path) -> list[str]:
    """The ops the model's operators use, in order of first use, read from the flatbuffer here."""
    from codegen.model.inspection import schema
    fb = schema()
    m = fb.Model.GetRootAs(path.read_bytes(), 0)
    names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
    used: list[str] = []
    for s in range(m.SubgraphsLength()):
        g = m.Subgraphs(s)
        for o in range(g.OperatorsLength()):
            code = m.OperatorCodes(g.Operators(o).OpcodeIndex())
            builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
            name = code.CustomCode().decode() if names[builtin] == "CUSTOM" else names[builtin]
            if name not in used:
                used.append(name)
    return used


def test_the_corpus_is_there():
    if not MODELS:
        needs.lacking(f"needs the shared test models: {SHARED_MODELS} is missing (set TFGEN_SHARED_MODELS)")
    assert len(MODELS) >= 16 and set(REFUSED) <= set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_runs_end_to_end(name, tmp_path):
    needs.cortex_m()
    needs.cmsis_nn()
    needs.esp_nn()
    path = MODELS[name]
    row = corpus.run_model(name, path, tmp_path, list(boards.load_boards()))
    out = os.environ.get("TFGEN_CORPUS_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / f"{name}.json").write_text(json.dumps(row, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in row.items() if k != "generate"}, indent=1))
    if name in REFUSED:
        assert REFUSED[name] in row["refused"], row
        return
    assert "refused" not in row and "reference_error" not in row, row
    assert row["ops"] == opcodes_used(path)
    for board, g in row["generate"].items():
        if g.get("does_not_fit"):               # refused with the figure: the model alone exceeds its flash
            assert f"does not fit {board}'s flash" in g["error"] and "bytes over" in g["error"], g
            assert path.stat().st_size > boards.get_board(board).flash_bytes - 200_000, g
            continue
        assert g["ok"], f"{board}: {g}"
        assert g["resolver"] == row["methods"], board
    host = row["verify"]["host/reference"]
    assert host["ok"] and host["mismatched_bytes"] == 0 and host["bytes_compared"] > 0, host
    for key, v in row["verify"].items():
        if "refused" in v:                      # aot, for a model it does not cover: says what and why
            assert _aot(key) and name not in AOT_COVERED, f"{key}: {v}"
            assert "--runtime aot" in v["refused"] and ("does not cover" in v["refused"] or "int8" in v["refused"]
                                                        or "one graph" in v["refused"]), v
            continue
        if v.get("does_not_fit"):
            board = key.split("/")[0]
            assert board != "host" and f"does not fit {board}'s" in v["error"], v
            continue
        assert v["ok"], f"{key}: {v}"
        if v["arena_needed_on_target"]:         # CMSIS-NN's scratch: measured on the target, and said so
            assert key.endswith("/cmsis-nn") and f"--arena-from {v['arena_needed_on_target']}" in " ".join(v["notes"])
        assert v["mismatched_bytes"] == 0 and not v["firmware_errors"], f"{key}: {v}"
        assert 0 < v["arena_used_bytes"] <= v["arena_size"], f"{key}: {v}"
        if key.startswith("mps2_an386/") or key.endswith(" on qemu"):
            assert v["instructions_per_inference"] > 0 and v["flash_bytes"] > 0
            if not _aot(key):                   # aot's flash holds the weights, not the whole flatbuffer
                assert v["flash_bytes"] > path.stat().st_size
    if name in AOT_COVERED:                     # no interpreter: the arena is the static plan, and no bigger
        aot, tflm = row["verify"]["mps2_an386/cmsis-nn aot"], row["verify"]["mps2_an386/cmsis-nn"]
        assert aot["ok"] and aot["kernels"].startswith("cmsis-nn") and row["verify"]["host/aot"]["ok"], aot
        esp = row["verify"]["esp32/esp-nn aot on host"]
        if not (esp.get("does_not_fit") and row["generate"]["esp32"].get("does_not_fit")):
            assert esp["ok"] and esp["kernels"].startswith("esp-nn") and esp["sanitized"], esp
        if tflm.get("does_not_fit"):            # mobilenet_v2: the flatbuffer and TFLM do not fit, aot does
            assert aot["flash_bytes"] <= boards.get_board("mps2_an386").flash_bytes, aot
        else:
            assert aot["arena_used_bytes"] < tflm["arena_used_bytes"] and aot["flash_bytes"] < tflm["flash_bytes"], aot
            assert aot["instructions_per_inference"] <= tflm["instructions_per_inference"] * 1.01, aot
    cmsis = row["verify"]["mps2_an386/cmsis-nn"]
    if not cmsis.get("does_not_fit"):
        assert cmsis["kernels"].startswith("cmsis-nn")
    for on in ("host", "qemu"):                 # the kernels the ESP32 runs, where they can run here
        esp = row["verify"][f"esp32/esp-nn on {on}"]
        if not esp.get("does_not_fit"):
            assert esp["kernels"].startswith("esp-nn") and esp["ran_on"] == ("host" if on == "host" else "mps2_an386")
            assert esp["sanitized"] == (on == "host"), esp
            # a memory error or other undefined behaviour stops the run; a signed overflow is reported
            assert all("signed integer overflow" in f for f in esp["sanitizer_findings"]), esp
