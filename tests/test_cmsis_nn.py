"""CMSIS-NN on Cortex-M boards: TFLM's cmsis_nn wrappers replace the reference kernels of the ops that
have one, only the CMSIS-NN sources they reach are copied, and the firmware stays byte-exact with the
oracle in QEMU (mps2-an386) while costing a fraction of the reference kernels' instructions."""
from __future__ import annotations

import json

import pytest

import needs
from codegen.toolchain import cmsis_nn, tflm_tree
from codegen.errors import TfgenError
from conftest import model, run_tfgen
from test_cmsis_nn_fetch import cache  # noqa: F401  (empty cache, no setup, archives unreachable)
from tools import cmsis_nn_table

needs_setup = pytest.mark.usefixtures("tree_and_cmsis_nn")
KWS_OPS = ["CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]


@pytest.fixture
def tree_and_cmsis_nn():
    """A TFLM tree and a CMSIS-NN setup, found as tfgen finds them."""
    return needs.tflm(), needs.cmsis_nn()


def needs_qemu():
    needs.cortex_m()


def test_without_a_setup_the_error_names_the_ways_out(cache, tmp_path):
    with pytest.raises(TfgenError) as e:
        cmsis_nn.choose("cmsis-nn", None, "cmsis-nn")
    assert "--cmsis-nn-dir" in e.value.hint and cmsis_nn.ENV_VAR in e.value.hint
    assert "--kernels reference" in e.value.hint
    with pytest.raises(TfgenError, match="not a CMSIS-NN setup"):
        cmsis_nn.open_dir(tmp_path)


def test_the_board_default_falls_back_to_reference_with_a_note(cache):
    found, note = cmsis_nn.choose("cmsis-nn", None, None)
    assert found is None and "reference kernels" in note
    assert cmsis_nn.choose("cmsis-nn", None, "reference") == (None, None)
    assert cmsis_nn.choose("esp-nn", None, None) == (None, None)
    with pytest.raises(TfgenError, match="kernels are esp-nn"):
        cmsis_nn.choose("esp-nn", None, "cmsis-nn")


def test_the_committed_table_covers_every_wrapper_without_float_sources():
    table = cmsis_nn.load_table()
    assert {"conv.cc", "depthwise_conv.cc", "fully_connected.cc", "pooling.cc", "softmax.cc"} <= set(table)
    for files in table.values():
        assert files and all(f.startswith("Source/") and not f.endswith(("_f32.c", "_f16.c")) for f in files)


@needs_setup
def test_wrappers_replace_the_reference_kernels_and_keep_the_helpers():
    tree = tflm_tree.resolve(download=False)
    c = cmsis_nn.resolve()
    sel = c.select(tree.sources_for_ops(KWS_OPS))
    k = tflm_tree.KERNELS_DIR
    assert set(sel.wrappers) == {"conv.cc", "depthwise_conv.cc", "fully_connected.cc", "pooling.cc", "softmax.cc"}
    assert f"{k}/conv.cc" not in sel.kernel_files and f"{k}/conv_common.cc" in sel.kernel_files
    assert f"{k}/reshape.cc" in sel.kernel_files and f"{k}/pooling_common.cc" in sel.kernel_files
    dests = dict(sel.files)
    assert f"{cmsis_nn.WRAPPERS_DIR}/conv.cc" in dests
    assert "third_party/cmsis_nn/Include/arm_nnfunctions.h" in dests
    assert "third_party/cmsis_nn/LICENSE" in dests
    sources = [d for d in dests if d.endswith(".c")]
    assert "third_party/cmsis_nn/Source/ConvolutionFunctions/arm_convolve_wrapper_s8.c" in sources
    assert not any("SVDFunctions" in s or "LSTM" in s for s in sources)     # only what the wrappers reach
    assert cmsis_nn.optimized_ops(tree, KWS_OPS, sel.wrappers) == [op for op in KWS_OPS if op != "RESHAPE"]


@needs_setup
def test_a_cortex_m_project_carries_the_wrappers_and_the_flags(tmp_path):
    out = tmp_path / "p"
    r = run_tfgen("generate", model("kws_ref_model"), "--board", "nucleo_f446re", "-o", out, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["kernels"].startswith("cmsis-nn") and "CONV_2D" in report["optimized_ops"]
    lib = out / "lib" / "tflm"
    assert (lib / cmsis_nn.WRAPPERS_DIR / "conv.cc").is_file()
    assert not (lib / tflm_tree.KERNELS_DIR / "conv.cc").exists()
    assert (lib / "third_party/cmsis_nn/Source/ConvolutionFunctions/arm_convolve_wrapper_s8.c").is_file()
    ini = (out / "platformio.ini").read_text()
    assert ini.count("-DCMSIS_NN") == 4                       # board, validate, sim and qemu environments
    assert "-I lib/tflm/third_party/cmsis_nn/Include" in ini
    assert '"-DCMSIS_NN"' in (lib / "library.json").read_text()
    ref = tmp_path / "ref"
    r = run_tfgen("generate", model("kws_ref_model"), "--board", "nucleo_f446re", "-o", ref, "--kernels",
                  "reference")
    assert r.returncode == 0, r.stderr
    assert not (ref / "lib/tflm/third_party/cmsis_nn").exists() and "CMSIS_NN" not in (ref / "platformio.ini").read_text()


@pytest.mark.slow
@needs_setup
@pytest.mark.parametrize("name", ["kws_ref_model"])      # every shared model: tests/test_corpus.py
def test_cmsis_nn_firmware_is_byte_exact_on_100_vectors_in_qemu(name):
    needs_qemu()
    r = run_tfgen("verify", model(name), "--board", "mps2_an386", "--vectors", 100, "--kernels", "cmsis-nn",
                  "--json", timeout=3600)
    assert r.returncode in (0, 1), r.stderr
    report = json.loads(r.stdout)
    print(f"\n{name}: {report['instructions_per_inference']} instructions/inference, flash "
          f"{report['flash_bytes']}, optimized {report['optimized_ops']}")
    assert report["ok"] and report["vectors"] == 100 and report["mismatched_bytes"] == 0, report
    assert report["kernels"].startswith("cmsis-nn") and "FULLY_CONNECTED" in report["optimized_ops"]
    if name == "kws_ref_model":
        assert report["instructions_per_inference"] <= 9_500_000
        assert set(report["optimized_ops"]) == {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D",
                                                "FULLY_CONNECTED", "SOFTMAX"}


@pytest.mark.slow
@needs_setup
def test_the_committed_table_is_what_the_symbol_closure_gives():
    needs.tools("arm-none-eabi-gcc", "arm-none-eabi-nm")
    fresh = cmsis_nn_table.build_table(cmsis_nn.resolve(), tflm_tree.resolve(download=False).root)
    assert fresh["wrappers"] == cmsis_nn.load_table()
