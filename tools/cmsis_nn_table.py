"""Regenerate codegen/data/cmsis_nn_sources.json: which CMSIS-NN library sources each wrapper reaches.

A project copies only the library sources its CMSIS-NN wrappers need (``codegen.toolchain.cmsis_nn``
``CmsisNn.select`` reads this table). The table is a symbol closure over the library compiled for
Cortex-M4F: for each wrapper in tflite-micro's ``kernels/cmsis_nn/``, the sources that define its
undefined symbols, and theirs in turn, i.e. the members a linker would pull from an archive of the
library. CMSIS-NN compiles three ways (no DSP extension, DSP, MVE), each reaching other sources, so the
closure is taken for a core of each (Cortex-M0+, M4F, M55) and the table is their union. Run from the checkout (it needs arm-none-eabi-gcc; it is not in the wheel)::

    python -m tools.cmsis_nn_table --cmsis-nn-dir DIR > codegen/data/cmsis_nn_sources.json
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from codegen.errors import TfgenError
from codegen.toolchain import proc, tflm_tree
from codegen.toolchain.cmsis_nn import DEFINES, PINNED_CMSIS_NN_COMMIT, PINNED_TFLM_COMMIT, CmsisNn, resolve

_NM_LINE = re.compile(r"^\s*(?:[0-9a-fA-F]+\s+)?([A-Za-z])\s+(\S+)$")
CFLAGS = ("-Os", "-ffunction-sections", "-fdata-sections", "-w")
# A core of each of CMSIS-NN's code paths: plain C (no DSP extension), ARM_MATH_DSP, ARM_MATH_MVEI.
CORES = ("cortex-m0plus", "cortex-m4f", "cortex-m55")


def _symbols(obj: Path) -> tuple[set[str], set[str]]:
    out = proc.run(["arm-none-eabi-nm", obj], what=f"nm {obj.name}", timeout=60).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        m = _NM_LINE.match(line)
        if m:
            (undefined if m.group(1) == "U" else defined).add(m.group(2))
    return defined, undefined


def build_table(c: CmsisNn, tflm_root: Path, jobs: int = 2) -> dict:
    """For each wrapper, the union over CORES of the library sources an archive link would pull."""
    from codegen.project.targets import CORE_FLAGS
    table: dict[str, set] = {}
    failed: set[str] = set()
    for core in CORES:
        wrappers, not_compiled = _closure(c, tflm_root, (*CORE_FLAGS[core], *CFLAGS), jobs)
        failed |= set(not_compiled)
        for w, reached in wrappers.items():
            table.setdefault(w, set()).update(reached)
    return {"cmsis_nn_commit": PINNED_CMSIS_NN_COMMIT, "tflite_micro_commit": PINNED_TFLM_COMMIT,
            "how": f"symbol closure over CMSIS-NN compiled for {', '.join(CORES)}, their union "
                   "(python -m tools.cmsis_nn_table)",
            "not_compiled": sorted(failed), "wrappers": {w: sorted(r) for w, r in sorted(table.items())}}


def _closure(c: CmsisNn, tflm_root: Path, cflags: tuple, jobs: int) -> tuple[dict, list]:
    """Compile the wrappers and the library with ``cflags``; for each wrapper, the library sources in
    the closure of its undefined symbols (the members an archive link would pull)."""
    sources = sorted(p.relative_to(c.library).as_posix() for p in (c.library / "Source").rglob("*.c"))
    with tempfile.TemporaryDirectory(prefix="tfgen-cmsis-") as tmp:
        def compile_one(args):
            src, cxx, out = args
            inc = ["-I" + str(c.library), "-I" + str(c.library / "Include")]
            if cxx:
                inc += ["-I" + str(tflm_root / d) for d in tflm_tree.INCLUDE_DIRS]
                cmd = ["arm-none-eabi-g++", "-std=c++17", "-fno-rtti", "-fno-exceptions",
                       "-DTF_LITE_STATIC_MEMORY", *DEFINES, *cflags, *inc, "-c", src, "-o", out]
            else:
                cmd = ["arm-none-eabi-gcc", "-std=c11", *cflags, *inc, "-c", src, "-o", out]
            ok = proc.run(cmd, what=f"compiling {Path(src).name}", timeout=600, check=False).returncode == 0
            return out if ok else None
        lib_jobs = [(str(c.library / s), False, Path(tmp) / f"lib{i}.o") for i, s in enumerate(sources)]
        wrappers = sorted(p.name for p in c.wrappers.glob("*.cc"))
        wrap_jobs = [(str(c.wrappers / w), True, Path(tmp) / f"w_{w}.o") for w in wrappers]
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            lib_objs = list(pool.map(compile_one, lib_jobs))
            wrap_objs = list(pool.map(compile_one, wrap_jobs))
        lib = {s: _symbols(o) for s, o in zip(sources, lib_objs) if o is not None}
        failed = [s for s, o in zip(sources, lib_objs) if o is None]
        provider = {}
        for s, (defined, _) in lib.items():
            for sym in defined:
                provider.setdefault(sym, s)
        table = {}
        for w, o in zip(wrappers, wrap_objs):
            if o is None:
                raise TfgenError(f"the wrapper {w} does not compile against {tflm_root}",
                                 "use the tflite-micro commit the TFLM tree was synced from")
            todo, reached = list(_symbols(o)[1]), set()
            while todo:
                s = provider.get(todo.pop())
                if s and s not in reached:
                    reached.add(s)
                    todo += lib[s][1]
            table[w] = sorted(reached)
    return table, failed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.cmsis_nn_table", description=__doc__.split("\n")[0])
    p.add_argument("--cmsis-nn-dir", type=Path)
    p.add_argument("--tflm-dir", type=Path)
    args = p.parse_args(argv)
    table = build_table(resolve(args.cmsis_nn_dir), tflm_tree.resolve(args.tflm_dir, download=False).root)
    json.dump(table, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
