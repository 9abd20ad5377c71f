"""The commands about a model: quantize, inspect, reference, fit, and the boards list."""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from codegen.cli.output import Command, check_output, emit, input_options, kernel_options, load_ir, read_inputs
from codegen.errors import DoesNotFit, TfgenError
from codegen.project.render import write_atomic
from codegen.quantize.calibration import CHOICES as CALIBRATIONS, DEFAULT_PERCENTILE


class Quantize(Command):
    name = "quantize"
    help = "Keras (.keras/.h5) or SavedModel -> checked full-INT8 .tflite, with a quality report"

    def add_arguments(self, p):
        p.add_argument("model", type=Path, help="Keras .keras/.h5 file or SavedModel directory")
        p.add_argument("--calib", type=Path, required=True, metavar="DATA",
                       help="representative data: .npy, .npz (one array per input), .csv or an image folder")
        p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.tflite")
        p.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor, not per channel")
        p.add_argument("--calib-samples", type=int, default=500, metavar="N",
                       help="use at most N calibration samples (default 500)")
        p.add_argument("--eval", type=Path, metavar="X", help="evaluation data (default: 20%% of DATA held out)")
        p.add_argument("--labels", type=Path, metavar="Y.npy", help="class labels of the evaluation data")
        p.add_argument("--image-range", default="0,1", metavar="LO,HI",
                       help="pixel range images are scaled to (default 0,1)")
        p.add_argument("--calibration", choices=CALIBRATIONS, default="auto",
                       help="activation ranges: minmax (the converter's), percentile, mse, or auto (default: "
                            "tries them, with and without bias correction, and keeps the best output SQNR "
                            "on held-out rows; never worse than minmax there)")
        p.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE, metavar="P",
                       help=f"for --calibration percentile: keep the P and 100-P percentiles (default "
                            f"{DEFAULT_PERCENTILE:g})")
        p.add_argument("--bias-correction", action=argparse.BooleanOptionalAction, default=None,
                       help="correct conv/FC biases for the mean error of their int8 weights (default: "
                            "off, except where auto finds it helps)")
        p.add_argument("--report-layers", action="store_true",
                       help="per-layer SQNR and max error against the float model, the worst layers first")
        p.add_argument("--json", action="store_true", help="print the report as JSON")
        p.add_argument("--force", action="store_true", help="overwrite OUT.tflite if it exists")

    def run(self, args):
        from codegen.quantize import quantize
        from codegen.cli.textreport import quantize_text
        check_output(args.output, args.force)
        if args.labels and not args.eval:
            raise TfgenError("--labels needs --eval: labels describe the evaluation data",
                             "pass --eval X.npy --labels y.npy")
        if args.calib_samples < 1:
            raise TfgenError(f"--calib-samples {args.calib_samples}: must be at least 1", "pass e.g. 500")
        if not 50.0 < args.percentile < 100.0:
            raise TfgenError(f"--percentile {args.percentile:g}: must be above 50 and below 100",
                             f"pass e.g. {DEFAULT_PERCENTILE:g}")
        opts = quantize.Options(per_channel=not args.per_tensor, calib_samples=args.calib_samples,
                                image_range=_range(args.image_range),
                                show_progress=not args.json or sys.stderr.isatty(),
                                calibration=args.calibration, percentile=args.percentile,
                                bias_correction=args.bias_correction, report_layers=args.report_layers)
        result = quantize.quantize(args.model, args.calib, opts, args.eval, args.labels)
        write_atomic(args.output, result.model)
        report = {**result.report, "output": str(args.output)}
        emit(report, args.json, quantize_text)
        return 0


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise TfgenError(f"--image-range {text!r}: expected two numbers LO,HI", "e.g. --image-range -1,1")
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise TfgenError(f"--image-range {text!r}: need finite LO < HI", "e.g. --image-range 0,1")
    return lo, hi


class Inspect(Command):
    name = "inspect"
    help = "ops, tensors, quantization, sizes, MACs and measured arena of a .tflite model"

    def add_arguments(self, p):
        p.add_argument("model", type=Path, help=".tflite model")
        p.add_argument("--json", action="store_true", help="print JSON")
        p.add_argument("--no-arena", action="store_true", help="skip measuring the tensor arena")
        p.add_argument("--allow-float", action="store_true",
                       help="report on float/hybrid models instead of refusing them")

    def run(self, args):
        from codegen.model import inspection
        from codegen.oracle import oracle
        from codegen.cli.textreport import inspect_text
        model, ir = load_ir(args.model)
        if not args.allow_float:
            inspection.require_tflm_int8(ir)
        summary = inspection.summary(ir)
        if not args.no_arena and not ir.unsupported_ops:
            summary["arena"] = oracle.measure_arena(ir, model).to_dict()
        summary["oracle"] = f"tflite_micro {oracle.tflm_version()}"
        emit(summary, args.json, inspect_text)
        return 0


