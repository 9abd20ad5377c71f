"""Calibration beyond min/max, bias correction, `--calibration auto` and `--report-layers`.

The range methods are checked on numbers first, then through the real converter, on the digits CNN,
the 1-D CNN on synthetic accelerometer windows and MLPerf Tiny's ad01 autoencoder; every model made
here is full INT8 and is run by tflite_micro.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from codegen.quantize import calibration
from codegen.model import numerics
from codegen.oracle import oracle
from codegen.quantize.calibration import quant_mse, range_mse, range_percentile
from codegen.model.inspection import firmware_problems, parse_model, quantization_kind
from conftest import model, run_tfgen


def _normal_with_outlier(n=100_000, outlier=1000.0):
    x = np.random.default_rng(0).normal(size=n).astype(np.float32)
    x[123] = outlier
    return x


# --- the range methods, on numbers ----------------------------------------------------------------

def test_percentile_is_not_set_by_an_injected_outlier():
    x = _normal_with_outlier()
    lo, hi = float(x.min()), float(x.max())
    assert hi == 1000.0
    p_lo, p_hi = range_percentile(x, lo, hi, 99.99)
    assert 3.0 < p_hi < 5.0 and -5.0 < p_lo < -3.0
    assert range_percentile(x, lo, hi, 99.9)[1] < p_hi          # a lower percentile clips more


def test_mse_clips_light_tails_and_beats_minmax():
    x = np.random.default_rng(0).normal(size=100_000).astype(np.float32)
    lo, hi = float(x.min()), float(x.max())
    m_lo, m_hi = range_mse(x, lo, hi)
    assert 0.8 < m_lo / lo < 0.95 and 0.8 < m_hi / hi < 0.95
    assert quant_mse(x, m_lo, m_hi) < 0.9 * quant_mse(x, lo, hi)


def test_mse_weighs_an_outlier_by_its_error():
    """One value at 1000 among 100,000 normal ones: clipping it costs more than the rounding it saves,
    so mse keeps most of its range, and gives the negative side's resolution to it."""
    x = _normal_with_outlier()
    lo, hi = float(x.min()), float(x.max())
    m_lo, m_hi = range_mse(x, lo, hi)
    assert 500.0 < m_hi <= hi and lo < m_lo < 0.0
    assert quant_mse(x, m_lo, m_hi) <= quant_mse(x, lo, hi)


def test_mse_keeps_the_range_of_data_without_outliers():
    x = np.random.default_rng(1).uniform(0.0, 1.0, 50_000).astype(np.float32)
    lo, hi = range_mse(x, float(x.min()), float(x.max()))
    assert lo == 0.0 and 0.97 < hi <= float(x.max())            # clipping uniform data only hurts


@pytest.mark.parametrize("method", ["percentile", "mse"])
def test_ranges_contain_zero_and_stay_within_minmax(method):
    relu = np.abs(_normal_with_outlier(outlier=50.0)) + 2.0        # all values >= 2
    lo, hi = float(relu.min()), float(relu.max())
    got = range_percentile(relu, lo, hi) if method == "percentile" else range_mse(relu, lo, hi)
    assert got[0] == 0.0 and 0.0 < got[1] <= hi


# --- through the converter ------------------------------------------------------------------------

def _quantize(model_path, calib_path, eval_path=None, labels=None, **options):
    from codegen.quantize import quantize
    return quantize.quantize(model_path, calib_path, quantize.Options(show_progress=False, **options),
                             eval_path, labels)


def _assert_full_int8_and_runs_in_tflm(result, rows):
    ir = parse_model(result.model, "m.tflite")
    assert quantization_kind(ir) == "int8" and firmware_problems(ir) == []
    t = ir.inputs[0]
    raw = numerics.quantize(rows.reshape((rows.shape[0],) + t.shape), t.quantization.scales[0],
                            t.quantization.zero_points[0])
    arena = oracle.measure_arena(ir, result.model).min_bytes
    out = oracle.run_tflm(ir, result.model, [raw], arena)[0]
    assert out.dtype == np.int8 and out.shape[0] == rows.shape[0]
    return ir, out


def _input_range(ir) -> tuple[float, float]:
    q = ir.inputs[0].quantization
    return (-128 - q.zero_points[0]) * q.scales[0], (127 - q.zero_points[0]) * q.scales[0]


@pytest.fixture(scope="module")
def digits_with_outlier(digits, tmp_path_factory):
    """The digits calibration images with one pixel of one image at 40 (pixels are 0..1)."""
    x = np.load(digits / "calib.npy").copy()
    x[7, 3, 4, 0] = 40.0
    path = tmp_path_factory.mktemp("outlier") / "calib_outlier.npy"
    np.save(path, x)
    return path


