"""`tfgen profile`: per-op instruction counts on QEMU's Cortex-M4F (-icount, deterministic), for each
kernel set, from the verified firmware rebuilt with TFLM's profiler hooks."""
from __future__ import annotations

import json

import needs
from conftest import model, run_tfgen


def _profile(*args, timeout=1800):
    r = run_tfgen("profile", *args, "--json", timeout=timeout)
    assert r.returncode == 0, r.stderr + r.stdout
    return json.loads(r.stdout)


def test_kws_layers_in_order_of_cost_for_reference_and_cmsis_nn():
    needs.cortex_m()
    needs.cmsis_nn()
    report = _profile(model("kws_ref_model"), "--board", "mps2_an386", "--vectors", 2)
    ref, cmsis = report["profiles"]
    assert ref["kernels"] == "reference" and cmsis["kernels"].startswith("cmsis-nn")
    for p in (ref, cmsis):
        assert p["unit"].startswith("instructions") and p["ran_on"] == "mps2_an386" and p["vectors"] == 2
        ops = p["ops"]
        assert [o["index"] for o in ops] == list(range(13)) and ops[0]["op"] == "CONV_2D"
        # the ops add up to the whole Invoke within 2 % (the interpreter's own loop is the rest)
        assert abs(p["ops_total"] - p["instructions_per_inference"]) <= 0.02 * p["instructions_per_inference"]
        costs = [ops[i]["instructions"] for i in p["by_cost"]]
        assert costs == sorted(costs, reverse=True) and costs[0] > 0
        assert {ops[i]["op"] for i in p["by_cost"][:4]} == {"CONV_2D"}      # kws is its convolutions
        assert ops[10]["op"] == "RESHAPE" and ops[10]["instructions"] < 1000
    # CMSIS-NN makes every conv far cheaper; the totals are those verify measures (9.2 M and 259 M)
    assert 8_000_000 < cmsis["instructions_per_inference"] < 10_500_000 < 250_000_000 < ref["instructions_per_inference"]
    assert all(c["instructions"] < r["instructions"] for r, c in zip(ref["ops"], cmsis["ops"]) if r["op"] == "CONV_2D")
    assert "CONV_2D" in cmsis["optimized_ops"] and "RESHAPE" not in cmsis["optimized_ops"]


def test_the_text_says_instructions_not_time():
    needs.cortex_m()
    r = run_tfgen("profile", model("hello_world_int8"), "--kernels", "reference", "--vectors", 2, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "instructions per inference (QEMU -icount" in r.stdout and "Instructions, not time" in r.stdout
    assert "FULLY_CONNECTED" in r.stdout and " ms" not in r.stdout


def test_an_esp32_model_profiles_its_esp_nn_kernels_on_the_cortex_m4f():
    needs.cortex_m()
    needs.esp_nn()
    report = _profile(model("hello_world_int8"), "--board", "esp32", "--vectors", 2)
    kernels = [p["kernels"].split(" ")[0] for p in report["profiles"]]
    assert kernels == ["reference", "esp-nn"]
    assert all(p["board"] == "esp32" and p["ran_on"] == "mps2_an386" for p in report["profiles"])


def test_profile_needs_an_emulated_board():
    r = run_tfgen("profile", model("hello_world_int8"), "--board", "host")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "profile counts instructions on an emulated Cortex-M" in r.stderr
