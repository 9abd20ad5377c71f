"""The `tfgen` command line. The only layer that writes files or prints.

Every command is a class with ``add_arguments`` and ``run``. A ``TfgenError`` becomes one line on
stderr, ``error: WHAT (try: FIX)``, and exit status 2 (1 for "does not fit");
tracebacks appear only with --verbose.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
import warnings
from pathlib import Path

from codegen import __version__
from codegen.quantize.calibration import CHOICES as CALIBRATIONS, DEFAULT_PERCENTILE
from codegen.errors import DoesNotFit, TfgenError


def _json_default(v):
    if isinstance(v, Path):
        return str(v)
    raise TypeError(type(v).__name__)


def _clean_floats(v):
    """JSON has no inf/nan: write them as strings."""
    if isinstance(v, float) and not math.isfinite(v):
        return "inf" if v > 0 else ("-inf" if v < 0 else "nan")
    if isinstance(v, dict):
        return {k: _clean_floats(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean_floats(x) for x in v]
    return v


def emit(report: dict, as_json: bool, text) -> None:
    """Print a command's report: JSON for machines, ``text(report)`` for people."""
    if as_json:
        print(json.dumps(_clean_floats(report), indent=2, default=_json_default))
    else:
        print(text(report))


def check_output(path: Path, force: bool) -> None:
    """Refuse to overwrite a user's file without --force, before any work is done."""
    if path.is_dir():
        raise TfgenError(f"{path}: is a directory, expected an output file path", "name a file")
    if path.exists() and not force:
        raise TfgenError(f"{path}: already exists", "pass --force to overwrite it, or choose another -o")
    if not path.parent.is_dir():
        raise TfgenError(f"{path.parent}: no such directory for the output", "create it first")
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise TfgenError(f"{path}: no permission to write it", "choose a writable -o")


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a failure never leaves half a file behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Command:
    name = ""
    help = ""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


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


def _load_ir(path: Path):
    from codegen.model.inspection import load_model_bytes, parse_model
    model = load_model_bytes(path)
    return model, parse_model(model, path.name)


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
        model, ir = _load_ir(args.model)
        if not args.allow_float:
            inspection.require_tflm_int8(ir)
        summary = inspection.summary(ir)
        if not args.no_arena and not ir.unsupported_ops:
            summary["arena"] = oracle.measure_arena(ir, model).to_dict()
        summary["oracle"] = f"tflite_micro {oracle.tflm_version()}"
        emit(summary, args.json, inspect_text)
        return 0


DEFAULT_VECTORS = 100


