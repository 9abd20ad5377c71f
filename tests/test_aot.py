"""`--runtime aot`: the model as generated C++ calling the kernels directly, no interpreter.

TFLM's Prepare arithmetic redone in Python (codegen/project/prepare.py) must give the very parameters TFLM
computes, so every test that matters here is a byte comparison with the oracle: on the host (TFLM's
reference kernel functions) and on QEMU's Cortex-M4F (CMSIS-NN), every output, and with --per-op every
op's output.
"""
from __future__ import annotations

import json
import math

import pytest

import needs
from codegen.project import prepare
from conftest import model, run_tfgen
from helpers_render import emulated_board_toml


# --- TFLM's arithmetic ----------------------------------------------------------------------------

def test_rounding_is_half_away_from_zero_as_std_round():
    assert [prepare.round_half_away(x) for x in (2.5, -2.5, 0.5, -0.5, 2.4999, 1e9 + 0.5)] == [3, -3, 1, -1, 2, 1e9 + 1]


def test_quantize_multiplier_as_tflite():
    assert prepare.quantize_multiplier(0.0) == (0, 0)
    assert prepare.quantize_multiplier(0.5) == (1 << 30, 0)
    assert prepare.quantize_multiplier(1.0) == (1 << 30, 1)
    # q * 2^31 rounds up to 2^31: halved, and the shift grows, as QuantizeMultiplier does
    assert prepare.quantize_multiplier(1 - 2 ** -40) == (1 << 30, 1)
    assert prepare.quantize_multiplier(2 ** -40) == (0, 0)                  # shift below -31: zero
    m, s = prepare.quantize_multiplier(0.0039215)
    assert (1 << 30) <= m < (1 << 31) and math.isclose(m * 2.0 ** (s - 31), 0.0039215, rel_tol=1e-9)


def test_padding_as_compute_padding_height_width():
    assert prepare.compute_padding(1, 1, 1, 1, 49, 10, 10, 4, "same") == (4, 1)      # kws's first conv
    assert prepare.compute_padding(2, 2, 1, 1, 96, 96, 3, 3, "same") == (0, 0)      # total 1: floor(1/2)
    assert prepare.compute_padding(1, 1, 1, 1, 5, 5, 3, 3, "valid") == (0, 0)


# --- refusals ---------------------------------------------------------------------------------------

def _one_line(r) -> str:
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1, r.stderr
    return r.stderr


def test_an_op_aot_does_not_cover_is_named_and_tflm_suggested(tmp_path):
    r = run_tfgen("generate", model("keyword_scrambled"), "--board", "host", "-o", tmp_path / "p", "--runtime", "aot")
    line = _one_line(r)
    assert "--runtime aot does not cover" in line and "SVDF" in line and "--runtime tflm" in line
    assert not (tmp_path / "p").exists()


def test_16x8_models_are_refused_for_aot():
    r = run_tfgen("verify", model("seanet_conv0"), "--board", "host", "--runtime", "aot")
    assert "int8 activations" in _one_line(r) and "--runtime tflm" in r.stderr


def test_aot_refuses_only_what_its_weights_cannot_fit(tmp_path):
    """mobilenet_v2's flatbuffer, TFLM and one test vector exceed mps2_an386's 4 MB, so TFLM's firmware
    cannot be verified there; its weights and the vector do not: aot's can (the corpus runs it byte-exact
    in QEMU), and an ESP32's 1 MB app partition is refused for aot with the weights' figure."""
    needs.tflm()
    mobilenet = model("mobilenet_v2")
    r = run_tfgen("verify", mobilenet, "--board", "mps2_an386", "--vectors", 1, "--kernels", "reference")
    assert r.returncode == 1 and "does not fit mps2_an386's flash" in r.stderr, r.stderr
    r = run_tfgen("generate", mobilenet, "--board", "mps2_an386", "-o", tmp_path / "aot", "--runtime", "aot")
    assert r.returncode == 0, r.stderr
    r = run_tfgen("generate", mobilenet, "--board", "esp32", "-o", tmp_path / "esp", "--runtime", "aot")
    assert r.returncode == 1 and "its weights' 3,542,592 B" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "esp").exists()


# --- the project ------------------------------------------------------------------------------------