class Reference(Command):
    name = "reference"
    help = "run a model in TFLM's interpreter (the oracle) and write test vectors for the firmware"

    def add_arguments(self, p):
        p.add_argument("model", type=Path, help="full-INT8 .tflite model")
        input_options(p)
        p.add_argument("-o", "--output", type=Path, required=True, metavar="VECTORS",
                       help="vector file to write (format: see README)")
        p.add_argument("--no-crosscheck", action="store_true", help="skip the TFLite reference-kernel cross-check")
        p.add_argument("--json", action="store_true", help="print the report as JSON")
        p.add_argument("--force", action="store_true", help="overwrite VECTORS if it exists")

    def run(self, args):
        from codegen.model import inspection, vectors
        from codegen.oracle import oracle, reference
        from codegen.cli.textreport import reference_text
        check_output(args.output, args.force)
        model, ir = load_ir(args.model)
        inspection.require_tflm_int8(ir)
        inputs = read_inputs(args, ir)
        ref = reference.run_reference(ir, model, inputs, crosscheck=not args.no_crosscheck)
        write_atomic(args.output, vectors.encode(ref.vectors))
        report = {"output": str(args.output), "model": str(args.model), "vectors": ref.vectors.count,
                  "input_bytes": sum(a.nbytes for a in ref.vectors.input_data),
                  "output_bytes": sum(a.nbytes for a in ref.vectors.output_data),
                  "oracle": oracle.tflm_version(), "arena": ref.arena.to_dict(),
                  "crosscheck": ref.crosscheck.to_dict() if ref.crosscheck else None}
        emit(report, args.json, reference_text)
        return 0


class Fit(Command):
    name = "fit"
    help = "does a model fit the boards? flash and RAM needed against each board's limits, before any build"

    def add_arguments(self, p):
        p.add_argument("model", type=Path, help="full-INT8 .tflite model")
        p.add_argument("--board", metavar="B",
                       help="check only board B; exit status 1 when the model does not fit it")
        p.add_argument("--boards-dir", type=Path, metavar="DIR", help="add (or override) boards from DIR/*.toml")
        kernel_options(p, sources=False)
        p.add_argument("--json", action="store_true", help="print JSON")

    def run(self, args):
        from codegen.project import boards, fit
        from codegen.model import inspection
        from codegen.oracle import oracle
        if args.board:
            chosen = [boards.get_board(args.board, args.boards_dir)]
        else:
            chosen = list(boards.load_boards(args.boards_dir).values())
        model, ir = load_ir(args.model)
        inspection.require_tflm_int8(ir)
        arena = oracle.measure_arena(ir, model)
        rows = fit.fit(ir, arena.min_bytes, chosen, kernels=args.kernels)
        report = {"model": str(args.model), "size_bytes": ir.size_bytes, "ops": [o.name for o in ir.ops],
                  "arena": arena.to_dict(), **fit.fit_to_dict(rows)}
        from codegen.cli.textreport import format_fit_table
        emit(report, args.json, lambda r: (
            f"model  {args.model.name}: {ir.size_bytes:,} bytes, ops {', '.join(r['ops'])}, "
            f"arena {arena.min_bytes:,} bytes measured on the 64-bit host\n\n" + format_fit_table(rows)))
        if args.board and not rows[0].fits:
            raise DoesNotFit(f"{ir.source} does not fit {rows[0].board}: {rows[0].verdict()}",
                             "pick a board with more memory (`tfgen fit MODEL` compares them all) or "
                             "make the model smaller")
        return 0


class Boards(Command):
    name = "boards"
    help = "list the boards tfgen knows: flash, RAM, core, kernels, arena placement"

    def add_arguments(self, p):
        p.add_argument("--boards-dir", type=Path, metavar="DIR", help="add (or override) boards from DIR/*.toml")
        p.add_argument("--json", action="store_true", help="print JSON")

    def run(self, args):
        from codegen.project import boards
        known = boards.load_boards(args.boards_dir)
        emit({"boards": [boards.board_to_dict(b) for b in known.values()]}, args.json,
             lambda _: boards.format_board_table(known))
        return 0
