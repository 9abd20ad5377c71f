"""Readable text for people; the same data goes out as JSON with --json."""
from __future__ import annotations

import math


def table(headers: list[str], rows: list[list], right: set[int] | None = None) -> str:
    """A fixed-width table; columns in ``right`` (by index) are right-aligned (numbers)."""
    right = right if right is not None else set()
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(r, widths))).rstrip()
    return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]])


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def shape(dims) -> str:
    return "x".join(str(d) for d in dims) or "scalar"


def activation_line(mp: dict) -> str:
    """The static activation plan against its lower bound (codegen/model/memplan.py)."""
    at = f", at op {mp['peak_op']} {mp['peak_op_name']}" if mp["peak_op"] >= 0 else ""
    scratch = (f"; with the kernels' scratch ({mp['scratch_bytes']:,} at most) {mp['lower_bound_with_scratch']:,}"
               if mp.get("scratch_bytes") else "; kernels' scratch not included")
    return (f"activations {mp['size']:,} bytes in a static plan; lower bound {mp['lower_bound']:,} (the peak of "
            f"simultaneously live tensors{at}){scratch}")


def inspect_text(s: dict) -> str:
    out = [f"model      {s['model']}  ({s['size_bytes']:,} bytes, sha256 {s['sha256'][:16]}...)",
           f"quantized  {s['quantization']}    subgraphs {s['subgraphs']}    tensors {s['tensor_count']}"
           f"    weights {s['weights_bytes']:,} bytes    MACs {s['macs']:,}", ""]
    out.append(table(["op", "versions", "count", "MACs", "in TFLM", "resolver method"],
                     [[o["name"], ",".join(map(str, o["versions"])), o["count"], o["macs"], o["in_tflm"],
                       o["tflm_method"]] for o in s["ops"]], right={2, 3}))
    out.append("")
    io_rows = [[kind, t["name"], t["dtype"], shape(t["shape"]), t["scale"], t["zero_point"]]
               for kind, key in (("input", "inputs"), ("output", "outputs")) for t in s[key]]
    out.append(table(["", "tensor", "dtype", "shape", "scale", "zero point"], io_rows))
    mp = s.get("memory_plan")
    if mp:
        out += ["", activation_line(mp)]
    arena = s.get("arena")
    if arena:
        out += ["", f"arena      {arena['min_bytes']:,} bytes: smallest with which tflite_micro allocates "
                    f"and invokes (bisection, {arena['bisection_steps']} steps)",
                f"           {_cell(arena['print_allocations_total'])} bytes reported by print_allocations()",
                "           (64-bit host figures; a 32-bit target needs somewhat less)"]
    out += ["", f"TFLM op set: {s['tflm_op_set']}"]
    for p in s["problems"]:
        out.append(f"problem: {p}")
    return "\n".join(out)


def quantize_text(r: dict) -> str:
    cal, ev = r["calibration"], r["evaluation"]
    out = [f"wrote      {r['output']}  ({r['size_bytes']:,} bytes, full INT8, "
           f"{'per-channel' if r['per_channel'] else 'per-tensor'} weights)",
           f"ops        {', '.join(r['ops'])}",
           *([f"loaded     {r['source']} with {r['loaded_with']}"] if r.get("loaded_with") else []),
           f"calibrated on {cal['samples']} samples of {cal['data']}",
           f"ranges     {cal['method']}" + (f" ({cal['bias_corrected_layers']} layers' biases corrected)"
                                            if cal["bias_corrected_layers"] else ""),
           f"evaluated on {ev['samples']} samples: {ev['data']}", ""]
    auto = r.get("auto")
    if auto:
        gain = auto["gain_db_over_minmax"]
        out += [f"auto chose {auto['chosen']}"
                + (f": output SQNR {gain:+.2f} dB against minmax" if gain is not None else "")
                + f", on {auto['selected_on']}",
                table(["calibration tried", "SQNR dB"], [[c["method"], round(c["sqnr_db"], 2)]
                                                         for c in auto["candidates"]], right={1}), ""]
    has_acc = any(o["float_accuracy"] is not None for o in r["outputs"])
    headers = ["output", "SQNR dB", "cosine", "max abs error"] + (["float acc %", "int8 acc %"] if has_acc else [])
    rows = []
    for o in r["outputs"]:
        row = [o["name"], round(o["sqnr_db"], 2), round(o["cosine"], 5), o["max_abs_error"]]
        if has_acc:
            row += [_pct(o["float_accuracy"]), _pct(o["int8_accuracy"])]
        rows.append(row)
    out.append(table(headers, rows, right=set(range(1, len(headers)))))
    if "layers" in r:
        out += ["", f"per layer, on {r['layers_on']}: INT8 against float, the layers that lose most first "
                "(SQNR accumulates from the input; dB lost = worst input's SQNR - this output's)",
                table(["op", "layer", "output", "SQNR dB", "dB lost", "max abs error", "clipped %", "float range",
                       "int8 range"],
                      [[l["op_index"] if l["op_index"] is not None else "-", l["op"], _short(l["tensor"]), _db(l["sqnr_db"]), _db(l["lost_db"]),
                        l["max_abs_error"], round(l["clipped_pct"], 3), _span(l["float_range"]), _span(l["int8_range"])]
                       for l in r["layers"]], right={0, 3, 4, 5, 6})]
    return "\n".join(out)


