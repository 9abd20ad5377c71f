"""The `tfgen` command line. The only layer that writes files or prints.

Every command is a class with ``add_arguments`` and ``run``. A ``TfgenError`` becomes one line on
stderr, ``error: WHAT (try: FIX)``, and exit status 2 (1 for "does not fit");
tracebacks appear only with --verbose.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from codegen import __version__
from codegen.cli.model_commands import Boards, Fit, Inspect, Quantize, Reference
from codegen.cli.output import Command, emit
from codegen.cli.profile_command import Profile
from codegen.cli.project_commands import Build, Flash, Generate, Monitor, Verify
from codegen.errors import TfgenError

__all__ = ["COMMANDS", "Command", "build_parser", "emit", "main"]



COMMANDS: tuple[type[Command], ...] = (Quantize, Inspect, Reference, Generate, Verify, Profile, Build, Flash,
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
