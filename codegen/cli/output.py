"""What every command shares: printing reports, refusing to overwrite, the options of several commands.

The CLI is the only layer that writes files or prints; each command parses, calls one stage and emits.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

from codegen.errors import TfgenError


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


class Command:
    name = ""
    help = ""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        raise NotImplementedError

    def run(self, args: argparse.Namespace) -> int:
        raise NotImplementedError


def load_ir(path: Path):
    from codegen.model.inspection import load_model_bytes, parse_model
    model = load_model_bytes(path)
    return model, parse_model(model, path.name)


DEFAULT_VECTORS = 100


def input_options(p, default: int = DEFAULT_VECTORS) -> None:
    """The inputs the oracle runs on: N random vectors, or a file (for reference, verify and profile)."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--vectors", type=int, default=None, metavar="N",
                     help=f"N random input vectors (default {default})")
    p.set_defaults(default_vectors=default)
    src.add_argument("--inputs", type=Path, metavar="X.npy",
                     help="inputs: raw int8, or floats to quantize (.npz for several inputs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random vectors (default 0)")


def read_inputs(args, ir) -> list:
    from codegen.oracle import reference
    if args.inputs:
        return reference.inputs_from_file(ir, args.inputs)
    count = getattr(args, "default_vectors", DEFAULT_VECTORS) if args.vectors is None else args.vectors
    return reference.random_inputs(ir, count, args.seed)


def kernel_options(p, sources: bool = True) -> None:
    """--kernels, and with ``sources`` (commands that build) --cmsis-nn-dir and --esp-nn-dir."""
    p.add_argument("--kernels", choices=("reference", "cmsis-nn", "esp-nn"), default=None,
                   help="TFLM's reference kernels, or the board's library: CMSIS-NN on Cortex-M boards, ESP-NN on "
                        "ESP chips (default: the board's"
                        + (", when its sources are available)" if sources else
                           "; the code sizes of each are in tfgen's table, no sources are needed)"))
    if not sources:
        return
    p.add_argument("--runtime", choices=("tflm", "aot"), default="tflm",
                   help="tflm: TFLM's interpreter runs the model (default, every op); aot: the model as generated "
                        "code calling the kernels directly, no interpreter (smaller; covers the common ops, see "
                        "README)")
    p.add_argument("--cmsis-nn-dir", type=Path, metavar="DIR",
                   help="CMSIS-NN setup: DIR/CMSIS-NN/ and DIR/tflite-micro/ (default: $TFGEN_CMSIS_NN_DIR, else "
                        "the cached or downloaded pinned archives)")
    p.add_argument("--esp-nn-dir", type=Path, metavar="DIR",
                   help="espressif/esp-nn sources for ESP boards' builds off the chip (default: $TFGEN_ESP_NN_DIR, "
                        "else the cached or downloaded pinned archive)")


def checked_model_board_inputs(args):
    """What verify and profile start from: the model (refused unless TFLM runs it as integer), the
    board (with --boards-dir) and the oracle's inputs (--vectors/--inputs)."""
    from codegen.model.inspection import require_tflm_int8
    from codegen.project import boards
    model, ir = load_ir(args.model)
    require_tflm_int8(ir)
    return model, ir, boards.get_board(args.board, args.boards_dir), read_inputs(args, ir)
