"""The corpus: every .tflite in ../shared/models/ through the whole pipeline, as a user runs it.

For each model: `tfgen inspect` (ops, kind, arena), `tfgen reference` (the oracle's vectors),
`tfgen generate` for every built-in board (checking that the generated resolver registers exactly the
ops inspect lists), then `tfgen verify` on the host and on mps2_an386 (QEMU's Cortex-M4F) with TFLM's
reference kernels and with CMSIS-NN, and `--board esp32` with the ESP-NN kernels on the host (with
`--sanitize`) and on QEMU. A model tfgen refuses, or that a board cannot hold, is recorded
with the reason. Writes the table to bench/CORPUS.md (and --json):

    .venv/bin/python bench/corpus.py [--models NAME ...] [--json FILE] [--markdown FILE]
    .venv/bin/python bench/corpus.py --from DIR     (the rows tests/test_corpus.py wrote with
                                                     TFGEN_CORPUS_OUT=DIR, without running again)

The TFLM tree and CMSIS-NN come the way a user's run gets them (TFGEN_TFLM_DIR, the cache, or the
pinned download). tests/test_corpus.py runs the same steps per model and asserts on them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TFGEN_SHARED_MODELS", REPO.parent / "shared" / "models"))
# (board, kernels, where it runs): TFLM's reference kernels, CMSIS-NN on the Cortex-M4F, and the ESP-NN
# kernels an ESP32 runs, on the host (with AddressSanitizer and UBSan) and on the Cortex-M4F in QEMU.
# Then `--runtime aot` (the model as code, no interpreter) on the host, with CMSIS-NN on the Cortex-M4F and
# with esp-nn for an ESP32 (on the host, sanitized), where it covers the model's ops (else its one-line
# refusal is the cell).
VERIFY = (("host", "reference", None), ("mps2_an386", "reference", None), ("mps2_an386", "cmsis-nn", None),
          ("esp32", "esp-nn", "host"), ("esp32", "esp-nn", "qemu"), ("host", "aot", None),
          ("mps2_an386", "cmsis-nn aot", None), ("esp32", "esp-nn aot", "host"))


def verify_key(board: str, kernels: str, on: str | None) -> str:
    return f"{board}/{kernels}" + (f" on {on}" if on else "")


def _verify_args(board: str, kernels: str, on: str | None) -> list[str]:
    aot = kernels.endswith("aot")
    kernels = kernels.removesuffix("aot").strip()
    return [*(("--kernels", kernels) if board != "host" and kernels else ()), *(("--on", on) if on else ()),
            *(("--sanitize",) if on == "host" else ()), *(("--runtime", "aot") if aot else ())]
# QEMU runs reference kernels at some 10^8 instructions a second, and the firmware carries its vectors
# in flash: fewer vectors for the big models and the big tensors.
MAC_BUDGET = 30_000_000
# The first three columns replay every vector; the others (the ESP-NN kernels, sanitized or in QEMU,
# and aot) a sample of them, which keeps CI's corpus tier within its budget.
OTHER_VECTORS = 10
BYTES_BUDGET = 512 * 1024


def models(root: Path = SHARED) -> dict[str, Path]:
    return {p.stem: p for p in sorted(root.rglob("*.tflite"))}


def vector_count(macs: int, record_bytes: int) -> int:
    return max(1, min(100, max(3, MAC_BUDGET // max(macs, 1)), BYTES_BUDGET // max(record_bytes, 1)))


def tfgen(*args, timeout: float = 3600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codegen", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def _line(r: subprocess.CompletedProcess) -> str:
    return (r.stderr.strip().splitlines() or ["(no message)"])[-1].removeprefix("error: ")


def registered_ops(project: Path) -> list[str]:
    """The resolver methods the generated tfgen_model.cc calls, in order."""
    return re.findall(r"resolver\.(Add\w+)\(", (project / "src" / "tfgen_model.cc").read_text(encoding="utf-8"))


def run_model(name: str, path: Path, work: Path, boards: list[str]) -> dict:
    """Every stage for one model; each stage's outcome, never an exception for a refusal."""
    row: dict = {"model": name, "file": str(path.relative_to(SHARED) if path.is_relative_to(SHARED) else path),
                 "size_bytes": path.stat().st_size}
    r = tfgen("inspect", path, "--json")
    if r.returncode != 0:
        row["refused"] = _line(r)
        return row
    summary = json.loads(r.stdout)
    row.update(kind=summary["quantization"], ops=[o["name"] for o in summary["ops"]],
               methods=[o["tflm_method"] for o in summary["ops"]], macs=sum(o["macs"] for o in summary["ops"]),
               arena_host=summary["arena"]["min_bytes"],
               dtypes=sorted({t["dtype"] for t in summary["inputs"] + summary["outputs"]}))
    count = vector_count(row["macs"], sum(t["bytes"] for t in summary["inputs"] + summary["outputs"]))
    vectors = work / f"{name}.tfgv"
    r = tfgen("reference", path, "--vectors", count, "-o", vectors, "--no-crosscheck", "--force")
    row["vectors"] = count
    if r.returncode != 0:
        row["reference_error"] = _line(r)
        return row
    row["generate"] = {}
    for board in boards:
        out = work / f"{name}-{board}"
        r = tfgen("generate", path, "--board", board, "-o", out, "--force", "--json", "--arena-from",
                  row["arena_host"])
        if r.returncode == 0:
            row["generate"][board] = {"ok": True, "resolver": registered_ops(out),
                                      "notes": json.loads(r.stdout)["notes"]}
        else:
            row["generate"][board] = {"ok": False, "does_not_fit": r.returncode == 1, "error": _line(r)}
    row["verify"] = {}
    for board, kernels, on in VERIFY:
        start = time.monotonic()
        n = count if (board, kernels, on) in VERIFY[:3] else min(count, OTHER_VECTORS)
        r = tfgen("verify", path, "--board", board, "--vectors", n, "--json", *_verify_args(board, kernels, on))
        key = verify_key(board, kernels, on)
        if r.returncode in (0, 1) and r.stdout.strip().startswith("{"):
            v = json.loads(r.stdout)
            row["verify"][key] = {k: v[k] for k in ("ok", "vectors", "bytes_compared", "mismatched_bytes",
                                                    "max_lsb_difference", "arena_used_bytes", "arena_size",
                                                    "instructions_per_inference", "flash_bytes", "kernels",
                                                    "optimized_ops", "firmware_errors", "notes",
                                                    "arena_needed_on_target", "ran_on", "sanitized",
                                                    "sanitizer_findings")}
            row["verify"][key]["seconds"] = round(time.monotonic() - start, 1)
        elif kernels.endswith("aot") and r.returncode == 2:
            row["verify"][key] = {"ok": False, "refused": _line(r)}
        else:
            row["verify"][key] = {"ok": False, "does_not_fit": r.returncode == 1 and "does not fit" in r.stderr,
                                  "error": _line(r)}
    return row


