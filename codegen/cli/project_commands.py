"""The commands about a project: generate, verify, build, flash, monitor."""
from __future__ import annotations

import sys
from pathlib import Path

from codegen.cli.onboard_command import add_port_options, check_port_options, run_on_board
from codegen.cli.output import (Command, check_output, checked_model_board_inputs, emit, input_options,
                               kernel_options, load_ir)
from codegen.errors import DoesNotFit, TfgenError
from codegen.project.render import write_atomic


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
        kernel_options(p)
        p.add_argument("--arena-from", type=int, metavar="BYTES",
                       help="size the arena from this measured figure (e.g. the 32-bit arena `tfgen verify "
                            "--board mps2_an386` reports) instead of the 64-bit host measurement; the margin "
                            "is added")
        p.add_argument("--force", action="store_true", help="replace DIR if it exists and is not empty")
        p.add_argument("--json", action="store_true", help="print the summary as JSON")

    def run(self, args):
        from codegen.cli.textreport import generate_text
        from codegen.project import boards, generate, render
        render.check_output_dir(args.output, args.force)
        board = boards.get_board(args.board, args.boards_dir)
        model, ir = load_ir(args.model)
        gen = generate.generate(ir, model, board, generation_options(args, args.output, vectors_file=args.vectors,
                                                                     arena_from=args.arena_from))
        render.write_project(gen.files, args.output, args.force)
        emit({"project": str(args.output), **gen.report}, args.json, generate_text)
        return 0


def generation_options(args, out: Path, **more):
    """generate's options from the flags `generate` and `build` share."""
    from codegen.project.generate import Options
    return Options(output_name=out.name, tflm_dir=args.tflm_dir, cmsis_nn_dir=args.cmsis_nn_dir,
                   esp_nn_dir=args.esp_nn_dir,
                   kernels=args.kernels, boards_dir=args.boards_dir, runtime=args.runtime, **more)


class Verify(Command):
    name = "verify"
    help = "build the firmware for host or QEMU, run test vectors, compare with the oracle byte for byte"

    def add_arguments(self, p):
        p.add_argument("model", type=Path, help="full-INT8 .tflite model")
        p.add_argument("--board", required=True,
                       help="the board whose project and kernels are verified: host, a board QEMU emulates "
                            "(mps2_an386, any board with a [qemu] table), or any other, e.g. esp32 (see --on)")
        p.add_argument("--on", choices=("host", "qemu"),
                       help="where to run it: host, or qemu (the board itself where QEMU emulates it, else the "
                            "Cortex-M4F mps2_an386); default: the board itself where tfgen can run it, else host")
        p.add_argument("--sanitize", action="store_true",
                       help="build the host firmware with AddressSanitizer and UBSan: a memory error or undefined "
                            "behaviour in any kernel fails verify, naming the source")
        input_options(p)
        p.add_argument("--tflm-dir", type=Path, metavar="DIR", help="TFLM source tree (default: $TFGEN_TFLM_DIR)")
        p.add_argument("--boards-dir", type=Path, metavar="DIR", help="add (or override) boards from DIR/*.toml")
        kernel_options(p)
        p.add_argument("--per-op", action="store_true",
                       help="also compare every op's outputs (on the first mismatching vector, else vector 0) "
                            "and name the first op that diverges")
        p.add_argument("--json", action="store_true", help="print the report as JSON")
        add_port_options(p)

    def run(self, args):
        import shlex
        from codegen.run import verify
        from codegen.cli.textreport import verify_text
        check_port_options(args)
        if args.port:
            return run_on_board(args)
        model, ir, board, inputs = checked_model_board_inputs(args)
        command = shlex.join(["tfgen", "verify", args.model.name, "--board", board.name])
        prep, result = verify.verify(ir, model, board, inputs, args.tflm_dir, command,
                                     cmsis_nn_dir=args.cmsis_nn_dir, esp_nn_dir=args.esp_nn_dir, kernels=args.kernels,
                                     on=args.on, sanitize=args.sanitize, runtime=args.runtime)
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
        kernel_options(p)
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
            from codegen.project import generate, render
            project = args.output or Path("build") / f"{args.model.stem}-{board.name}"
            render.check_output_dir(project, args.force, refused_hint=(
                f"pass --force to regenerate it, or build it as it is: tfgen build {project} --board {board.name}"))
            if args.output is None:
                Path("build").mkdir(exist_ok=True)
            model_path = self._int8_model(args, project)
            model, ir = load_ir(model_path)
            gen = generate.generate(ir, model, board, generation_options(args, project))
            render.write_project(gen.files, project, force=True)
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
