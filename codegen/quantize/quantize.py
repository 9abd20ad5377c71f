"""Quantize: a Keras model (.keras, .h5) or a SavedModel -> a checked full-INT8 .tflite.

Batch is fixed to 1; weights are int8 per channel (or per tensor), activations, inputs and outputs
int8. The converter calibrates, ``calibration`` chooses the activation ranges (and may correct biases),
the converter quantizes; ``auto`` tries every way and keeps the best output SQNR on held-out rows. The
converted model is inspected before it is returned: float islands, unfrozen variables or ops TFLM lacks
are errors, never a silently worse model. The quality report compares the float model with the INT8
model as TFLM runs it; ``layer_error`` does so layer by layer.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codegen.quantize import calibration, dataset, layer_error
from codegen.model import numerics
from codegen.oracle import oracle
from codegen.toolchain import proc
from codegen.quantize.calibration import DEFAULT_PERCENTILE
from codegen.quantize.dataset import InputSpec
from codegen.errors import TfgenError
from codegen.quantize.tfimport import import_tensorflow
from codegen.model.inspection import firmware_problems, parse_model
from codegen.model.ir import ModelIR
from codegen.progress import Progress
from codegen.oracle.worker import run_tflite

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
MAX_EVAL_ROWS = 1000
AUTO_PERCENTILES = (99.9, 99.99, 99.999)


@dataclass(frozen=True)
class Options:
    per_channel: bool = True
    calib_samples: int = 500
    holdout: float = 0.2
    image_range: tuple[float, float] = (0.0, 1.0)
    show_progress: bool = True
    calibration: str = "auto"           # calibration.CHOICES
    percentile: float = DEFAULT_PERCENTILE
    bias_correction: bool | None = None  # None: only where auto finds it helps
    report_layers: bool = False


@dataclass(frozen=True)
class OutputQuality:
    name: str
    sqnr_db: float
    cosine: float
    max_abs_error: float
    float_accuracy: float | None = None
    int8_accuracy: float | None = None


@dataclass(frozen=True)
class Result:
    model: bytes
    ir: ModelIR
    report: dict = field(default_factory=dict)


class _Source:
    """A float model that can hand out fresh TFLite converters with batch fixed to 1."""

    def __init__(self, path: Path):
        self.path = path
        self.inputs: list[InputSpec] = []
        self.loaded_with = ""       # how the model was read, when it is worth saying

    def converter(self):
        raise NotImplementedError


class _KerasSource(_Source):
    def __init__(self, path: Path):
        super().__init__(path)
        tf = import_tensorflow()
        model = self._load(path)
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
        specs = [tf.TensorSpec([1, *inp.shape[1:]], inp.dtype, name=_clean(inp.name)) for inp in model.inputs]
        for s in specs:
            if None in s.shape.as_list():
                raise TfgenError(f"{path}: input {s.name!r} has an undefined dimension {s.shape}",
                                 "give the model's Input layer a fixed shape")
        self.inputs = [InputSpec(s.name, tuple(s.shape.as_list()[1:]), s.dtype.name) for s in specs]
        single = len(specs) == 1
        fn = tf.function(lambda *args: model(args[0] if single else list(args), training=False))
        # Freezing turns variables into constants: without it, a Keras 3 model converts with
        # VAR_HANDLE/READ_VARIABLE ops that neither calibration nor TFLM can run.
        self._frozen = convert_variables_to_constants_v2(fn.get_concrete_function(*specs))

    def converter(self):
        return import_tensorflow().lite.TFLiteConverter.from_concrete_functions([self._frozen])

    def _load(self, path: Path):
        """Keras 3; for an HDF5 file Keras 3 cannot deserialize (most .h5 files saved by TF 2.x before
        Keras 3: 'groups' in DepthwiseConv2D, ...), Keras 2 (tf_keras), saying so."""
        import keras
        try:
            return keras.models.load_model(path, compile=False)
        except Exception as exc:            # Keras raises many types for unreadable files
            keras3 = _keras_error(exc)
        if path.suffix.lower() in (".h5", ".hdf5"):
            with proc.native_stderr([]):
                import tf_keras
            try:
                model = tf_keras.models.load_model(path, compile=False)
            except Exception as exc:
                raise TfgenError(f"{path}: neither Keras 3 nor Keras 2 (tf_keras) can load this model (Keras 3: "
                                 f"{keras3}; Keras 2: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''})",
                                 "check that it is a Keras .h5 file saved by model.save()")
            self.loaded_with = f"Keras 2 (tf_keras {tf_keras.__version__}): Keras 3 cannot read this .h5 ({keras3})"
            return model
        raise TfgenError(f"{path}: Keras cannot load this model ({keras3})",
                         "check that it is a Keras .keras/.h5 file saved by model.save()")


def _keras_error(exc: Exception) -> str:
    """Keras' message in one short line: its first line without the layer's whole config, and the
    cause Keras names at the end (e.g. "Unrecognized keyword arguments passed to DepthwiseConv2D:
    {'groups': 1}")."""
    text = str(exc)
    first = (text.splitlines() or [""])[0].split(" using config=")[0]
    cause = re.search(r"Exception encountered: ([^\n]{1,200})", text)
    return f"{type(exc).__name__}: {first}" + (f": {cause.group(1)}" if cause and cause.group(1) not in first else "")


class _SavedModelSource(_Source):
    def __init__(self, path: Path, signature: str = "serving_default"):
        super().__init__(path)
        tf = import_tensorflow()
        from tensorflow.core.protobuf import saved_model_pb2
        sm = saved_model_pb2.SavedModel()
        try:
            sm.ParseFromString((path / "saved_model.pb").read_bytes())
        except Exception as exc:
            raise TfgenError(f"{path}: saved_model.pb is unreadable ({exc})", "export the SavedModel again")
        sigs = {k: v for mg in sm.meta_graphs for k, v in mg.signature_def.items()}
        if signature not in sigs:
            raise TfgenError(f"{path}: no signature {signature!r} (it has {', '.join(sigs) or 'none'})",
                             "export the model with a serving_default signature")
        sig = sigs[signature]
        self.signature = signature
        self._shapes = {}
        for key in sorted(sig.inputs):
            t = sig.inputs[key]
            dims = [d.size for d in t.tensor_shape.dim]
            if not dims or any(d < 0 for d in dims[1:]):
                raise TfgenError(f"{path}: input {key!r} has shape {dims}, not fixed beyond the batch",
                                 "export the model with fixed input shapes")
            self._shapes[t.name.split(":")[0]] = [1, *dims[1:]]
            self.inputs.append(InputSpec(key, tuple(dims[1:]), tf.dtypes.as_dtype(t.dtype).name))

    def converter(self):
        # The TF1 loader reads the graph and its checkpoint without restoring Python objects, so
        # SavedModels written by Keras 2 with optimizer slots load too, and it fixes the batch to 1.
        return import_tensorflow().compat.v1.lite.TFLiteConverter.from_saved_model(
            str(self.path), input_shapes=self._shapes, signature_key=self.signature)


def _clean(name: str) -> str:
    return name.split(":")[0].replace("/", "_") or "input"


def open_source(path: Path) -> _Source:
    path = Path(path)
    if not path.exists():
        raise TfgenError(f"{path}: no such file or directory",
                         "pass a Keras .keras/.h5 file or a SavedModel directory")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise TfgenError(f"{path}: a directory without saved_model.pb",
                             "pass a SavedModel directory or a Keras .keras/.h5 file")
        return _SavedModelSource(path)
    if path.suffix == ".tflite":
        raise TfgenError(f"{path}: already a .tflite model; quantize takes the float Keras/SavedModel",
                         "check it with `tfgen inspect`, or quantize its Keras/SavedModel source")
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise TfgenError(f"{path}: unknown model format {path.suffix or '(no suffix)'}",
                         "pass a Keras .keras/.h5 file or a SavedModel directory")
    return _KerasSource(path)


def _run_converter(src: _Source, conv) -> bytes:
    log: list[str] = []
    try:
        with proc.native_stderr(log):
            return conv.convert()
    except Exception as exc:                # the converter raises its own, undocumented types
        detail = str(exc).strip().splitlines()
        raise TfgenError(f"{src.path}: the TFLite converter failed: {detail[-1] if detail else type(exc).__name__}",
                         "the model may use layers TFLite cannot convert; run with --verbose for the log")


def _float_model(src: _Source) -> bytes:
    """The same graph converted without quantization: the reference the INT8 model is measured by."""
    return _run_converter(src, src.converter())


def _calibrate(src: _Source, calib: list[np.ndarray], opts: Options) -> bytes:
    """The converter's first step: the float model with each activation's min/max recorded."""
    tf = import_tensorflow()
    conv = src.converter()
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    conv._experimental_calibrate_only = True
    n = calib[0].shape[0]
    bar = Progress("calibrating", n) if opts.show_progress else None

    def representative():
        for i in range(n):
            yield [a[i:i + 1] for a in calib]
            if bar:
                bar.step()
    conv.representative_dataset = representative
    try:
        return _run_converter(src, conv)
    finally:
        if bar:
            bar.close()


@dataclass(frozen=True)
class Candidate:
    """One way to quantize the calibrated model."""
    method: str                         # calibration.METHODS
    percentile: float | None = None
    bias_correction: bool = False

    @property
    def label(self) -> str:
        name = f"percentile {self.percentile:g}" if self.method == "percentile" else self.method
        return name + (" + bias correction" if self.bias_correction else "")

    def build(self, calibrated: bytes, observed: dict, per_channel: bool) -> tuple[bytes, int]:
        """The full-INT8 model, and how many layers had their bias corrected."""
        adjusted = calibrated if self.method == "minmax" else calibration.with_ranges(
            calibrated, calibration.choose_ranges(calibrated, observed, self.method,
                                                  self.percentile or calibration.DEFAULT_PERCENTILE))
        model = calibration.quantize_calibrated(adjusted, per_channel)
        if self.bias_correction:
            return calibration.correct_bias(model, calibrated, observed)
        return model, 0


def _checked(model: bytes, model_path: Path) -> ModelIR:
    ir = parse_model(model, Path(model_path).stem + ".tflite")
    problems = firmware_problems(ir, full_int8=True)
    if problems:
        raise TfgenError(f"{model_path}: the converted model cannot run as full-INT8 TFLM firmware: "
                         f"{'; '.join(problems)}",
                         "replace the layers named here with ones TFLite quantizes to int8")
    return ir


class _Scorer:
    """Output SQNR of INT8 candidates against the float model on fixed rows, run by TFLM."""

    def __init__(self, float_model: bytes, rows: list[np.ndarray]):
        self.rows = rows
        self.reference = _run_float(float_model, rows)
        self.arena: int | None = None

    def outputs(self, ir: ModelIR, model: bytes) -> list[np.ndarray]:
        """The INT8 model's outputs on the rows, dequantized, shaped like the float outputs."""
        if self.arena is None:                  # ranges and biases do not change the arena
            self.arena = oracle.measure_arena(ir, model).min_bytes
        raw_in = [numerics.quantize(a.reshape((a.shape[0],) + t.shape), t.quantization.scales[0],
                                    t.quantization.zero_points[0], t.dtype)
                  for a, t in zip(self.rows, ir.inputs)]
        raw_out = oracle.run_tflm(ir, model, raw_in, self.arena)
        return [numerics.dequantize(q, t.quantization.scales[0], t.quantization.zero_points[0]).reshape(f.shape)
                for q, t, f in zip(raw_out, ir.outputs, self.reference)]

    def sqnr(self, ir: ModelIR, model: bytes) -> float:
        """Mean over the outputs of their SQNR in dB."""
        return float(np.mean([numerics.sqnr_db(f, q) for f, q in zip(self.reference, self.outputs(ir, model))]))


def _auto_candidates(opts: Options) -> list[Candidate]:
    """Every range method, and each with and without bias correction (or as --bias-correction says)."""
    percentiles = sorted({*AUTO_PERCENTILES, opts.percentile})
    ranges = [("minmax", None)] + [("percentile", p) for p in percentiles] + [("mse", None)]
    corrections = (False, True) if opts.bias_correction is None else (bool(opts.bias_correction),)
    return [Candidate(m, p, bc) for bc in corrections for m, p in ranges]


def _auto(calibrated: bytes, observed: dict, opts: Options, scorer: _Scorer, model_path: Path,
          rows_note: str) -> tuple[bytes, ModelIR, Candidate, int, dict]:
    """Try every candidate; keep the best output SQNR on the selection rows (minmax on a tie)."""
    tried = []
    best = None
    candidates = _auto_candidates(opts)
    bar = Progress("trying calibrations", len(candidates)) if opts.show_progress else None
    try:
        for cand in candidates:
            if bar:
                bar.step()
            model, corrected = cand.build(calibrated, observed, opts.per_channel)
            if cand.bias_correction and corrected == 0 and opts.bias_correction is None:
                continue                        # nothing to correct: the model without was tried
            ir = _checked(model, model_path)
            score = scorer.sqnr(ir, model)
            tried.append({"method": cand.label, "sqnr_db": score})
            if best is None or score > best[0]:
                best = (score, model, ir, cand, corrected)
    finally:
        if bar:
            bar.close()
    score, model, ir, cand, corrected = best
    minmax = next((t["sqnr_db"] for t in tried if t["method"] == "minmax"), None)
    summary = {"chosen": cand.label, "selected_on": rows_note, "sqnr_db": score,
               "gain_db_over_minmax": None if minmax is None else (0.0 if score == minmax else score - minmax),
               "candidates": tried}
    return model, ir, cand, corrected, summary


def quantize(model_path: Path, calib_path: Path, opts: Options = Options(),
             eval_path: Path | None = None, labels_path: Path | None = None) -> Result:
    src = open_source(model_path)
    data = dataset.load(calib_path, src.inputs, opts.image_range)
    n = data[0].shape[0]
    auto = opts.calibration == "auto"
    # auto selects on held-out rows of the calibration data, also when --eval is given: the
    # evaluation data then stays unseen by every choice.
    held = 0 if n < 5 or (eval_path and not auto) else max(1, int(round(n * opts.holdout)))
    calib = [a[: n - held][: opts.calib_samples] for a in data]
    held_rows = [a[n - held:][:MAX_EVAL_ROWS] for a in data] if held else None
    calibrated = _calibrate(src, calib, opts)
    needs_values = auto or opts.calibration != "minmax" or opts.bias_correction
    observed = calibration.observe(calibrated, calib) if needs_values else {}
    float_model = _float_model(src)
    if eval_path:
        evaluation = dataset.load(eval_path, src.inputs, opts.image_range, what="evaluation data")
        eval_note = str(eval_path)
    elif held:
        evaluation = held_rows
        eval_note = f"{held} held-out rows of {calib_path}"
    else:
        evaluation = calib
        eval_note = f"the {n} calibration rows (too few to hold any out)"
    evaluation = [a[:MAX_EVAL_ROWS] for a in evaluation]
    scorer = _Scorer(float_model, evaluation)
    auto_summary = None
    if auto:
        selection = held_rows or [a[:MAX_EVAL_ROWS] for a in calib]
        selector = _Scorer(float_model, selection) if eval_path else scorer   # else: the same rows
        rows_note = (f"{held} held-out rows of {calib_path}" if held
                     else f"the {n} calibration rows (too few to hold any out)")
        model, ir, chosen, corrected, auto_summary = _auto(calibrated, observed, opts, selector,
                                                           model_path, rows_note)
        scorer.arena = selector.arena
    else:
        chosen = Candidate(opts.calibration, opts.percentile if opts.calibration == "percentile" else None,
                           bool(opts.bias_correction))
        model, corrected = chosen.build(calibrated, observed, opts.per_channel)
        ir = _checked(model, model_path)
    labels = _labels(labels_path, evaluation[0].shape[0]) if labels_path else None
    quality = _quality(scorer, model, ir, labels)
    report = {
        "source": str(model_path), "loaded_with": src.loaded_with or None,
        "output_sha256": ir.sha256, "size_bytes": ir.size_bytes,
        "per_channel": opts.per_channel,
        "calibration": {"data": str(calib_path), "samples": calib[0].shape[0], "method": chosen.label,
                        "bias_corrected_layers": corrected},
        "evaluation": {"data": eval_note, "samples": evaluation[0].shape[0],
                       "labels": str(labels_path) if labels_path else None},
        "ops": [u.name for u in ir.ops],
        "outputs": [q.__dict__ for q in quality],
    }
    if auto_summary:
        report["auto"] = auto_summary
    if opts.report_layers:
        rows = [a[:layer_error.rows_for(ir)] for a in calib]
        report["layers"] = layer_error.report(ir, model, calibrated, rows, scorer.arena)
        report["layers_on"] = f"{rows[0].shape[0]} calibration rows of {calib_path}"
    return Result(model, ir, report)


def _labels(path: Path, rows: int) -> np.ndarray:
    try:
        y = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise TfgenError(f"{path}: not a readable .npy file ({exc})", "save the labels with numpy.save")
    if y.ndim == 2:
        y = y.argmax(axis=1)                # one-hot
    if y.ndim != 1 or y.shape[0] < rows:
        raise TfgenError(f"{path}: {y.shape} labels for {rows} evaluation samples",
                         "give one class index (or one-hot row) per evaluation sample")
    return y[:rows].astype(np.int64)


def _quality(scorer: _Scorer, model: bytes, ir: ModelIR, labels: np.ndarray | None) -> list[OutputQuality]:
    result = []
    for k, (f, deq, t) in enumerate(zip(scorer.reference, scorer.outputs(ir, model), ir.outputs)):
        acc_f = acc_q = None
        if labels is not None and k == 0 and f.reshape(f.shape[0], -1).shape[1] > 1:
            acc_f = float(np.mean(f.reshape(f.shape[0], -1).argmax(1) == labels))
            acc_q = float(np.mean(deq.reshape(deq.shape[0], -1).argmax(1) == labels))
        result.append(OutputQuality(t.name, numerics.sqnr_db(f, deq), numerics.cosine(f, deq),
                                    float(np.max(np.abs(f - deq))), acc_f, acc_q))
    return result


def _run_float(model: bytes, data: list[np.ndarray]) -> list[np.ndarray]:
    """The float reference: the same graph, converted without quantization, run by TFLite."""
    import_tensorflow()
    shaped = [a[:, None] for a in data]            # (N, 1, *sample): one batch-1 tensor per vector
    return run_tflite(model, shaped, "BUILTIN_WITHOUT_DEFAULT_DELEGATES")
