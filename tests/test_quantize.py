"""`tfgen quantize` on real models and a CNN trained here: full INT8, checked, reported."""
from __future__ import annotations

import json

import numpy as np
import pytest

from codegen.model.inspection import firmware_problems, parse_model, quantization_kind
from conftest import model, run_tfgen

pytestmark = pytest.mark.slow


def quantize(src, calib, out, *extra):
    r = run_tfgen("quantize", src, "--calib", calib, "-o", out, "--json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def assert_full_int8(path):
    ir = parse_model(path.read_bytes(), path.name)
    assert quantization_kind(ir) == "int8"
    assert firmware_problems(ir) == []
    assert all(t.shape[0] == 1 for t in ir.inputs + ir.outputs)        # batch fixed to 1
    consts = [t for t in ir.tensors if t.is_constant]
    assert {t.dtype for t in consts} <= {"int8", "int32"}
    return ir


def test_digits_cnn_int8_accuracy_within_one_point_of_float(digits, tmp_path):
    out = tmp_path / "digits.tflite"
    report = quantize(digits / "model.keras", digits / "calib.npy", out,
                      "--eval", digits / "x_test.npy", "--labels", digits / "y_test.npy")
    ir = assert_full_int8(out)
    assert [u.name for u in ir.ops][:1] == ["CONV_2D"]
    o = report["outputs"][0]
    print(f"digits: float {o['float_accuracy']:.4f}, int8 {o['int8_accuracy']:.4f}, SQNR {o['sqnr_db']:.1f} dB")
    assert o["float_accuracy"] > 0.9
    assert abs(o["float_accuracy"] - o["int8_accuracy"]) <= 0.01
    assert o["sqnr_db"] > 15 and o["cosine"] > 0.99
    assert report["evaluation"]["samples"] == len(np.load(digits / "y_test.npy"))
    # deterministic: the same inputs give the same bytes
    again = tmp_path / "again.tflite"
    quantize(digits / "model.keras", digits / "calib.npy", again)
    assert again.read_bytes() == out.read_bytes()


def test_digits_text_report_shows_accuracy(digits, tmp_path):
    r = run_tfgen("quantize", digits / "model.keras", "--calib", digits / "calib.npy",
                  "-o", tmp_path / "d.tflite", "--eval", digits / "x_test.npy",
                  "--labels", digits / "y_test.npy", "--per-tensor")
    assert r.returncode == 0, r.stderr
    assert "int8 acc %" in r.stdout and "SQNR dB" in r.stdout and "per-tensor" in r.stdout
    assert "calibrating" in r.stderr                          # the progress bar
    ir = parse_model((tmp_path / "d.tflite").read_bytes(), "d")
    conv_weights = [ir.tensors[op.inputs[1]] for op in ir.operators if op.name == "CONV_2D"]
    assert conv_weights and all(len(t.quantization.scales) == 1 for t in conv_weights)


def test_per_channel_is_the_default(digits, tmp_path):
    out = tmp_path / "d.tflite"
    quantize(digits / "model.keras", digits / "calib.npy", out)
    ir = parse_model(out.read_bytes(), "d")
    conv = next(op for op in ir.operators if op.name == "CONV_2D")
    w = ir.tensors[conv.inputs[1]]
    assert len(w.quantization.scales) == w.shape[0] > 1


def test_ad01_h5_keras_hdf5(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "calib.npy", rng.normal(size=(50, 640)).astype(np.float32))
    out = tmp_path / "ad01.tflite"
    report = quantize(model("ad01_h5"), tmp_path / "calib.npy", out)
    ir = assert_full_int8(out)
    assert [u.name for u in ir.ops] == ["FULLY_CONNECTED"]
    assert ir.inputs[0].shape == (1, 640)
    assert report["evaluation"]["samples"] == 10 and report["outputs"][0]["sqnr_db"] > 10


def test_kws_saved_model_from_csv(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(30, 490))
    (tmp_path / "calib.csv").write_text(
        ",".join(f"f{i}" for i in range(490)) + "\n" + "\n".join(",".join(f"{v:.5f}" for v in r) for r in rows))
    out = tmp_path / "kws.tflite"
    report = quantize(model("kws_saved_model"), tmp_path / "calib.csv", out)
    ir = assert_full_int8(out)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"} <= {
        u.name for u in ir.ops}
    assert ir.inputs[0].shape == (1, 49, 10, 1) and ir.outputs[0].shape == (1, 12)
    assert report["calibration"]["samples"] == 24


