"""fit: flash and RAM needed against each board, on the real models and the committed code-size table.

The verdicts asserted here follow from the numbers: ad01_int8 is 277 kB of weights, so it fits every
built-in board (the smallest, nucleo_f446re, has 512 KiB of flash) and is refused by a 256 KiB-flash
board; kws_ref_model needs ~25 KiB of arena and fits everywhere.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import model

from codegen import code_size, oracle
from codegen.boards import get_board, load_boards
from codegen.errors import TfgenError
from codegen.fit import (HARNESS_FLASH, STACK_BYTES, fit, fit_board, fit_to_dict,
                         format_fit_table)
from codegen.inspection import load_model_bytes, parse_model
from codegen.plan import ARENA_MARGIN_PERCENT, arena_with_margin
from codegen.tflm_tree import ENV_VAR
from codegen.tflm_ops import load_op_set

SIZES = code_size.load_table()
ARM_CORES = ("cortex-m4f", "cortex-m7", "cortex-m0plus")


@pytest.fixture(scope="module")
def measured():
    """name -> (ModelIR, measured host arena bytes), measured once per test module."""
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            data = load_model_bytes(model(name))
            ir = parse_model(data, name + ".tflite")
            cache[name] = (ir, oracle.measure_arena(ir, data).min_bytes)
        return cache[name]
    return get


def _row(rows, board):
    return next(r for r in rows if r.board == board)


# --- the arena margin ------------------------------------------------------------------------------

@pytest.mark.parametrize("measured_bytes, expected", [
    (0, 0), (1, 16), (16, 16), (100, 112), (4632, 4848), (22772, 23904), (24272, 25472),
    (1_000_000, 1_050_000),
])
def test_arena_margin_is_at_most_5_percent_in_multiples_of_16(measured_bytes, expected):
    assert ARENA_MARGIN_PERCENT == 5
    assert arena_with_margin(measured_bytes) == expected
    assert arena_with_margin(measured_bytes) % 16 == 0
    assert measured_bytes <= expected <= max(measured_bytes * 1.05, -(-measured_bytes // 16) * 16)


# --- real models on the built-in boards ------------------------------------------------------------

# model -> {board: fits}, for every built-in board
EXPECTED = {
    "ad01_int8": {b: True for b in load_boards()},
    "kws_ref_model": {b: True for b in load_boards()},
    "hello_world_int8": {b: True for b in load_boards()},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_models_on_builtin_boards(measured, name):
    ir, arena = measured(name)
    rows = fit(ir, arena, load_boards().values())
    got = {r.board: r.fits for r in rows}
    assert got == EXPECTED[name], format_fit_table(rows)
    for r in rows:
        assert r.flash_needed == sum(r.flash_parts.values())
        assert r.ram_needed == sum(r.ram_parts.values())
        assert r.flash_parts["model"] == ir.size_bytes
        assert r.method


def test_ad01_flash_is_the_model_plus_measured_code(measured):
    ir, arena = measured("ad01_int8")
    row = fit(ir, arena, [get_board("nucleo_f446re")])[0]
    m4 = SIZES["cores"]["cortex-m4f"]
    assert row.flash_needed == (276976 + m4["runtime_flash"] + m4["ops"]["FULLY_CONNECTED"]
                                + HARNESS_FLASH)            # one op: its increment, nothing shared
    assert row.ram_parts["arena"] == arena_with_margin(arena)
    assert row.ram_parts["stack"] == STACK_BYTES
    assert row.flash_needed > 276976 and row.fits


@pytest.mark.parametrize("flash_bytes, fits", [(256 * 1024, False), (300 * 1024, False),
                                               (384 * 1024, True)])
def test_ad01_is_refused_where_its_flash_cannot_fit(measured, flash_bytes, fits):
    ir, arena = measured("ad01_int8")
    small = dataclasses.replace(get_board("nucleo_f446re"), name="small_flash", flash_bytes=flash_bytes)
    row = fit_board(ir, arena, small, SIZES)
    assert row.fits is fits
    if not fits:
        assert row.verdict().startswith("flash needs")
        assert row.flash_headroom_percent < 0


def test_ram_refusal_names_ram(measured):
    ir, _ = measured("kws_ref_model")
    row = fit(ir, 200 * 1024, [get_board("nucleo_f446re")])[0]     # 128 KiB of RAM
    assert not row.fits
    assert row.verdict().startswith("RAM needs")


# --- PSRAM placement -------------------------------------------------------------------------------

def test_psram_arena_counts_against_psram(measured):
    ir, _ = measured("kws_ref_model")
    arena = 1024 * 1024                                            # more than any internal RAM
    internal, psram = fit(ir, arena, [get_board("esp32s3"), get_board("esp32s3_psram")])
    assert not internal.fits and internal.ram_parts["arena"] == arena_with_margin(arena)
    assert psram.fits
    assert "arena" not in psram.ram_parts
    assert psram.psram_needed == arena_with_margin(arena)
    assert psram.psram_limit == 8 * 1024 * 1024
    assert psram.ram_needed == internal.ram_needed - arena_with_margin(arena)
    assert "PSRAM" in psram.method


def test_psram_overflow_is_refused(measured):
    ir, _ = measured("kws_ref_model")
    row = fit(ir, 9 * 1024 * 1024, [get_board("esp32s3_psram")])[0]
    assert not row.fits and row.verdict().startswith("PSRAM needs")


# --- cores: measured, estimated, not applicable -----------------------------------------------------

def test_host_has_no_code_size(measured):
    ir, arena = measured("kws_ref_model")
    row = fit(ir, arena, [get_board("host")])[0]
    assert row.flash_parts == {"model": ir.size_bytes}
    assert "not applicable" in row.method


def test_xtensa_is_estimated_and_counts_esp_idf(measured):
    ir, arena = measured("kws_ref_model")
    row = fit(ir, arena, [get_board("esp32")])[0]
    xt = SIZES["cores"]["xtensa"]
    assert xt["estimated_from"] == "cortex-m4f"
    assert row.flash_parts["runtime"] == xt["runtime_flash"]
    assert row.flash_parts["framework"] > 0
    assert "estimated" in row.method


def test_unmeasured_cortex_m_core_takes_the_largest_measured_figure(measured):
    ir, arena = measured("kws_ref_model")
    m33 = dataclasses.replace(get_board("nucleo_f446re"), name="m33", core="cortex-m33")
    row = fit_board(ir, arena, m33, SIZES)
    assert row.flash_parts["runtime"] == max(SIZES["cores"][c]["runtime_flash"] for c in ARM_CORES)
    assert "not measured for cortex-m33" in row.method


def test_op_without_code_size_is_an_error(measured):
    ir, arena = measured("kws_ref_model")
    sizes = json.loads(json.dumps(SIZES))
    del sizes["cores"]["cortex-m4f"]["ops"]["SOFTMAX"]
    with pytest.raises(TfgenError, match="SOFTMAX"):
        fit(ir, arena, [get_board("nucleo_f446re")], sizes)


# --- output ----------------------------------------------------------------------------------------

def test_table_and_dict(measured):
    ir, arena = measured("ad01_int8")
    small = dataclasses.replace(get_board("nucleo_f446re"), name="small_flash", flash_bytes=256 * 1024)
    rows = fit(ir, arena, [*load_boards().values(), small])
    text = format_fit_table(rows)
    for r in rows:
        assert r.board in text
    assert "NO" in text and "[1]" in text
    data = json.loads(json.dumps(fit_to_dict(rows)))
    assert [b["board"] for b in data["boards"]] == [r.board for r in rows]
    assert data["boards"][-1]["fits"] is False
    assert data["arena_margin_percent"] == 5


# --- the code-size table ---------------------------------------------------------------------------

@pytest.mark.parametrize("core", ARM_CORES + ("xtensa",))
def test_code_size_table_covers_every_builtin_op(core):
    entry = SIZES["cores"][core]
    missing = sorted(set(load_op_set().builtins) - set(entry["ops"]))
    assert not missing, f"{core}: no code size for {missing}"
    assert entry["runtime_flash"] > 0 and entry["runtime_ram"] > 0
    assert all(n > 0 for n in entry["ops"].values()), {op: n for op, n in entry["ops"].items() if n <= 0}


def test_code_size_table_says_how_it_was_made():
    assert SIZES["tflm"] == "esp-tflite-micro 1.3.8"
    assert SIZES["compiler"].startswith("arm-none-eabi-g++")
    assert SIZES["cores"]["xtensa"]["estimated_from"] == "cortex-m4f"
    assert "not_applicable" in SIZES["cores"]["host"]



@pytest.mark.parametrize("core", ARM_CORES)
@pytest.mark.parametrize("combination", ["kws", "all"])
def test_shared_helpers_counted_once_stay_an_upper_bound(core, combination):
    """Linked together, ops need less than the sum of their increments; ops_flash, which counts shared
    helpers once, lies between the real size and that sum, and within 25 % of the real size."""
    entry = SIZES["cores"][core]
    check = entry["combination"][combination]
    ops = list(code_size.KWS_OPS) if combination == "kws" else sorted(entry["ops"])
    assert code_size.ops_flash(entry, ops) == check["estimate"]
    assert check["measured"] <= check["estimate"] <= check["sum_of_increments"]
    assert check["estimate"] <= 1.25 * check["measured"]


@pytest.mark.parametrize("op", ["FULLY_CONNECTED", "CONV_2D", "RESHAPE"])
def test_one_op_costs_its_increment(op):
    entry = SIZES["cores"]["cortex-m4f"]
    assert code_size.ops_flash(entry, [op]) == entry["ops"][op]
    assert code_size.ops_flash(entry, [op, op]) == entry["ops"][op]


# --- the link test, on a TFLM tree ----------------------------------------------------------------

def needs_cortex_m():
    if not os.environ.get(ENV_VAR):
        pytest.skip(f"needs a TFLM tree: set {ENV_VAR} to an esp-tflite-micro v1.3.8 checkout")
    if shutil.which(code_size.CXX) is None:
        pytest.skip(f"needs {code_size.CXX} (Debian package gcc-arm-none-eabi)")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ad01_int8", "kws_ref_model", "hello_world_int8"])
def test_estimate_bounds_a_real_cortex_m4f_build(measured, tmp_path, name):
    """`tfgen build --board mps2_an386` links the real firmware: fit's flash is at or above it and
    within 10 %; its static RAM (no stack) is at or above the image's."""
    needs_cortex_m()
    from conftest import run_tfgen
    # fit's table measures TFLM's reference kernels (CMSIS-NN's sizes are not in it yet)
    r = run_tfgen("build", model(name), "--board", "mps2_an386", "-o", tmp_path / "p", "--json",
                  "--kernels", "reference")
    assert r.returncode == 0, r.stderr
    real = {m["region"]: m["used"] for m in json.loads(r.stdout)["memory"]}
    ir, arena = measured(name)
    row = fit(ir, arena, [get_board("mps2_an386")])[0]
    print(f"{name}: flash real {real['flash']:,} estimated {row.flash_needed:,}; "
          f"RAM real {real['RAM']:,} estimated {row.ram_needed - STACK_BYTES:,} + stack")
    assert real["flash"] <= row.flash_needed <= 1.10 * real["flash"]
    assert real["RAM"] <= row.ram_needed - STACK_BYTES