def test_an_aot_project_has_no_interpreter_and_no_flatbuffer(tmp_path):
    needs.tflm()
    out = tmp_path / "p"
    r = run_tfgen("generate", model("kws_ref_model"), "--board", "host", "-o", out, "--runtime", "aot", "--json")
    assert r.returncode == 0, r.stderr
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert "src/tfgen_aot.cc" in files and not [f for f in files if f.endswith("_model_data.cc")]
    compiled = {f for f in files if f.endswith((".cc", ".c"))}
    assert not [f for f in compiled if "micro_interpreter" in f or "micro_allocator" in f or "/kernels/conv" in f]
    assert json.loads((out / "tfgen.json").read_text())["runtime"] == "aot"
    code = (out / "src" / "tfgen_aot.cc").read_text()
    assert code.count("tflite::reference_integer_ops::ConvPerChannel(") == 5        # kws: five convolutions
    assert "kOffsets[] = {" in code and "MicroInterpreter" not in code
    header = (out / "src" / "tfgen_model.h").read_text()
    assert "inline constexpr std::size_t kArenaSize = 16000;" in header             # the plan: the peak itself
    assert "--runtime aot" in (out / "platformio.ini").read_text()                  # the regenerate line


# --- byte for byte with the oracle ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["hello_world_int8", "ad01_int8", "kws_ref_model"])
def test_the_reference_kernels_on_the_host_match_the_oracle_op_by_op(name):
    needs.tflm()
    r = run_tfgen("verify", model(name), "--board", "host", "--runtime", "aot", "--vectors", 20, "--per-op", "--json",
                  timeout=1800)
    assert r.returncode == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert report["ok"] and report["mismatched_bytes"] == 0 and report["per_op"]["op"] is None
    assert report["kernels"] == "reference"


def test_cmsis_nn_on_the_cortex_m4f_matches_the_oracle_and_beats_tflm():
    needs.cortex_m()
    needs.cmsis_nn()
    def run(*extra):
        r = run_tfgen("verify", model("kws_ref_model"), "--board", "mps2_an386", "--vectors", 3, "--json", *extra,
                      timeout=1800)
        assert r.returncode == 0, r.stderr + r.stdout
        return json.loads(r.stdout)
    aot_run, tflm_run = run("--runtime", "aot", "--per-op"), run()
    assert aot_run["ok"] and aot_run["per_op"]["op"] is None and aot_run["kernels"].startswith("cmsis-nn")
    assert set(aot_run["optimized_ops"]) == {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
                                             "SOFTMAX"}
    # the same kernels, without the interpreter: no more instructions, far less flash and arena
    assert aot_run["instructions_per_inference"] <= tflm_run["instructions_per_inference"]
    assert aot_run["arena_used_bytes"] == 16_000 < tflm_run["arena_used_bytes"]
    assert aot_run["flash_bytes"] < 0.5 * tflm_run["flash_bytes"]


def test_serial_validation_takes_the_aot_firmware_too():
    needs.cortex_m()
    r = run_tfgen("verify", model("ad01_int8"), "--board", "mps2_an386", "--runtime", "aot", "--vectors", 3,
                  "--kernels", "reference", "--port", f"socket://127.0.0.1:{_free_port()}", "--json", timeout=1800)
    assert r.returncode == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert report["ok"] and len(report["ops"]) == 10
    mean = report["latency"]["mean"]
    assert abs(report["ops_total"] - mean) <= 0.02 * mean


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _int8_model(tf, model, shape, path, seed):
    """``model`` (Keras) through TensorFlow's converter, full INT8, calibrated on normal samples."""
    import numpy as np
    rng = np.random.default_rng(seed)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.standard_normal((1, *shape)).astype(np.float32)] for _ in range(50))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    path.write_bytes(conv.convert())
    return {o["name"] for o in json.loads(run_tfgen("inspect", path, "--json", "--no-arena").stdout)["ops"]}


M55_BOARD = emulated_board_toml("mps3_an547", "Arm MPS3 AN547 (Cortex-M55, Helium) emulated by QEMU mps3-an547",
                                "cortex-m55", "mps3-an547", 32, 524288, 524288, "cmsis-nn")


def _m55_boards(tmp_path):
    """A Cortex-M55 board (QEMU's mps3-an547: 512 KB ITCM for the code, 512 KB DTCM) as a user adds one."""
    folder = tmp_path / "boards"
    folder.mkdir(exist_ok=True)
    (folder / "mps3_an547.toml").write_text(M55_BOARD)
    return folder


def test_cmsis_nn_with_helium_on_the_cortex_m55(tmp_path):
    """CMSIS-NN's MVE path: its scratch sizes (codegen/project/cmsis_sizes.py), which the firmware checks
    against CMSIS-NN's own at start-up, must be exact; op by op byte-exact, and no more instructions
    than TFLM with the same kernels."""
    needs.cortex_m()
    needs.cmsis_nn()
    folder = _m55_boards(tmp_path)
    def run(name, *extra):
        r = run_tfgen("verify", model(name), "--board", "mps3_an547", "--boards-dir", folder, "--vectors", 3,
                      "--json", *extra, timeout=1800)
        assert r.returncode == 0, r.stderr + r.stdout
        return json.loads(r.stdout)
    for name in ("kws_ref_model", "ad01_int8", "person_detect"):
        report = run(name, "--runtime", "aot", "--per-op")
        assert report["ok"] and report["per_op"]["op"] is None and report["kernels"].startswith("cmsis-nn"), report
    tflm, aot_run = run("kws_ref_model"), run("kws_ref_model", "--runtime", "aot")
    assert aot_run["instructions_per_inference"] <= tflm["instructions_per_inference"] < 5_000_000   # Helium
    assert aot_run["arena_used_bytes"] < tflm["arena_used_bytes"]