def _db(v):
    return "-" if v is None else round(v, 2)


def _span(pair) -> str:
    return f"{pair[0]:.4g}..{pair[1]:.4g}"


def _short(name: str, width: int = 40) -> str:
    """Converter tensor names join every fused op's name with ';': the first one says enough."""
    first = name.split(";")[0]
    return first if len(first) <= width else "..." + first[-(width - 3):]


def _pct(v):
    return None if v is None else f"{100 * v:.2f}"


def reference_text(r: dict) -> str:
    out = [f"wrote      {r['output']}: {r['vectors']} vectors, {r['input_bytes']:,} input and "
           f"{r['output_bytes']:,} expected output bytes",
           f"oracle     tflite_micro {r['oracle']} (TFLM's interpreter), arena {r['arena']['min_bytes']:,} "
           "bytes (64-bit host)"]
    c = r.get("crosscheck")
    if c:
        verdict = "identical" if c["mismatches"] == 0 else (
            f"{c['mismatches']:,} of {c['bytes_compared']:,} bytes differ, at most {c['max_lsb_difference']} LSB")
        out.append(f"cross-check  {c['against']}: {verdict} (informational: TFLM is the oracle)")
    return "\n".join(out)


def generate_text(r: dict) -> str:
    aot = r.get("runtime") == "aot"
    return "\n".join([
        f"wrote      {r['project']}/ ({r['files']} files) for {r['board']}, environments: "
        f"{', '.join(r['environments'])}",
        f"ops        {', '.join(r['ops'])} " + ("(as generated code: --runtime aot, no interpreter)" if aot
                                                 else "(the resolver registers exactly these)"),
        f"arena      {r['arena_size']:,} bytes in {r['arena_placement']} RAM " + (
            "(the static activation plan, kernels' scratch included)" if aot else
            f"(measured {r['arena_measured']:,}: {r['arena_basis']}, plus margin)"),
        *([activation_line(r["activation_plan"])] if r.get("activation_plan") else []),
        f"TFLM       {r['tflm']}" + (f"; {r['vectors']} test vectors embedded" if r["vectors"] else ""),
        *([f"kernels    {r['kernels']}: optimized {', '.join(r['optimized_ops'])}"]
          if r.get("optimized_ops") else []),
        *[f"note: {n}" for n in r.get("notes", [])],
        f"next       cd {r['project']} && pio run"])


def verdict_lines(r: dict, where: str) -> list[str]:
    """A verify report's first lines: byte-exact or not, on what, and the first mismatch."""
    verdict = "PASS: byte-exact" if r["ok"] else "FAIL"
    out = [f"{verdict}   {r['model']} on {where}: {r['vectors']} vectors, {r['bytes_compared']:,} bytes "
           f"compared, {r['mismatched_bytes']:,} mismatched"
           + (f" (at most {r['max_lsb_difference']} LSB)" if r["mismatched_bytes"] else "")]
    m = r["first_mismatch"]
    if m:
        out.append(f"first mismatch: vector {m['vector']}, output {m['output']}[{m['index']}]: "
                   f"expected {m['expected']}, got {m['got']}")
    return out