def _cell(v: dict) -> str:
    if "refused" in v:
        return "not covered: " + v["refused"].split(": ", 1)[-1].replace("|", "\\|")[:120]
    if "error" in v:
        return ("does not fit: " if v.get("does_not_fit") else "error: ") + v["error"].replace("|", "\\|")[:160]
    verdict = "exact" if v["ok"] else f"{v['mismatched_bytes']} bytes differ (max {v['max_lsb_difference']} LSB)"
    parts = [verdict, f"arena {v['arena_used_bytes']:,}" if v["arena_used_bytes"] else ""]
    if v.get("arena_needed_on_target"):
        parts.append(f"needs --arena-from {v['arena_needed_on_target']} (scratch)")
    if v["instructions_per_inference"]:
        parts.append(f"{v['instructions_per_inference']:,} instr/inf")
    if v["flash_bytes"]:
        parts.append(f"flash {v['flash_bytes']:,}")
    for f in v.get("sanitizer_findings") or ():
        parts.append("UBSan: " + f.removeprefix("runtime error: ").replace("|", "\\|")[:140])
    return ", ".join(p for p in parts if p)


def markdown(rows: list[dict], header: str) -> str:
    out = [header, "", "| model | kind, I/O | ops | " + " | ".join(verify_key(*v) for v in VERIFY) + " | generate |",
           "|---" * (4 + len(VERIFY)) + "|"]
    for row in rows:
        if "refused" in row:
            out.append(f"| {row['model']} | refused | | " + " | ".join("" for _ in VERIFY)
                       + f" | {row['refused'][:200]} |")
            continue
        gen = row.get("generate", {})
        good = [b for b, g in gen.items() if g["ok"] and g["resolver"] == row["methods"]]
        big = [b for b, g in gen.items() if g.get("does_not_fit")]
        bad = [f"{b}: {g.get('error', 'resolver differs')}" for b, g in gen.items() if b not in good + big]
        cells = [_cell(row["verify"][verify_key(*v)]) if verify_key(*v) in row.get("verify", {}) else "" for v in VERIFY]
        out.append(f"| {row['model']} | {row['kind']}, {'/'.join(row['dtypes'])} | {', '.join(row['ops'])} | "
                   + " | ".join(cells) + f" | {len(good)} of {len(gen)} boards"
                   + (f"; too big for {', '.join(big)}" if big else "") + ("; " + "; ".join(bad) if bad else "")
                   + " |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    sys.path.insert(0, str(REPO))
    from codegen.project import boards
    from codegen.toolchain import cmsis_nn, tflm_tree
    from codegen.oracle import oracle
    found = models()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", choices=sorted(found), default=sorted(found))
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    ap.add_argument("--markdown", type=Path, default=REPO / "bench" / "CORPUS.md")
    ap.add_argument("--work", type=Path, help="work directory (default: a temporary one)")
    ap.add_argument("--from", dest="rows_dir", type=Path, metavar="DIR",
                    help="take the rows from DIR/*.json (written by tests/test_corpus.py) instead of running")
    args = ap.parse_args(argv)
    tree, cmsis = tflm_tree.resolve(), cmsis_nn.resolve()
    rows = []
    if args.rows_dir:
        rows = [json.loads((args.rows_dir / f"{name}.json").read_text(encoding="utf-8")) for name in args.models
                if (args.rows_dir / f"{name}.json").is_file()]
    else:
        work = args.work or Path(tempfile.mkdtemp(prefix="tfgen-corpus-"))
        work.mkdir(parents=True, exist_ok=True)
        names = list(boards.load_boards())
        for name in args.models:
            start = time.monotonic()
            rows.append(run_model(name, found[name], work, names))
            print(f"{name}: {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)
    header = (f"# The corpus\n\nEvery `.tflite` in `../shared/models/`, through inspect, reference, generate (every "
              f"built-in board) and verify, by `bench/corpus.py` (rerun it to refresh this file). TFLM "
              f"{tree.version}, {cmsis.version}, oracle tflite_micro {oracle.tflm_version()}; "
              f"{platform.machine()}. Cells: byte-exact against the oracle or the bytes that differ, the 32-bit "
              "(QEMU) or 64-bit (host) arena TFLM used, instructions per inference (QEMU -icount), flash of the "
              "test image (with its embedded vectors). Random vectors (seed 0): 100, fewer for the largest "
              "models (`vectors` in --json). \"needs --arena-from N\": CMSIS-NN's scratch buffers need more "
              "arena than the oracle measured with the reference kernels; verified with N, measured on the "
              "target. The esp32 columns are the kernels an ESP32 runs (esp-tflite-micro's ESP-NN wrappers over "
              "esp-nn's generic C), on the host under AddressSanitizer and UBSan and on QEMU's Cortex-M4F. The aot "
              "columns are `--runtime aot` (the model as generated code, no interpreter; the arena is its static "
              "activation plan) where it covers the model's ops.")
    args.markdown.write_text(markdown(rows, header), encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(markdown(rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