def _input_options(p) -> None:
    """The inputs the oracle runs on: N random vectors, or a file (for reference and verify)."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--vectors", type=int, default=None, metavar="N",
                     help=f"N random input vectors (default {DEFAULT_VECTORS})")
    src.add_argument("--inputs", type=Path, metavar="X.npy",
                     help="inputs: raw int8, or floats to quantize (.npz for several inputs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random vectors (default 0)")


def _inputs(args, ir) -> list:
    from codegen.oracle import reference
    if args.inputs:
        return reference.inputs_from_file(ir, args.inputs)
    return reference.random_inputs(ir, DEFAULT_VECTORS if args.vectors is None else args.vectors, args.seed)


class Reference(Command):
    name = "reference"
    help = "run a model in TFLM's interpreter (the oracle) and write test vectors for the firmware"

    def add_arguments(self, p):
        p.add_argument("model", type=Path, help="full-INT8 .tflite model")
        _input_options(p)
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
        model, ir = _load_ir(args.model)
        inspection.require_tflm_int8(ir)
        inputs = _inputs(args, ir)
        ref = reference.run_reference(ir, model, inputs, crosscheck=not args.no_crosscheck)
        write_atomic(args.output, vectors.encode(ref.vectors))
        report = {"output": str(args.output), "model": str(args.model), "vectors": ref.vectors.count,
                  "input_bytes": sum(a.nbytes for a in ref.vectors.input_data),
                  "output_bytes": sum(a.nbytes for a in ref.vectors.output_data),
                  "oracle": oracle.tflm_version(), "arena": ref.arena.to_dict(),
                  "crosscheck": ref.crosscheck.to_dict() if ref.crosscheck else None}
        emit(report, args.json, reference_text)
        return 0


class Generate(Command):
    name = "generate"
    help = "a complete PlatformIO project for a board: model array, op resolver, arena, harness"

    def add_arguments(self, p):
        p.add_argument("model", type=Path, help="full-INT8 .tflite model")
        p.add_argument("--board", required=True, help="board name (see `tfgen boards`)")
        p.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="project directory")
        p.add_argument("--vectors", type=Path, metavar="FILE.tfgv",
                       help="test vectors from `tfgen reference` to embed for the test mode")
        p.add_argument("--tflm-dir", type=Path, metavar="DIR",
                       help="TFLM source tree (default: $TFGEN_TFLM_DIR, else the cached or downloaded "
                            "pinned esp-tflite-micro); ESP32 boards can do without")
        p.add_argument("--boards-dir", type=Path, metavar="DIR", help="add (or override) boards from DIR/*.toml")
        _kernel_options(p)
        p.add_argument("--arena-from", type=int, metavar="BYTES",
                       help="size the arena from this measured figure (e.g. the 32-bit arena `tfgen verify "
                            "--board mps2_an386` reports) instead of the 64-bit host measurement; the margin "
                            "is added")
        p.add_argument("--force", action="store_true", help="replace DIR if it exists and is not empty")
        p.add_argument("--json", action="store_true", help="print the summary as JSON")

    def run(self, args):
        import shlex
        from codegen.project import boards, plan, render
        from codegen.oracle import oracle
        from codegen.toolchain import tflm_tree
        from codegen.model import vectors
        from codegen.cli.textreport import generate_text
        out = args.output
        render.check_output_dir(out, args.force)
        board = boards.get_board(args.board, args.boards_dir)
        model, ir = _load_ir(args.model)
        from codegen.model.inspection import require_tflm_int8
        require_tflm_int8(ir)
        # ESP32 projects get TFLM from the ESP-IDF component; a tree adds the `sim` environment.
        if plan.template_kind(board) == "espidf":
            tree = tflm_tree.available(args.tflm_dir)
        else:
            tree = tflm_tree.resolve(args.tflm_dir)
        blob, count = None, 0
        if args.vectors:
            vs = vectors.read(args.vectors)
            if vs.model_sha256 != ir.sha256:
                raise TfgenError(f"{args.vectors}: test vectors of another model (sha256 {vs.model_sha256[:12]}..., "
                                 f"{args.model.name} is {ir.sha256[:12]}...)",
                                 f"write them for this model: tfgen reference {args.model} -o FILE")
            blob, count = args.vectors.read_bytes(), vs.count
        if args.arena_from is not None:
            if not 1 <= args.arena_from <= (1 << 30):
                raise TfgenError(f"--arena-from {args.arena_from}: must be a number of bytes from 1 to 1 GiB",
                                 "pass the arena_used figure of `tfgen verify`")
            measured = args.arena_from
        else:
            measured = oracle.measure_arena(ir, model).min_bytes
        command = shlex.join(["tfgen", "generate", args.model.name, "--board", board.name, "-o", out.name]
                             + (["--vectors", args.vectors.name] if args.vectors else [])
                             + (["--arena-from", str(args.arena_from)] if args.arena_from else []))
        source = ("given with --arena-from, e.g. the 32-bit figure of `tfgen verify`" if args.arena_from
                  else plan.HOST_ARENA)
        from codegen.toolchain import cmsis_nn
        from codegen.project import fit
        warning = fit.check_before_generate(ir, board, measured, args.kernels, len(blob) if blob else 0)
        cmsis, note = cmsis_nn.choose(board.kernels, args.cmsis_nn_dir, args.kernels) if tree else (None, None)
        project = plan.make_plan(ir, board, measured, tree, count, command, source, cmsis=cmsis)
        files = render.render_project(project, board, model, blob)
        render.write_project(files, out, args.force)
        report = {"project": str(out), "board": board.name, "kind": project.kind, "files": len(files),
                  "ops": list(project.op_names), "arena_measured": project.arena_measured,
                  "arena_size": project.arena_size, "arena_placement": project.arena_placement,
                  "arena_basis": "--arena-from" if args.arena_from else "64-bit host",
                  "tflm": project.tflm_version, "vectors": count,
                  "environments": _environments(project),
                  "kernels": project.kernels + (f" ({project.cmsis_nn_version})" if project.cmsis_nn_version else ""),
                  "optimized_ops": list(project.optimized_ops),
                  "notes": [n for n in (warning, note) if n]}
        emit(report, args.json, generate_text)
        return 0


def _kernel_options(p, sources: bool = True) -> None:
    """--kernels, and with ``sources`` (commands that build) --cmsis-nn-dir."""
    p.add_argument("--kernels", choices=("reference", "cmsis-nn"), default=None,
                   help="TFLM's reference kernels, or CMSIS-NN on Cortex-M boards (default: the board's"
                        + (", cmsis-nn when a CMSIS-NN setup is available)" if sources else
                           "; the code sizes of each are in tfgen's table, no CMSIS-NN setup is needed)"))
    if not sources:
        return
    p.add_argument("--cmsis-nn-dir", type=Path, metavar="DIR",
                   help="CMSIS-NN setup: DIR/CMSIS-NN/ and DIR/tflite-micro/ (default: $TFGEN_CMSIS_NN_DIR, else "
                        "the cached or downloaded pinned archives)")


def _environments(project) -> list[str]:
    envs = [project.env_name] if project.kind in ("espidf", "arduino") else []
    if project.tflm_files:
        envs.append("sim")
        if project.has_qemu_env:
            envs.append("qemu")
    return envs


class Verify(Command):
    name = "verify"
    help = "build the firmware for host or QEMU, run test vectors, compare with the oracle byte for byte"

    def add_arguments(self, p):
        p.add_argument("model", type=Path, help="full-INT8 .tflite model")
        p.add_argument("--board", required=True, choices=("host", "mps2_an386"),
                       help="host (native simulation) or mps2_an386 (Cortex-M4F in QEMU)")
        _input_options(p)
        p.add_argument("--tflm-dir", type=Path, metavar="DIR", help="TFLM source tree (default: $TFGEN_TFLM_DIR)")
        _kernel_options(p)
        p.add_argument("--per-op", action="store_true",
                       help="also compare every op's outputs (on the first mismatching vector, else vector 0) "
                            "and name the first op that diverges")
        p.add_argument("--json", action="store_true", help="print the report as JSON")

    def run(self, args):
        import shlex
        from codegen.project import boards
        from codegen.run import verify
        from codegen.model.inspection import require_tflm_int8
        from codegen.cli.textreport import verify_text
        model, ir = _load_ir(args.model)
        require_tflm_int8(ir)
        board = boards.get_board(args.board)
        inputs = _inputs(args, ir)
        command = shlex.join(["tfgen", "verify", args.model.name, "--board", board.name])
        prep, result = verify.verify(ir, model, board, inputs, args.tflm_dir, command,
                                     cmsis_nn_dir=args.cmsis_nn_dir, kernels=args.kernels)
        try:
            report = result.to_dict()
            if args.per_op:
                first = result.comparison.differences
                report["per_op"] = verify.per_op(prep, first[0].vector if first else 0).to_dict()
        finally:
            if not result.ok:                               # kept to look into; a pass leaves nothing
                report["notes"].append(f"the project and its firmware are kept in {prep.project}")
            else:
                verify.cleanup(prep)
        emit(report, args.json, verify_text)
        return 0 if result.ok else 1


class Build(Command):
    name = "build"
    help = "quantize (if needed), generate and build for a board; flash and RAM from the ELF vs its limits"

    def add_arguments(self, p):
        p.add_argument("model", type=Path,
                       help=".tflite model, Keras .keras/.h5 or SavedModel (with --calib), or a generated project")
        p.add_argument("--board", required=True, help="board name (see `tfgen boards`)")
        p.add_argument("-o", "--output", type=Path, metavar="DIR",
                       help="project directory (default: build/<model>-<board>)")
        p.add_argument("--calib", type=Path, metavar="DATA", help="calibration data for a float model")
        p.add_argument("--tflm-dir", type=Path, metavar="DIR", help="TFLM source tree")
        p.add_argument("--boards-dir", type=Path, metavar="DIR", help="add (or override) boards from DIR/*.toml")
        _kernel_options(p)
        p.add_argument("--force", action="store_true", help="regenerate DIR if it exists")
        p.add_argument("--json", action="store_true", help="print the report as JSON")

    def run(self, args):
        from codegen.project import boards
        from codegen.run import build
        from codegen.cli.textreport import build_text
        board = boards.get_board(args.board, args.boards_dir)
        if (args.model / "platformio.ini").is_file() and (args.model / "src" / "tfgen_model.h").is_file():
            project = args.model                        # a generated project: build it as it is
        else:
            from codegen.project import render
            project = args.output or Path("build") / f"{args.model.stem}-{board.name}"
            if project.is_dir() and any(project.iterdir()) and not args.force:
                raise TfgenError(f"{project}: directory exists and is not empty",
                                 f"pass --force to regenerate it, or build it as it is: "
                                 f"tfgen build {project} --board {board.name}")
            if args.output is None:
                Path("build").mkdir(exist_ok=True)
            render.check_output_dir(project, args.force)
            model_path = self._int8_model(args, project)
            gen = ["generate", str(model_path), "--board", board.name, "-o", str(project), "--force"]
            for opt in ("tflm_dir", "boards_dir", "kernels", "cmsis_nn_dir"):
                if getattr(args, opt):
                    gen += [f"--{opt.replace('_', '-')}", str(getattr(args, opt))]
            gen_args = build_parser().parse_args(gen)
            with _quiet():
                gen_args.handler.run(gen_args)
        firmware = build.build_project(project, board)
        report = build.fit_report(project, board, firmware)
        emit(report, args.json, build_text)
        if not report["fits"]:
            raise DoesNotFit(f"{board.name}: the firmware does not fit ({report['verdict']})",
                             "use a smaller model, or a board with more flash/RAM (tfgen fit lists them)")
        return 0

    @staticmethod
    def _int8_model(args, project: Path) -> Path:
        """The model as full-INT8 .tflite: as given, or quantized next to the project."""
        if args.model.suffix == ".tflite":
            return args.model
        if not args.calib:
            raise TfgenError(f"{args.model}: a float model needs calibration data to become INT8",
                             "pass --calib DATA (.npy/.npz/.csv/image folder), or a full-INT8 .tflite")
        from codegen.quantize import quantize
        out = project.parent / f"{args.model.stem}_int8.tflite"
        check_output(out, force=True)
        result = quantize.quantize(args.model, args.calib, quantize.Options(show_progress=sys.stderr.isatty()))
        write_atomic(out, result.model)
        r = result.report
        sqnr = ", ".join(f"{o['sqnr_db']:.1f}" for o in r["outputs"])
        loaded = f" (read with {r['loaded_with'].split(':')[0]})" if r.get("loaded_with") else ""
        print(f"quantized  {args.model}{loaded} -> {out}: {r['calibration']['method']}; output SQNR {sqnr} dB on "
              f"{r['evaluation']['data']} (details: tfgen quantize --report-layers)", file=sys.stderr)
        return out


def _quiet():
    import contextlib
    import io
    return contextlib.redirect_stdout(io.StringIO())


class Flash(Command):
    name = "flash"
    help = "upload a built project to the board (pio run -t upload)"

    def add_arguments(self, p):
        p.add_argument("project", type=Path, help="generated project directory")
        p.add_argument("--board", required=True, help="the board (its PlatformIO environment)")
        p.add_argument("--port", help="serial port (default: PlatformIO's detection)")

    def run(self, args):
        from codegen.run import build
        _require_project(args.project)
        extra = ["--upload-port", args.port] if args.port else []
        return build.run_pio(args.project, ["run", "-e", args.board, "-t", "upload", *extra], interactive=True)


class Monitor(Command):
    name = "monitor"
    help = "watch the board's serial output (pio device monitor)"

    def add_arguments(self, p):
        p.add_argument("project", type=Path, help="generated project directory")
        p.add_argument("--port", help="serial port (default: PlatformIO's detection)")

    def run(self, args):
        from codegen.run import build
        _require_project(args.project)
        extra = ["--port", args.port] if args.port else []
        return build.run_pio(args.project, ["device", "monitor", "-d", str(args.project), *extra],
                             interactive=True)


def _require_project(path: Path) -> None:
    if not (path / "platformio.ini").is_file():
        raise TfgenError(f"{path}: not a generated project (no platformio.ini)",
                         "pass the directory `tfgen generate` or `tfgen build` wrote")


class Fit(Command):
    name = "fit"
    help = "does a model fit the boards? flash and RAM needed against each board's limits, before any build"

    def add_arguments(self, p):
        p.add_argument("model", type=Path, help="full-INT8 .tflite model")
        p.add_argument("--board", metavar="B",
                       help="check only board B; exit status 1 when the model does not fit it")
        p.add_argument("--boards-dir", type=Path, metavar="DIR", help="add (or override) boards from DIR/*.toml")
        _kernel_options(p, sources=False)
        p.add_argument("--json", action="store_true", help="print JSON")

    def run(self, args):
        from codegen.project import boards, fit
        from codegen.model import inspection
        from codegen.oracle import oracle
        if args.board:
            chosen = [boards.get_board(args.board, args.boards_dir)]
        else:
            chosen = list(boards.load_boards(args.boards_dir).values())
        model, ir = _load_ir(args.model)
        inspection.require_tflm_int8(ir)
        arena = oracle.measure_arena(ir, model)
        rows = fit.fit(ir, arena.min_bytes, chosen, kernels=args.kernels)
        report = {"model": str(args.model), "size_bytes": ir.size_bytes, "ops": [o.name for o in ir.ops],
                  "arena": arena.to_dict(), **fit.fit_to_dict(rows)}
        emit(report, args.json, lambda r: (
            f"model  {args.model.name}: {ir.size_bytes:,} bytes, ops {', '.join(r['ops'])}, "
            f"arena {arena.min_bytes:,} bytes measured on the 64-bit host\n\n" + fit.format_fit_table(rows)))
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


COMMANDS: tuple[type[Command], ...] = (Quantize, Inspect, Reference, Generate, Verify, Build, Flash,
                                       Monitor, Fit, Boards)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfgen", description=__doc__.splitlines()[0].rstrip("."))
    parser.add_argument("--version", action="version", version=f"tfgen {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log commands; tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for cls in COMMANDS:
        cmd = cls()
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.add_arguments(p)
        p.set_defaults(handler=cmd)
    return parser


def _interrupted(signum, frame):
    from codegen.toolchain import proc
    proc.stop_children()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    # A path that is not valid UTF-8 (a surrogate-escaped file name) is printed escaped, never a crash.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    # Our own log at DEBUG with --verbose; TensorFlow's Python loggers only for real errors.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.ERROR, format="tfgen: %(message)s")
    logging.getLogger("tfgen").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    if not args.verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        warnings.filterwarnings("ignore")
    import signal
    signal.signal(signal.SIGTERM, _interrupted)         # as Ctrl-C: children ended, temporaries removed
    try:
        return args.handler.run(args)
    except TfgenError as exc:
        if args.verbose:
            logging.exception("failed")
        print(f"error: {exc.message}" + (f" (try: {exc.hint})" if exc.hint else ""), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        from codegen.toolchain import proc
        proc.stop_children()
        print("error: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        if args.verbose:
            logging.exception("failed")
        print("error: out of memory (try: a smaller model or fewer --vectors)", file=sys.stderr)
        return 2
    except OSError as exc:              # an output path that cannot be written, a full disk, ...
        if args.verbose:
            logging.exception("failed")
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc} (try: check the path's permissions and free space)",
              file=sys.stderr)
        return 2
    except BrokenPipeError:                 # `tfgen ... | head`: the reader left; so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