@pytest.mark.slow
def test_each_method_sets_the_ranges_as_intended(digits, digits_with_outlier):
    x_test, y_test = np.load(digits / "x_test.npy"), np.load(digits / "y_test.npy")
    highs, accuracy = {}, {}
    for method in calibration.METHODS:
        for bias in (False, True):
            r = _quantize(digits / "model.keras", digits_with_outlier, calibration=method, bias_correction=bias)
            label = "percentile 99.99" if method == "percentile" else method
            assert r.report["calibration"]["method"] == label + (" + bias correction" if bias else "")
            ir, out = _assert_full_int8_and_runs_in_tflm(r, x_test)
            if not bias:
                highs[method] = _input_range(ir)[1]
                accuracy[method] = float(np.mean(out.reshape(len(out), -1).argmax(1) == y_test))
            else:
                assert r.report["calibration"]["bias_corrected_layers"] == 3       # 2 conv + 1 dense
    print("input range top:", highs, "accuracy:", accuracy)
    assert highs["minmax"] > 39.0                   # the outlier sets the converter's range
    assert highs["percentile"] < 1.05               # under percentile it no longer does
    assert highs["mse"] <= highs["minmax"]          # one value: clipping it costs more than it saves
    assert accuracy["percentile"] > accuracy["minmax"]


@pytest.mark.slow
def test_chosen_ranges_are_the_int8_models_ranges(digits, digits_with_outlier):
    """The range a method picks is what the converter quantizes with, as int8_params derives it."""
    from codegen.quantize import quantize
    from codegen.quantize.dataset import load
    src = quantize.open_source(digits / "model.keras")
    rows = load(digits_with_outlier, src.inputs, (0.0, 1.0))
    calibrated = quantize._calibrate(src, rows, quantize.Options(show_progress=False))
    observed = calibration.observe(calibrated, rows)
    ranges = calibration.choose_ranges(calibrated, observed, "percentile")
    model_bytes = calibration.quantize_calibrated(calibration.with_ranges(calibrated, ranges), True)
    ir = parse_model(model_bytes, "p.tflite")
    by_name = {o.name: ranges[i] for i, o in observed.items()}
    checked = 0
    for t in ir.tensors:
        if t.name in by_name and t.dtype == "int8" and t.name != "Identity":       # softmax: fixed 1/256
            scale, zero_point = calibration.int8_params(*by_name[t.name])
            assert t.quantization.scales[0] == pytest.approx(scale, rel=1e-5), t.name
            assert t.quantization.zero_points[0] == zero_point, t.name
            checked += 1
    assert checked >= 4
    for o in observed.values():                     # mse: never more error than min/max
        assert quant_mse(o.sample, *range_mse(o.sample, o.lo, o.hi)) <= quant_mse(o.sample, o.lo, o.hi)


@pytest.mark.slow
def test_minmax_is_the_converters_own_quantization(digits):
    """Calibrate, keep the ranges, quantize: the tensors and buffers of the plain converter."""
    from tensorflow.lite.tools import flatbuffer_utils as fu

    from codegen.quantize import quantize
    tf = quantize.import_tensorflow()
    x = np.load(digits / "calib.npy")
    rows = x[: len(x) - int(round(len(x) * 0.2))][:500]              # what quantize() calibrates on
    conv = quantize.open_source(digits / "model.keras").converter()
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    conv.representative_dataset = lambda: ([rows[i:i + 1]] for i in range(len(rows)))
    plain = fu.convert_bytearray_to_object(conv.convert())
    ours = fu.convert_bytearray_to_object(_quantize(digits / "model.keras", digits / "calib.npy",
                                                    calibration="minmax").model)

    def content(m):
        sg = m.subgraphs[0]
        tensors = [(t.name, list(t.shape), t.type, str(t.quantization.scale), str(t.quantization.zeroPoint),
                    None if m.buffers[t.buffer].data is None else bytes(m.buffers[t.buffer].data))
                   for t in sg.tensors]
        ops = [(m.operatorCodes[o.opcodeIndex].builtinCode, list(o.inputs), list(o.outputs)) for o in sg.operators]
        return tensors, ops
    assert content(ours) == content(plain)


@pytest.mark.slow
def test_bias_correction_helps_ad01_and_changes_only_biases(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(300, 640)).astype(np.float32))
    plain = _quantize(model("ad01_h5"), tmp_path / "x.npy", calibration="minmax")
    fixed = _quantize(model("ad01_h5"), tmp_path / "x.npy", calibration="minmax", bias_correction=True)
    assert fixed.report["calibration"]["bias_corrected_layers"] == 10
    before, after = plain.report["outputs"][0]["sqnr_db"], fixed.report["outputs"][0]["sqnr_db"]
    print(f"ad01 held-out output SQNR: {before:.2f} dB -> {after:.2f} dB with bias correction")
    assert after > before + 3.0
    from tensorflow.lite.tools import flatbuffer_utils as fu
    a, b = (fu.convert_bytearray_to_object(r.model) for r in (plain, fixed))

    def data(m, op, k):
        t = m.subgraphs[0].tensors[op.inputs[k]]
        return bytes(m.buffers[t.buffer].data), str(t.quantization.scale)
    for op_a, op_b in zip(a.subgraphs[0].operators, b.subgraphs[0].operators):
        assert data(a, op_a, 1) == data(b, op_b, 1)                 # weights and their scales
        bias_a, bias_b = data(a, op_a, 2), data(b, op_b, 2)
        assert bias_a[1] == bias_b[1] and bias_a[0] != bias_b[0]    # same scales, other biases