def _verify_aot_op_by_op(path) -> None:
    """Byte-exact op by op: TFLM's reference kernels on the host, CMSIS-NN on the Cortex-M4F and (MVE) on
    the Cortex-M55, and esp-nn's generic C (an ESP32's) on the host and on the Cortex-M4F."""
    needs.esp_nn()
    folder = _m55_boards(path.parent)
    for board, on, kernels in (("host", None, "reference"), ("mps2_an386", None, "cmsis-nn"),
                               ("mps3_an547", None, "cmsis-nn"),
                               ("esp32", "host", "esp-nn"), ("esp32", "qemu", "esp-nn")):
        r = run_tfgen("verify", path, "--board", board, "--runtime", "aot", "--vectors", 10, "--per-op", "--json",
                      "--boards-dir", folder, *(("--on", on) if on else ()), timeout=1800)
        assert r.returncode == 0, r.stderr + r.stdout
        report = json.loads(r.stdout)
        assert report["ok"] and report["per_op"]["op"] is None, report
        assert report["kernels"].startswith(kernels), report["kernels"]


@pytest.mark.slow
def test_a_converter_model_with_every_covered_op_matches_the_oracle(tmp_path):
    """Stride 2 and valid padding, relu6, a depth multiplier, an ADD that broadcasts (a tensor and its
    per-channel maximum), max and average pools, dense and softmax: byte-exact op by op (_verify_aot_op_by_op)."""
    needs.cortex_m()
    needs.cmsis_nn()
    from codegen.quantize.tfimport import import_tensorflow
    tf = import_tensorflow()
    layers = tf.keras.layers
    x = tf.keras.Input((12, 12, 3), batch_size=1)
    a = layers.Conv2D(8, 3, strides=2, padding="valid", activation="relu6")(x)
    b = layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(a)
    peak = layers.MaxPooling2D(5)(b)                                    # 1x1x16
    c = layers.Lambda(lambda ts: ts[0] + ts[1])([b, peak])
    d = layers.AveragePooling2D(2, padding="same")(layers.MaxPooling2D(2)(c))
    y = layers.Softmax()(layers.Dense(10)(layers.Flatten()(d)))
    ops = _int8_model(tf, tf.keras.Model(x, y), (12, 12, 3), tmp_path / "zoo.tflite", 0)
    assert ops >= {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED",
                   "SOFTMAX"}, ops
    _verify_aot_op_by_op(tmp_path / "zoo.tflite")


@pytest.mark.slow
def test_pad_mul_logistic_concatenation_and_mean_match_the_oracle(tmp_path):
    """A second converter model: zero padding (PAD), a sigmoid gate (LOGISTIC) multiplied in (MUL, the
    same shapes: CMSIS-NN's elementwise kernel on the Cortex-M4F), two branches joined on the channels
    (CONCATENATION) and a global average (MEAN, its accumulator a planned scratch buffer): byte-exact op
    by op (_verify_aot_op_by_op)."""
    needs.cortex_m()
    needs.cmsis_nn()
    from codegen.quantize.tfimport import import_tensorflow
    tf = import_tensorflow()
    layers = tf.keras.layers
    x = tf.keras.Input((8, 8, 4), batch_size=1)
    a = layers.Conv2D(8, 3)(x)                                          # 6x6x8
    gate = layers.Activation("sigmoid")(layers.Conv2D(8, 1)(a))
    b = layers.Multiply()([a, gate])
    c = layers.Concatenate()([layers.Conv2D(4, 1, activation="relu")(b), layers.Conv2D(4, 1)(a)])
    padded = layers.ZeroPadding2D(((1, 2), (0, 1)))(c)                  # 9x7: a PAD the converter keeps
    y = layers.Dense(5)(layers.GlobalAveragePooling2D()(layers.MaxPooling2D(3)(padded)))   # MEAN
    ops = _int8_model(tf, tf.keras.Model(x, y), (8, 8, 4), tmp_path / "zoo2.tflite", 1)
    assert ops >= {"PAD", "LOGISTIC", "MUL", "CONCATENATION", "MEAN"}, ops
    _verify_aot_op_by_op(tmp_path / "zoo2.tflite")