def test_image_folder_calibration(digits, tmp_path):
    from PIL import Image
    x = np.load(digits / "calib.npy")[:12]
    folder = tmp_path / "images"
    folder.mkdir()
    for i, img in enumerate(x):
        Image.fromarray((img[:, :, 0] * 255).astype(np.uint8)).resize((32, 32)).save(folder / f"{i:02}.png")
    out = tmp_path / "d.tflite"
    report = quantize(digits / "model.keras", folder, out)
    assert_full_int8(out)
    assert report["calibration"]["samples"] + report["evaluation"]["samples"] == 12


@pytest.mark.parametrize("variant", ["dynamic_range", "float16", "float"])
def test_inspect_refuses_non_int8_conversions_with_the_way_out(digits, tmp_path, variant):
    """What users get from the converter's other modes: refused, with the command that fixes it."""
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    net = keras.models.load_model(digits / "model.keras")
    conv = tf.lite.TFLiteConverter.from_keras_model(net)
    if variant != "float":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "float16":
        conv.target_spec.supported_types = [tf.float16]
    path = tmp_path / f"{variant}.tflite"
    path.write_bytes(conv.convert())
    r = run_tfgen("inspect", path)
    assert r.returncode == 2
    line, = r.stderr.strip().splitlines()
    kind = {"dynamic_range": "hybrid", "float16": "float", "float": "float"}[variant]
    assert line.startswith(f"error: {path.name}: it is {kind}, not integer ")
    assert "tfgen quantize" in line
    assert json.loads(run_tfgen("inspect", "--json", "--no-arena", "--allow-float", path).stdout)[
        "quantization"] == kind


KERAS2_WRITER = '''
import sys, numpy as np, tf_keras as k
rng = np.random.default_rng(0)
inp = k.Input((16, 16, 1))
x = k.layers.Conv2D(8, 3, padding="same")(inp)
x = k.layers.BatchNormalization()(x)
x = k.layers.ReLU()(x)
x = k.layers.DepthwiseConv2D(3, padding="same")(x)
x = k.layers.BatchNormalization()(x)
x = k.layers.ReLU()(x)
x = k.layers.Flatten()(x)
out = k.layers.Dense(4, activation="softmax")(x)
model = k.Model(inp, out)
for layer in model.layers:      # batch-norm statistics that are not the identity
    if isinstance(layer, k.layers.BatchNormalization):
        g, b, m, v = layer.get_weights()
        layer.set_weights([g * 1.5, b + 0.1, m + rng.normal(0, 0.1, m.shape), v * 2.0])
model.save(sys.argv[1])
np.save(sys.argv[2], rng.uniform(0, 1, (64, 16, 16, 1)).astype(np.float32))
'''


def test_a_keras_2_h5_loads_with_tf_keras_quantizes_and_verifies(tmp_path):
    """A legacy .h5 written by Keras 2 itself (Conv2D, DepthwiseConv2D, BatchNormalization, Dense),
    which Keras 3 cannot deserialize: quantize says it read it with tf_keras, the result is full
    INT8, and its firmware is byte-exact on the host."""
    import subprocess
    import sys
    import needs
    h5, calib, out = tmp_path / "legacy.h5", tmp_path / "calib.npy", tmp_path / "legacy_int8.tflite"
    r = subprocess.run([sys.executable, "-c", KERAS2_WRITER, h5, calib], capture_output=True, text=True,
                       timeout=600, env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert r.returncode == 0, r.stderr[-2000:]
    keras3 = subprocess.run([sys.executable, "-c", "import sys, keras; keras.models.load_model(sys.argv[1])", h5],
                            capture_output=True, text=True, timeout=600)
    assert keras3.returncode != 0, "Keras 3 reads this file: the test no longer covers the fallback"
    r = run_tfgen("quantize", h5, "--calib", calib, "-o", out, "--calibration", "minmax")
    assert r.returncode == 0, r.stderr
    assert "with Keras 2 (tf_keras 2.21.0): Keras 3 cannot read this .h5" in r.stdout, r.stdout
    ir = assert_full_int8(out)
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "SOFTMAX"} <= {u.name for u in ir.ops}
    needs.tflm()
    r = run_tfgen("verify", out, "--board", "host", "--vectors", 20, "--json", timeout=1800)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["mismatched_bytes"] == 0 and report["vectors"] == 20