def test_kws_ops_link_from_the_selected_kernels_and_match_the_table(tmp_path):
    """Compile the core and the kws ops' selected kernels for Cortex-M4F, link the kws program: the
    selection is complete, and with the same compiler the size is the committed one."""
    needs_cortex_m()
    from codegen.tflm_tree import kernel_sources, open_tree
    tree = open_tree(Path(os.environ["TFGEN_TFLM_DIR"]))
    kernels = kernel_sources(tree, list(code_size.KWS_OPS))
    objects, failed = code_size.compile_tree(tree, "cortex-m4f", tmp_path / "obj", 2, kernels)
    assert not failed
    methods = [load_op_set().method_for(op) for op in code_size.KWS_OPS]
    sizes = code_size.link_program(tree, "cortex-m4f", objects, kernels, methods, len(methods),
                                   tmp_path, "kws")
    base = code_size.link_program(tree, "cortex-m4f", objects, [], [], 1, tmp_path, "baseline")
    check = SIZES["cores"]["cortex-m4f"]["combination"]["kws"]
    if code_size.compiler_version() == SIZES["compiler"]:
        assert base.flash == SIZES["cores"]["cortex-m4f"]["runtime_flash"]
        assert sizes.flash - base.flash == check["measured"]
    assert sizes.flash - base.flash <= check["estimate"]
