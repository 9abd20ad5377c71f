"""Regenerate codegen/data/tflm_ops.json: TFLM's op set, from a TFLM tree's resolver header.

The table maps each builtin (and custom) op to the ``MicroMutableOpResolver`` ``Add*`` method that
adds it, and each method to its ``Register_*`` function, as
``tensorflow/lite/micro/micro_mutable_op_resolver.h`` declares them; tfgen reads the committed table
(``codegen.model.tflm_ops.load_op_set``) so that it knows the op set without a TFLM tree. Run from the
checkout (it is not in the wheel)::

    python -m tools.tflm_ops_table --tflm-dir PATH/TO/esp-tflite-micro > codegen/data/tflm_ops.json
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from codegen.errors import TfgenError
from codegen.toolchain.tflm_fetch import tree_version

RESOLVER_HEADER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"

_METHOD = re.compile(r"TfLiteStatus\s+(Add\w+)\s*\(")
_BUILTIN = re.compile(r"AddBuiltin\(\s*BuiltinOperator_(\w+)")
_CUSTOM = re.compile(r"AddCustom\(\s*\"([^\"]+)\"")
_REGISTRATION = re.compile(r"(?:tflite::)?(?:tflm_signal::)?(Register_\w+)\(\)")


def parse_resolver_header(text: str) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Map each builtin (and custom) op to the ``Add*`` method that registers it, and each method to
    the ``Register_*`` function that provides its kernel."""
    builtins: dict[str, str] = {}
    customs: dict[str, str] = {}
    registrations: dict[str, str] = {}
    starts = [(m.start(), m.group(1)) for m in _METHOD.finditer(text)]
    for i, (start, method) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        body = text[start:end]
        if method in ("AddBuiltin", "AddCustom"):
            continue                           # the generic registration helpers themselves
        reg = _REGISTRATION.search(body)
        if reg:
            registrations[method] = reg.group(1)
        ops = _BUILTIN.findall(body)
        if ops:
            builtins.setdefault(ops[0], method)
            continue
        names = _CUSTOM.findall(body)
        if names:
            customs.setdefault(names[0], method)
    return dict(sorted(builtins.items())), dict(sorted(customs.items())), dict(sorted(registrations.items()))


def derive_from_tree(tflm_dir: Path) -> dict:
    header = Path(tflm_dir) / RESOLVER_HEADER
    if not header.is_file():
        raise TfgenError(f"{tflm_dir}: no {RESOLVER_HEADER} there",
                         "point --tflm-dir at the root of a TFLM tree such as esp-tflite-micro")
    builtins, customs, registrations = parse_resolver_header(header.read_text(encoding="utf-8"))
    if not builtins:
        raise TfgenError(f"{header}: found no AddBuiltin(BuiltinOperator_...) methods",
                         "is this TFLM's micro_mutable_op_resolver.h?")
    return {"source": _describe_tree(Path(tflm_dir)), "builtins": builtins, "customs": customs,
            "registrations": registrations}


def _describe_tree(tflm_dir: Path) -> str:
    version = tree_version(tflm_dir)
    return f"{version}: {RESOLVER_HEADER}" if version else f"TFLM tree: {RESOLVER_HEADER}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tflm-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        table = derive_from_tree(args.tflm_dir)
    except TfgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    json.dump(table, sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
