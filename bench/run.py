"""tfgen firmware against the usual TFLM workflow, and against the limit, in one run.

    TFGEN_TFLM_DIR=... [TFGEN_CMSIS_NN_DIR=...] .venv/bin/python bench/run.py [--models kws_ref_model ...] [--json FILE]

For each model, on the mps2_an386 build (Cortex-M4F, arm-none-eabi-gcc -Os, QEMU):
- tfgen: the project `tfgen generate` makes with TFLM's reference kernels, its arena sized from the
  32-bit figure (--arena-from);
- baseline, the usual workflow: every TFLM builtin op registered (what AllOpsResolver did), the
  model as a plain non-const array, the arena 10x the model size; same compiler, flags and harness
  and the same reference kernels, so that comparison is about what tfgen leaves out;
- cmsis-nn: tfgen's project with the board's CMSIS-NN kernels, compared with tfgen's reference build
  (when a CMSIS-NN setup is available: TFGEN_CMSIS_NN_DIR, the cache or the pinned download);
- aot: `--runtime aot`, the model as generated code calling the kernels (CMSIS-NN when available, else
  the reference kernel functions) with no interpreter, compared with tfgen's TFLM build of the same
  kernels;
- the limit: the model's bytes (the floor for flash beyond code) and the peak of simultaneously live
  activation tensors in execution order (the floor for the arena: codegen/model/memplan.py).
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

from codegen.run import verify  # noqa: E402
from codegen.project import boards, generate, plan, render
from codegen.run import build
from codegen.toolchain import cmsis_nn, tflm_tree
from codegen.model import inspection, memplan
from codegen.oracle import reference
from codegen.model.tflm_ops import load_op_set  # noqa: E402

SHARED = Path(os.environ.get("TFGEN_SHARED_MODELS", REPO.parent / "shared" / "models"))
MODELS = {"kws_ref_model": SHARED / "mlperf_tiny" / "kws_ref_model.tflite",
          "ad01_int8": SHARED / "mlperf_tiny" / "ad01_int8.tflite",
          "hello_world_int8": SHARED / "tflm_examples" / "hello_world_int8.tflite",
          "person_detect": SHARED / "tflm_examples" / "person_detect.tflite",
          "simple_add_model": SHARED / "tflm_examples" / "simple_add_model.tflite"}
BOARD = "mps2_an386"
VECTORS = 2


def peak_activations(ir) -> int:
    """Peak bytes of activation tensors alive at once (the static plan's lower bound)."""
    return memplan.plan(ir).lower_bound


def _project(ir, model: bytes, board, tree, arena: int, with_vectors: bool, inputs, out: Path, cmsis=None,
             runtime: str = "tflm"):
    blob = None
    if with_vectors:
        ref = reference.run_reference(ir, model, inputs, crosscheck=False)
        from codegen.model import vectors as vec
        blob = vec.encode(ref.vectors)
    gen = generate.generate(ir, model, board, generate.Options(
        tflm_dir=tree.root, cmsis_nn_dir=cmsis.root if cmsis else None, kernels="cmsis-nn" if cmsis else "reference",
        vectors=blob, arena_from=arena, arena_source="bench: the 32-bit arena verify reported", command="bench",
        runtime=runtime))
    render.write_project(gen.files, out, force=True)
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


def figures(fw, model_bytes: int, arena_constant: int, arena_used: int, instructions, exact: bool) -> dict:
    return {"flash": fw.size.flash, "ram": fw.size.ram, "arena_constant": arena_constant, "arena_used": arena_used,
            "instructions": instructions, "byte_exact": exact, "code_bytes": fw.size.flash - model_bytes}


def tfgen_build(ir, model: bytes, board, tree, inputs, work: Path, kernels: str, cmsis=None,
                runtime: str = "tflm") -> tuple[dict, Path]:
    """tfgen's project: verified on the vectors (the 32-bit arena used, instructions per inference),
    then built without them, its arena sized from that figure, for flash and RAM; and its ELF."""
    prep = verify.prepare(ir, model, board, inputs, None, "bench", out=work / f"verify-{runtime}-{kernels}",
                          cmsis_nn_dir=cmsis and cmsis.root, kernels=kernels, runtime=runtime)
    run = verify.build_and_run(prep)
    used = int(run.log.summary["arena_used"])
    fw = build.build_project(_project(ir, model, board, tree, used, False, inputs,
                                      work / f"tfgen-{runtime}-{kernels}", cmsis, runtime), board)
    aot = runtime == "aot"                  # no flatbuffer in flash: its weights are the data, and the plan is exact
    return {**figures(fw, ir.weights_bytes if aot else len(model), used if aot else plan.arena_with_margin(used),
                      used, run.instructions_per_inference, run.ok),
            "optimized_ops": list(prep.optimized_ops)}, fw.elf


def measure(name: str, path: Path, work: Path, tree, cmsis) -> dict:
    board = boards.get_board(BOARD)
    model = path.read_bytes()
    ir = inspection.parse_model(model, path.name)
    inputs = reference.random_inputs(ir, VECTORS, 0)
    work = work / name
    # 1. tfgen with the reference kernels
    tfgen, elf = tfgen_build(ir, model, board, tree, inputs, work, "reference")
    used = tfgen["arena_used"]
    # 2. the usual workflow: sizes from a build without vectors, cost from one with them
    base_dir = _project(ir, model, board, tree, used, False, inputs, work / "baseline")
    make_baseline(base_dir, tree, len(model))
    base_fw = build.build_project(base_dir, board)
    base_run_dir = _project(ir, model, board, tree, used, True, inputs, work / "baseline-run")
    make_baseline(base_run_dir, tree, len(model))
    base_run = _run_vectors(base_run_dir, board, ir, model, inputs, tree)
    baseline = figures(base_fw, len(model), 10 * len(model), base_run["arena_used"], base_run["instructions"],
                       base_run["ok"])
    # 3. tfgen with the board's CMSIS-NN kernels
    fast = tfgen_build(ir, model, board, tree, inputs, work, "cmsis-nn", cmsis)[0] if cmsis else None
    # 4. the same kernels with no interpreter: --runtime aot
    aot = tfgen_build(ir, model, board, tree, inputs, work, "cmsis-nn" if cmsis else "reference", cmsis, "aot")[0]
    peak = peak_activations(ir)
    t, b = tfgen, baseline
    ratios = {"flash_tfgen_over_baseline": round(t["flash"] / b["flash"], 3),
              "ram_tfgen_over_baseline": round(t["ram"] / b["ram"], 3),
              "arena_constant_over_used": round(t["arena_constant"] / used, 4),
              "tfgen_flash_over_model_bytes": round(t["flash"] / len(model), 3),
              "arena_used_over_peak_activations": round(used / peak, 3) if peak else None}
    if fast:
        ratios.update({f"{k}_cmsis_nn_over_tfgen": round(fast[k] / t[k], n) for k, n in
                       (("flash", 3), ("ram", 3), ("instructions", 4))})
    same = fast or t                                    # tfgen's TFLM build with the kernels aot calls
    ratios.update({f"{k}_aot_over_tflm": round(aot[k] / same[k], 4 if k == "instructions" else 3)
                   for k in ("flash", "ram", "instructions", "code_bytes")})
    ratios["aot_activations_over_peak"] = round(aot["arena_used"] / peak, 3) if peak else None
    return {"model": name, "model_bytes": len(model), "peak_activations": peak,
            "tfgen": t, "baseline": b, "cmsis_nn": fast, "aot": aot, "ratios": ratios,
            "top_code_symbols": top_symbols(elf, 12) if name == "kws_ref_model" else []}


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
        for kind, f in (("baseline", r["baseline"]), ("tfgen", r["tfgen"]), ("cmsis-nn", r["cmsis_nn"]),
                        ("aot", r["aot"])):
            out.append(f"{r['model']:<17}{kind:<9}" + (
                f"{f['flash']:>10,}{f['ram']:>10,}{f['arena_constant']:>12,}{f['arena_used']:>11,}"
                f"{(f['instructions'] or 0):>13,}{'yes' if f['byte_exact'] else 'NO':>6}" if f
                else "  n/a (no CMSIS-NN setup)"))
        x = r["ratios"]
        out.append(f"{'':<17}{'ratio':<9}{x['flash_tfgen_over_baseline']:>10}{x['ram_tfgen_over_baseline']:>10}"
                   f"   tfgen arena constant/used {x['arena_constant_over_used']}")
        out.append(f"{'':<17}{'limit':<9}model {r['model_bytes']:,} B (tfgen flash {x['tfgen_flash_over_model_bytes']}x; "
                   f"code {r['tfgen']['code_bytes']:,} B), peak live activations {r['peak_activations']:,} B "
                   f"(arena used {x['arena_used_over_peak_activations']}x)")
        if r["cmsis_nn"]:
            speed = x["instructions_cmsis_nn_over_tfgen"]
            out.append(f"{'':<17}{'cmsis-nn':<9}over tfgen's reference build: flash {x['flash_cmsis_nn_over_tfgen']}x, "
                       f"RAM {x['ram_cmsis_nn_over_tfgen']}x, instructions {speed}x ({1 / speed:.1f}x fewer); "
                       f"CMSIS-NN kernels for {', '.join(r['cmsis_nn']['optimized_ops'])}")
        out.append(f"{'':<17}{'aot':<9}over tfgen's TFLM build of the same kernels: flash {x['flash_aot_over_tflm']}x "
                   f"(code {x['code_bytes_aot_over_tflm']}x), RAM {x['ram_aot_over_tflm']}x, instructions "
                   f"{x['instructions_aot_over_tflm']}x; activation buffer {x['aot_activations_over_peak']}x the peak "
                   "of live tensors")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS)[:3], choices=list(MODELS),
                    help="default: kws_ref_model ad01_int8 hello_world_int8 (person_detect takes minutes more; "
                         "simple_add_model is one ADD)")
    ap.add_argument("--no-tool-speed", action="store_true", help="skip the digits timing")
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results.json")
    ap.add_argument("--work", type=Path, help="work directory (default: a temporary one)")
    args = ap.parse_args(argv)
    tree = tflm_tree.resolve()
    cmsis, note = cmsis_nn.choose(boards.get_board(BOARD).kernels)
    work = args.work or Path(tempfile.mkdtemp(prefix="tfgen-bench-"))
    rows = [measure(name, MODELS[name], work, tree, cmsis) for name in args.models]
    speed = None if args.no_tool_speed else tool_speed(work)
    print(f"tfgen bench, {BOARD} (Cortex-M4F, arm-none-eabi-gcc -Os, QEMU -icount), TFLM {tree.version}, "
          f"{cmsis.version if cmsis else 'no CMSIS-NN setup'}, {platform.machine()}, {os.cpu_count()} cores\n")
    if note:
        print(f"note: {note}\n")
    print(table(rows))
    if rows and rows[0]["top_code_symbols"]:
        print("\nlargest functions in kws_ref_model's tfgen image:")
        for s in rows[0]["top_code_symbols"]:
            print(f"  {s['bytes']:>7,}  {s['symbol']}")
    if speed:
        print("\ntool speed (digits):", ", ".join(f"{k} {v} s" for k, v in speed["seconds"].items()))
    args.json.write_text(json.dumps({"board": BOARD, "tflm": tree.version, "cmsis_nn": cmsis and cmsis.version,
                                     "models": rows, "tool_speed": speed},
                                    indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