def verify_text(r: dict) -> str:
    where = r["board"] if r.get("ran_on", r["board"]) == r["board"] else (
        f"{r['board']} (its kernels, run on {r['ran_on']}{', sanitized' if r.get('sanitized') else ''})")
    if r.get("sanitized") and where == r["board"]:
        where += " (sanitized)"
    out = verdict_lines(r, where)
    if r["missing_outputs"]:
        out.append(f"missing: the firmware printed no result for {r['missing_outputs']} vector outputs")
    for e in r["firmware_errors"]:
        out.append(f"firmware: error: {e}")
    bits = r["target_bits"]
    out.append(f"arena      {_cell(r['arena_used_bytes'])} bytes used on the {bits}-bit target, of "
               f"{r['arena_size']:,} generated ({r['host_arena_64bit']:,} measured on the 64-bit host)")
    if r["instructions_per_inference"] is not None:
        out.append(f"cost       {r['instructions_per_inference']:,} instructions per inference "
                   "(QEMU -icount, to 1,000)")
    if r.get("kernels"):
        opt = r.get("optimized_ops") or []
        out.append(f"kernels    {r['kernels']}" + (f": optimized {', '.join(opt)}" if opt else "")
                   + (f"; flash {r['flash_bytes']:,} bytes" if r.get("flash_bytes") else ""))
    b = r["build"]
    out.append(f"build      {b['seconds']:.1f} s ({b['compiled']} compiled, {b['reused']} from the cache"
               f"{', warm' if b['warm'] else ''}); run {r['run_seconds']:.1f} s")
    out.append(f"versions   firmware TFLM {r['tflm']}; oracle tflite_micro {r['oracle']}")
    out += [f"note: {n}" for n in r["notes"]]
    d = r.get("per_op")
    if d:
        if d["op"] is None:
            out.append(f"per-op     all {d['ops_compared']} ops agree with the oracle on vector {d['vector']}")
        else:
            out.append(f"per-op     first divergence on vector {d['vector']}: op {d['op']} ({d['op_name']}), "
                       f"output tensor {d['tensor']} {d['tensor_name']!r}: {d['mismatched_bytes']} bytes differ, "
                       f"first [{d['index']}] expected {d['expected']}, got {d['got']}")
    return "\n".join(out)


def build_text(r: dict) -> str:
    out = [f"built      {r['elf']} ({r['builder']}, {r['build_seconds']} s)",
           f"arena      {r['arena_bytes']:,} bytes in {r['arena_in']}", ""]
    out.append(table(["memory", "used", "limit", "headroom %"],
                     [[m["region"], m["used"], m["limit"], m["headroom_percent"]] for m in r["memory"]],
                     right={1, 2, 3}))
    out.append("")
    out.append(f"{'FITS' if r['fits'] else 'DOES NOT FIT'} on {r['board']}: {r['verdict']}")
    return "\n".join(out)


def _k(n: int) -> str:
    return f"{n / 1024:,.1f} K"


def format_fit_table(rows: list) -> str:
    """A table of the rows; below it the notes every row shares, then each other note once, numbered."""
    common = [n for n in rows[0].notes if all(n in r.notes for r in rows)] if rows else []
    notes: list[str] = []
    body = []
    for r in rows:
        refs = []
        for n in r.notes:
            if n in common:
                continue
            if n not in notes:
                notes.append(n)
            refs.append(str(notes.index(n) + 1))
        psram = f"{_k(r.psram_needed)} / {_k(r.psram_limit)}" if r.psram_needed else "-"
        body.append([r.board, r.core, r.kernels, _k(r.flash_needed), _k(r.flash_limit),
                     f"{r.flash_headroom_percent:.1f}%", _k(r.ram_needed), _k(r.ram_limit),
                     f"{r.ram_headroom_percent:.1f}%", psram,
                     "yes" if r.fits else "NO", ",".join(refs) or "-"])
    text = table(["board", "core", "kernels", "flash needed", "flash", "headroom", "RAM needed", "RAM",
                  "headroom", "PSRAM needed / PSRAM", "fits", "notes"], body, right={3, 4, 5, 6, 7, 8})
    return "\n".join([text, "", "K = 1024 bytes. All boards: " + "; ".join(common) + "."]
                     + [f"[{i}] {n}" for i, n in enumerate(notes, 1)])

