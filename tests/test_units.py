"""Table-driven unit tests: numerics, the vector file, the TFLM op table, the IR."""
from __future__ import annotations

import json

import numpy as np
import pytest

from codegen.model import numerics, tflm_ops, vectors
from codegen.errors import TfgenError
from codegen.model.inspection import firmware_problems, parse_model, quantization_kind
from conftest import model
from tools import tflm_ops_table


@pytest.mark.parametrize("x, scale, zp, expected", [
    (0.0, 0.5, 0, 0),
    (0.25, 0.5, 0, 1),        # 0.5 rounds away from zero
    (-0.25, 0.5, 0, -1),
    (0.74, 0.5, 3, 4),
    (1000.0, 0.5, 0, 127),    # clamped
    (-1000.0, 0.5, 0, -128),
    (-0.6, 0.5, -128, -128),
])
def test_quantize_rounds_and_clamps_as_tflite(x, scale, zp, expected):
    assert int(numerics.quantize(np.array([x]), scale, zp)[0]) == expected


def test_dequantize_inverts_quantize_within_half_a_step():
    x = np.linspace(-3, 3, 101)
    q = numerics.quantize(x, 0.05, 7)
    assert np.max(np.abs(numerics.dequantize(q, 0.05, 7) - x)) <= 0.025 + 1e-9


@pytest.mark.parametrize("ref, test, expected", [
    ([1.0, 2.0], [1.0, 2.0], float("inf")),
    ([3.0, 4.0], [3.0, 3.0], 10 * np.log10(25 / 1)),
    ([0.0, 0.0], [1.0, 0.0], float("-inf")),
])
def test_sqnr(ref, test, expected):
    assert numerics.sqnr_db(np.array(ref), np.array(test)) == pytest.approx(expected)


def _vector_set(n=3):
    rng = np.random.default_rng(1)
    ins = (vectors.TensorSpec("int8", (1, 4), 0.5, -3), vectors.TensorSpec("int8", (1, 2, 2), 0.25, 0))
    outs = (vectors.TensorSpec("int8", (1, 3), 0.125, 5),)
    return vectors.VectorSet("ab" * 32, ins, outs,
                             tuple(rng.integers(-128, 128, (n,) + s.shape, dtype=np.int8) for s in ins),
                             tuple(rng.integers(-128, 128, (n,) + s.shape, dtype=np.int8) for s in outs))


def test_vector_file_round_trips_and_has_the_documented_layout():
    vs = _vector_set()
    buf = vectors.encode(vs)
    assert buf[:4] == b"TFGV" and int.from_bytes(buf[12:16], "little") == 3
    assert bytes.fromhex("ab" * 32) == buf[16:48]
    header = 48 + 3 * 16 + 4 * (2 + 3 + 2)
    assert len(buf) == header + 3 * (4 + 4 + 3)
    # the first record starts right after the descriptors: vector 0's first input
    assert buf[header:header + 4] == vs.input_data[0][0].tobytes()
    back = vectors.decode(buf)
    assert back.inputs == vs.inputs and back.outputs == vs.outputs and back.model_sha256 == vs.model_sha256
    for a, b in zip(back.input_data + back.output_data, vs.input_data + vs.output_data):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b[:10], "shorter than its header"),
    (lambda b: b"XXXX" + b[4:], "no TFGV magic"),
    (lambda b: b[:4] + b"\x02\x00" + b[6:], "format version 2"),
    (lambda b: b[:-1], "bytes of records"),
])
def test_vector_file_rejects_damage(mutate, message):
    with pytest.raises(TfgenError, match=message):
        vectors.decode(mutate(vectors.encode(_vector_set())))


HEADER_SNIPPET = """
  TfLiteStatus AddCustom(const char* name, const TFLMRegistration* registration) { return kTfLiteOk; }
  TfLiteStatus AddAbs(const TFLMRegistration& registration = Register_ABS()) {
    return AddBuiltin(BuiltinOperator_ABS, registration, ParseAbs);
  }
  TfLiteStatus AddConv2D(
      const TFLMRegistration& registration = Register_CONV_2D()) {
    return AddBuiltin(BuiltinOperator_CONV_2D, registration, ParseConv2D);
  }
  TfLiteStatus AddDetectionPostprocess() {
    return AddCustom("TFLite_Detection_PostProcess", tflite::Register_DETECTION_POSTPROCESS());
  }
  TfLiteStatus AddBuiltin(tflite::BuiltinOperator op, const TFLMRegistration& registration) {}
"""


def test_resolver_header_parser_maps_ops_to_methods():
    builtins, customs, registrations = tflm_ops_table.parse_resolver_header(HEADER_SNIPPET)
    assert builtins == {"ABS": "AddAbs", "CONV_2D": "AddConv2D"}
    assert registrations == {"AddAbs": "Register_ABS", "AddConv2D": "Register_CONV_2D",
                             "AddDetectionPostprocess": "Register_DETECTION_POSTPROCESS"}
    assert customs == {"TFLite_Detection_PostProcess": "AddDetectionPostprocess"}


def test_committed_op_table_has_the_common_ops():
    ops = tflm_ops.load_op_set()
    for name, method in [("CONV_2D", "AddConv2D"), ("DEPTHWISE_CONV_2D", "AddDepthwiseConv2D"),
                         ("FULLY_CONNECTED", "AddFullyConnected"), ("SOFTMAX", "AddSoftmax"),
                         ("UNIDIRECTIONAL_SEQUENCE_LSTM", "AddUnidirectionalSequenceLSTM")]:
        assert ops.builtins[name] == method
    assert "CUSTOM" not in ops.builtins and len(ops.builtins) > 90


def test_committed_op_table_matches_the_tflm_tree(tflm_root):
    derived = tflm_ops_table.derive_from_tree(tflm_root)
    committed = json.loads(tflm_ops.DATA_FILE.read_text())
    assert derived["builtins"] == committed["builtins"]
    assert derived["customs"] == committed["customs"]
    assert derived["registrations"] == committed["registrations"]


@pytest.mark.parametrize("name, kind", [("kws_ref_model", "int8"), ("ad01_int8", "int8"),
                                        ("hello_world_int8", "int8"), ("hello_world_float", "float"),
                                        ("keyword_scrambled", "integer"), ("micro_speech_lstm", "integer"),
                                        ("audio_preprocessor_int8", "integer"), ("seanet_conv0", "integer")])
def test_quantization_kind(name, kind):
    path = model(name)
    ir = parse_model(path.read_bytes(), path.name)
    assert quantization_kind(ir) == kind
    # TFLM runs every integer model; `tfgen quantize` still produces (and requires) full INT8.
    assert (firmware_problems(ir) == []) == (kind != "float")
    assert (firmware_problems(ir, full_int8=True) == []) == (kind == "int8")


def test_an_op_that_would_compute_in_float_is_named():
    """micro_speech_lstm's float tensors are LSTM intermediates no kernel reads; a float operand is not."""
    import dataclasses
    path = model("micro_speech_lstm")
    ir = parse_model(path.read_bytes(), path.name)
    assert ir.float_tensors and firmware_problems(ir) == []
    fc = next(op for op in ir.operators if op.name == "FULLY_CONNECTED")
    tensors = list(ir.tensors)
    tensors[fc.outputs[0]] = dataclasses.replace(tensors[fc.outputs[0]], dtype="float32")
    problems = firmware_problems(dataclasses.replace(ir, tensors=tuple(tensors)))
    assert problems == ["ops that would compute in float: FULLY_CONNECTED, SOFTMAX"]
