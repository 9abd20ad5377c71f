"""TFLM's op set: which builtin ops TFLite Micro can run, and the resolver method that adds each.

The table is derived from TFLM's own source, ``MicroMutableOpResolver``'s ``Add*`` methods in
``tensorflow/lite/micro/micro_mutable_op_resolver.h``, and committed as ``data/tflm_ops.json`` so that
tfgen knows the op set without a TFLM tree. Regenerate it from a tree with the developer tool
``tools/tflm_ops_table.py`` (not in the wheel), from the checkout::

    python -m tools.tflm_ops_table --tflm-dir PATH/TO/esp-tflite-micro > codegen/data/tflm_ops.json
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from codegen.resources import DATA_DIR

DATA_FILE = DATA_DIR / "tflm_ops.json"


@dataclass(frozen=True)
class OpSet:
    source: str                   # where the table was derived from
    builtins: dict[str, str]      # BuiltinOperator name -> MicroMutableOpResolver method
    customs: dict[str, str]       # custom op name -> MicroMutableOpResolver method
    registrations: dict[str, str]  # method -> the Register_* function it uses by default

    def method_for(self, op_name: str) -> str | None:
        return self.builtins.get(op_name) or self.customs.get(op_name)


@lru_cache(maxsize=None)
def load_op_set() -> OpSet:
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return OpSet(source=data["source"], builtins=data["builtins"], customs=data["customs"],
                 registrations=data["registrations"])