@pytest.mark.slow
def test_auto_against_minmax_on_three_models(digits, sensor, tmp_path):
    """Acceptance: auto is never below minmax and at least 1 dB above it on two of the three."""
    np.save(tmp_path / "ad01.npy", np.random.default_rng(0).normal(size=(600, 640)).astype(np.float32))
    cases = {"digits CNN": (digits / "model.keras", digits / "calib.npy"),
             "1-D CNN, accelerometer": (sensor / "model.keras", sensor / "calib.npy"),
             "ad01.h5": (model("ad01_h5"), tmp_path / "ad01.npy")}
    gains = {}
    for name, (path, data) in cases.items():
        minmax = _quantize(path, data, calibration="minmax").report
        auto = _quantize(path, data, calibration="auto").report
        assert auto["evaluation"] == minmax["evaluation"]          # the same held-out rows
        base, best = minmax["outputs"][0]["sqnr_db"], auto["outputs"][0]["sqnr_db"]
        assert auto["auto"]["candidates"][0] == {"method": "minmax", "sqnr_db": pytest.approx(base)}
        assert auto["auto"]["gain_db_over_minmax"] == pytest.approx(best - base)
        gains[name] = best - base
        print(f"{name}: minmax {base:.2f} dB, auto {best:.2f} dB ({auto['auto']['chosen']}), {best - base:+.2f} dB")
    assert all(g >= 0 for g in gains.values()), gains
    assert sum(g >= 1.0 for g in gains.values()) >= 2, gains


@pytest.mark.slow
def test_auto_keeps_digits_accuracy_within_0_3_points_of_float(digits):
    r = _quantize(digits / "model.keras", digits / "calib.npy", digits / "x_test.npy", digits / "y_test.npy")
    assert r.report["calibration"]["method"] == r.report["auto"]["chosen"]
    assert "held-out rows" in r.report["auto"]["selected_on"]         # not the evaluation data
    o = r.report["outputs"][0]
    print(f"digits: float {o['float_accuracy']:.4f}, int8 {o['int8_accuracy']:.4f}, chose {r.report['auto']['chosen']}")
    assert abs(o["float_accuracy"] - o["int8_accuracy"]) <= 0.003


@pytest.mark.slow
def test_report_layers_names_where_the_loss_is(sensor, tmp_path):
    out = {}
    for method in ("minmax", "percentile"):
        r = run_tfgen("quantize", sensor / "model.keras", "--calib", sensor / "calib.npy", "-o",
                      tmp_path / f"{method}.tflite", "--calibration", method, "--report-layers", "--json")
        assert r.returncode == 0, r.stderr
        out[method] = json.loads(r.stdout)
    ir = parse_model((tmp_path / "minmax.tflite").read_bytes(), "m")
    layers = out["minmax"]["layers"]
    assert layers[0]["op"] == "input" and layers[0]["op_index"] is None
    assert sorted(entry["op_index"] for entry in layers[1:]) == list(range(len(ir.operators)))
    lost = [entry["lost_db"] for entry in layers[1:]]
    assert lost == sorted(lost, reverse=True)                       # the layers that lose most first
    for entry in layers:
        assert np.isfinite(entry["sqnr_db"]) and entry["max_abs_error"] >= 0
    assert "calibration rows" in out["minmax"]["layers_on"]
    # the glitches: inside the input range under minmax, clipped under percentile
    assert layers[0]["clipped_pct"] == 0.0
    assert out["percentile"]["layers"][0]["clipped_pct"] > 0.0
    text = run_tfgen("quantize", sensor / "model.keras", "--calib", sensor / "calib.npy", "-o",
                     tmp_path / "t.tflite", "--report-layers")
    assert text.returncode == 0, text.stderr
    assert "auto chose" in text.stdout and "per layer" in text.stdout and "dB lost" in text.stdout


def test_the_layer_report_runs_on_fewer_rows_for_big_activations(monkeypatch):
    from codegen.quantize import layer_error
    ir = parse_model(model("kws_ref_model").read_bytes(), "kws")
    assert layer_error.rows_for(ir) == layer_error.MAX_ROWS
    monkeypatch.setattr(layer_error, "MEMORY_BUDGET", 1_000_000)
    per_row = 5 * sum(t.elements for t in ir.tensors if not t.is_constant)
    assert layer_error.rows_for(ir) == 1_000_000 // per_row < layer_error.MAX_ROWS
    monkeypatch.setattr(layer_error, "MEMORY_BUDGET", 1)
    assert layer_error.rows_for(ir) == 1
