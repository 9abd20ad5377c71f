"""tfgen firmware against the usual TFLM workflow, and against the limit, in one run.

    TFGEN_TFLM_DIR=... .venv/bin/python bench/run.py [--models kws_ref_model ...] [--json FILE]

For each model, on the mps2_an386 build (Cortex-M4F, arm-none-eabi-gcc -Os, QEMU):
- tfgen: the project `tfgen generate` makes, its arena sized from the 32-bit figure (--arena-from);
- baseline, the usual workflow: every TFLM builtin op registered (what AllOpsResolver did), the
  model as a plain non-const array, the arena 10x the model size; same compiler, flags and harness;
- the limit: the model's bytes (the floor for flash beyond code) and the peak of simultaneously live
  activation tensors in execution order (the floor for the arena).
And tool speed on the digits example: quantize, generate, cold and warm build, verify.
Ratios are what compare across machines; times are printed for this one.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from codegen import boards, build, inspection, plan, reference, render, tflm_tree, verify  # noqa: E402
from codegen.tflm_ops import load_op_set  # noqa: E402

SHARED = Path(os.environ.get("TFGEN_SHARED_MODELS", REPO.parent / "shared" / "models"))
MODELS = {"kws_ref_model": SHARED / "mlperf_tiny" / "kws_ref_model.tflite",
          "ad01_int8": SHARED / "mlperf_tiny" / "ad01_int8.tflite",
          "hello_world_int8": SHARED / "tflm_examples" / "hello_world_int8.tflite"}
BOARD = "mps2_an386"
VECTORS = 2


def peak_activations(ir) -> int:
    """Peak bytes of activation tensors alive at once, each alive from the op that writes it (or the
    start, for inputs) to the last op that reads it (or the end, for outputs)."""
    ops = [op for op in ir.operators if op.subgraph == 0]
    first: dict[int, int] = {t.index: -1 for t in ir.inputs}
    last: dict[int, int] = {t.index: len(ops) for t in ir.outputs}
    for i, op in enumerate(ops):
        for t in op.outputs:
            first.setdefault(t, i)
        for t in op.inputs:
            if t >= 0 and not ir.tensors[t].is_constant:
                last[t] = max(last.get(t, i), i)
    size = {t: ir.tensors[t].elements * (1 if ir.tensors[t].dtype in ("int8", "uint8") else 4) for t in first}
    return max(sum(size[t] for t in first if first[t] <= i <= last.get(t, first[t])) for i in range(-1, len(ops) + 1))


def _write(files, out: Path) -> None:
    render.write_project(files, out, force=True)


def _project(ir, model: bytes, board, tree, arena: int, with_vectors: bool, inputs, out: Path):
    vectors = None
    count = 0
    if with_vectors:
        ref = reference.run_reference(ir, model, inputs, crosscheck=False)
        from codegen import vectors as vec
        vectors, count = vec.encode(ref.vectors), ref.vectors.count
    p = plan.make_plan(ir, board, arena, tree, count, "bench", "bench: the 32-bit arena verify reported")
    _write(render.render_project(p, board, model, vectors), out)
    return out


def make_baseline(project: Path, tree, model_size: int) -> None:
    """Turn a generated project into the usual workflow: all ops, a plain array, a 10x arena."""
    ops = load_op_set()
    methods = sorted(set(ops.builtins.values()))
    src = project / "src"
    header = (src / "tfgen_model.h").read_text()
    header = re.sub(r"kNumOps = \d+;", f"kNumOps = {len(methods)};", header)
    header = re.sub(r"(#else\ninline constexpr std::size_t kArenaSize = )\d+;", rf"\g<1>{10 * model_size};", header)
    (src / "tfgen_model.h").write_text(header)
    cc = (src / "tfgen_model.cc").read_text()
    body = "".join(f"  if (resolver.{m}() != kTfLiteOk) return kTfLiteError;\n" for m in methods)
    cc = re.sub(r"(TfLiteStatus RegisterOps\(OpResolver& resolver\) \{\n)(.*?)(  return kTfLiteOk;\n\})",
                lambda m: m.group(1) + body + m.group(3), cc, count=1, flags=re.S)
    (src / "tfgen_model.cc").write_text(cc)
    for f in src.glob("*_model_data.*"):
        text = f.read_text().replace("extern const unsigned char", "extern unsigned char")
        text = text.replace("alignas(16) const unsigned char", "alignas(16) unsigned char")
        f.write_text(text)
    for rel in tree.sources_for_ops(sorted(ops.builtins)):
        dest = project / "lib" / "tflm" / rel
        if not dest.exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tree.root / rel, dest)


def _run_vectors(project: Path, board, ir, model, inputs, tree) -> dict:
    prep = verify.Prepared(project, board, ir.source,
                           reference.run_reference(ir, model, inputs, crosscheck=False).vectors,
                           0, 0, tree.version, ir, model)
    result = verify.build_and_run(prep)
    return {"ok": result.ok, "arena_used": int(result.log.summary.get("arena_used", 0)),
            "instructions": result.instructions_per_inference}


def measure(name: str, path: Path, work: Path, tree) -> dict:
    board = boards.get_board(BOARD)
    model = path.read_bytes()
    ir = inspection.parse_model(model, path.name)
    inputs = reference.random_inputs(ir, VECTORS, 0)
    # 1. the 32-bit arena actually used, then tfgen's project sized from it
    # reference kernels on both sides: the comparison is about what tfgen leaves out, not CMSIS-NN
    prep = verify.prepare(ir, model, board, inputs, None, "bench", out=work / name / "verify", kernels="reference")
    run = verify.build_and_run(prep)
    used = int(run.log.summary["arena_used"])
    tfgen_dir = _project(ir, model, board, tree, used, False, inputs, work / name / "tfgen")
    tfgen_fw = build.build_project(tfgen_dir, board)
    tfgen_arena = plan.arena_with_margin(used)
    # 2. the usual workflow: sizes from a build without vectors, cost from one with them
    base_dir = _project(ir, model, board, tree, used, False, inputs, work / name / "baseline")
    make_baseline(base_dir, tree, len(model))
    base_fw = build.build_project(base_dir, board)
    base_run_dir = _project(ir, model, board, tree, used, True, inputs, work / name / "baseline-run")
    make_baseline(base_run_dir, tree, len(model))
    base_run = _run_vectors(base_run_dir, board, ir, model, inputs, tree)
    peak = peak_activations(ir)
    t, b = tfgen_fw.size, base_fw.size
    return {
        "model": name, "model_bytes": len(model), "peak_activations": peak,
        "tfgen": {"flash": t.flash, "ram": t.ram, "arena_constant": tfgen_arena, "arena_used": used,
                  "instructions": run.instructions_per_inference, "byte_exact": run.ok,
                  "code_bytes": t.flash - len(model)},
        "baseline": {"flash": b.flash, "ram": b.ram, "arena_constant": 10 * len(model),
                     "arena_used": base_run["arena_used"], "instructions": base_run["instructions"],
                     "byte_exact": base_run["ok"], "code_bytes": b.flash - len(model)},
        "ratios": {"flash_tfgen_over_baseline": round(t.flash / b.flash, 3),
                   "ram_tfgen_over_baseline": round(t.ram / b.ram, 3),
                   "arena_constant_over_used": round(tfgen_arena / used, 4),
                   "tfgen_flash_over_model_bytes": round(t.flash / len(model), 3),
                   "arena_used_over_peak_activations": round(used / peak, 3) if peak else None},
        "top_code_symbols": top_symbols(tfgen_fw.elf, 12) if name == "kws_ref_model" else [],
    }


def top_symbols(elf: Path, n: int) -> list[dict]:
    from elftools.elf.elffile import ELFFile
    with elf.open("rb") as f:
        e = ELFFile(f)
        syms = [(s.name, s["st_size"]) for s in e.get_section_by_name(".symtab").iter_symbols()
                if s["st_info"]["type"] == "STT_FUNC" and s["st_size"] > 0]
    return [{"symbol": name, "bytes": size} for name, size in sorted(syms, key=lambda x: -x[1])[:n]]


def tool_speed(work: Path) -> dict:
    """Wall times of the digits flow in this run: quantize, generate, cold/warm build, verify."""
    tfgen = [sys.executable, "-m", "codegen"]
    d = work / "digits"
    sys.path.insert(0, str(REPO / "examples" / "digits"))
    import make_model
    make_model.train(d)
    times = {}

    def timed(key, cmd, env=None):
        start = time.monotonic()
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO, env=env)
        times[key] = round(time.monotonic() - start, 2)
    timed("quantize", tfgen + ["quantize", str(d / "model.keras"), "--calib", str(d / "calib.npy"),
                               "-o", str(d / "digits.tflite"), "--force"])
    timed("generate", tfgen + ["generate", str(d / "digits.tflite"), "--board", BOARD, "-o", str(d / "p"), "--force"])
    cold = {**os.environ, "TFGEN_CACHE_DIR": str(work / "fresh-cache")}
    timed("cold_build", tfgen + ["build", str(d / "p"), "--board", BOARD], cold)
    timed("warm_build", tfgen + ["build", str(d / "p"), "--board", BOARD], cold)
    timed("verify_100_vectors", tfgen + ["verify", str(d / "digits.tflite"), "--board", BOARD, "--vectors", "100"])
    return {"seconds": times, "ratio_to_cold_build": {k: round(v / times["cold_build"], 3) for k, v in times.items()}}


def table(rows: list[dict]) -> str:
    head = (f"{'model':<17}{'build':<9}{'flash':>10}{'RAM':>10}{'arena const':>12}{'arena used':>11}"
            f"{'instr/inf':>13}{'exact':>6}")
    out = [head, "-" * len(head)]
    for r in rows:
        for kind in ("baseline", "tfgen"):
            f = r[kind]
            out.append(f"{r['model']:<17}{kind:<9}{f['flash']:>10,}{f['ram']:>10,}{f['arena_constant']:>12,}"
                       f"{f['arena_used']:>11,}{(f['instructions'] or 0):>13,}{'yes' if f['byte_exact'] else 'NO':>6}")
        x = r["ratios"]
        out.append(f"{'':<17}{'ratio':<9}{x['flash_tfgen_over_baseline']:>10}{x['ram_tfgen_over_baseline']:>10}"
                   f"   tfgen arena constant/used {x['arena_constant_over_used']}")
        out.append(f"{'':<17}{'limit':<9}model {r['model_bytes']:,} B (tfgen flash {x['tfgen_flash_over_model_bytes']}x; "
                   f"code {r['tfgen']['code_bytes']:,} B), peak live activations {r['peak_activations']:,} B "
                   f"(arena used {x['arena_used_over_peak_activations']}x)")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--no-tool-speed", action="store_true", help="skip the digits timing")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results.json")
    ap.add_argument("--work", type=Path, help="work directory (default: a temporary one)")
    args = ap.parse_args(argv)
    tree = tflm_tree.resolve()
    work = args.work or Path(tempfile.mkdtemp(prefix="tfgen-bench-"))
    rows = [measure(name, MODELS[name], work, tree) for name in args.models]
    speed = None if args.no_tool_speed else tool_speed(work)
    print(f"tfgen bench, {BOARD} (Cortex-M4F, arm-none-eabi-gcc -Os, QEMU -icount), TFLM {tree.version}, "
          f"{platform.machine()}, {os.cpu_count()} cores\n")
    print(table(rows))
    if rows and rows[0]["top_code_symbols"]:
        print("\nlargest functions in kws_ref_model's tfgen image:")
        for s in rows[0]["top_code_symbols"]:
            print(f"  {s['bytes']:>7,}  {s['symbol']}")
    if speed:
        print("\ntool speed (digits):", ", ".join(f"{k} {v} s" for k, v in speed["seconds"].items()))
    args.json.write_text(json.dumps({"board": BOARD, "tflm": tree.version, "models": rows, "tool_speed": speed},
                                    indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
