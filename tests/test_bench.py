"""Smoke test of bench/run.py on the smallest model: it runs, and its figures hang together (the
CMSIS-NN column too, when TFGEN_CMSIS_NN_DIR gives a setup)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import needs
from conftest import REPO

pytestmark = pytest.mark.slow


def test_bench_runs_on_hello_world(tmp_path):
    needs.cortex_m()
    have_cmsis = needs.cmsis_nn_if_any() is not None
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--models", "hello_world_int8",
                        "--no-tool-speed", "--json", str(out), "--work", str(tmp_path / "work")],
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "hello_world_int8 tfgen" in r.stdout and "ratio" in r.stdout
    [row] = json.loads(out.read_text())["models"]
    t, b = row["tfgen"], row["baseline"]
    assert t["byte_exact"] and b["byte_exact"]
    assert t["instructions"] == b["instructions"] > 0            # the same kernels, the same work
    assert t["flash"] < b["flash"] and t["ram"] < b["ram"]       # fewer kernels, const model, small arena
    assert t["arena_used"] <= t["arena_constant"] <= t["arena_used"] * 1.05 + 16
    assert b["arena_constant"] == 10 * row["model_bytes"]
    assert row["peak_activations"] > 0 and t["code_bytes"] == t["flash"] - row["model_bytes"]
    c = row["cmsis_nn"]
    if have_cmsis:
        assert "hello_world_int8 cmsis-nn" in r.stdout and c["byte_exact"]
        assert c["optimized_ops"] == ["FULLY_CONNECTED"] and 0 < c["instructions"] < t["instructions"]
        assert c["arena_used"] <= c["arena_constant"] <= c["arena_used"] * 1.05 + 16
        assert row["ratios"]["instructions_cmsis_nn_over_tfgen"] == round(c["instructions"] / t["instructions"], 4)
    elif c is None:
        assert "cmsis-nn   n/a (no CMSIS-NN setup)" in r.stdout
    a = row["aot"]                                              # the same kernels, no interpreter
    same = c or t
    assert "hello_world_int8 aot" in r.stdout and a["byte_exact"]
    assert a["flash"] < same["flash"] and a["ram"] < same["ram"] and a["instructions"] <= same["instructions"]
    assert a["arena_used"] == a["arena_constant"] == row["peak_activations"] == 32
    assert row["ratios"]["flash_aot_over_tflm"] == round(a["flash"] / same["flash"], 3)
