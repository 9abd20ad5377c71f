"""Measured flash and RAM of TFLM per op, per Cortex-M core: the table ``fit`` reads.

``codegen/data/code_size.json`` holds, per core and kernel set, the flash and RAM of the runtime and
each op's increment over it, measured with arm-none-eabi-gcc by the developer tool
``tools/code_size.py`` (not in the wheel; its docstring says how). Regenerate the table with::

    python -m tools.code_size --tflm-dir PATH/TO/esp-tflite-micro --cmsis-nn-dir SETUP \
        --update codegen/data/code_size.json > new.json && mv new.json codegen/data/code_size.json

Only what tfgen needs at run time is here: reading the table, and adding up a set of ops.
"""
from __future__ import annotations

import json

from codegen.resources import DATA_DIR

DATA_FILE = DATA_DIR / "code_size.json"


def ops_flash(entry: dict, ops: list[str]) -> int:
    """Flash of ``ops`` together on top of the runtime: each op's increment, with the helpers that
    several ops share (the table's ``shared_symbols``) counted once instead of once per op."""
    sizes = [size for _name, size in entry["shared_symbols"]]
    used: set[int] = set()
    total = 0
    for op in set(ops):
        mine = entry["ops_shared"].get(op, [])
        total += entry["ops"][op] - sum(sizes[i] for i in mine)
        used.update(mine)
    return total + sum(sizes[i] for i in used)


def load_table() -> dict:
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))
