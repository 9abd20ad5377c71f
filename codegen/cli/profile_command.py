"""`tfgen profile`: instructions per op on an emulated Cortex-M, for each of the board's kernel sets."""
from __future__ import annotations

from pathlib import Path

from codegen.cli.output import Command, checked_model_board_inputs, emit, input_options
from codegen.cli.textreport import table

DEFAULT_PROFILE_VECTORS = 3


class Profile(Command):
    name = "profile"
    help = "instructions per op on QEMU's Cortex-M (-icount: deterministic), for each kernel set, before any hardware"

    def add_arguments(self, p):
        p.add_argument("model", type=Path, help="full-INT8 .tflite model")
        p.add_argument("--board", default="mps2_an386",
                       help="the board whose project and kernels are profiled (default mps2_an386); boards QEMU "
                            "does not emulate run on the Cortex-M4F mps2_an386")
        input_options(p, default=DEFAULT_PROFILE_VECTORS)
        p.add_argument("--kernels", action="append", choices=("reference", "cmsis-nn", "esp-nn"),
                       help="a kernel set to profile (repeatable; default: reference and the board's library)")
        p.add_argument("--tflm-dir", type=Path, metavar="DIR", help="TFLM source tree (default: $TFGEN_TFLM_DIR)")
        p.add_argument("--cmsis-nn-dir", type=Path, metavar="DIR", help="CMSIS-NN setup (as for generate)")
        p.add_argument("--esp-nn-dir", type=Path, metavar="DIR", help="esp-nn sources (as for generate)")
        p.add_argument("--boards-dir", type=Path, metavar="DIR", help="add (or override) boards from DIR/*.toml")
        p.add_argument("--runtime", choices=("tflm", "aot"), default="tflm",
                       help="profile TFLM's interpreter (default) or the model as generated code (--runtime aot)")
        p.add_argument("--json", action="store_true", help="print the report as JSON")

    def run(self, args):
        import shlex
        from codegen.run import profile
        model, ir, board, inputs = checked_model_board_inputs(args)
        kernel_sets = args.kernels or list(dict.fromkeys(("reference", board.kernels)))
        command = shlex.join(["tfgen", "profile", args.model.name, "--board", board.name])
        reports = [profile.profile(ir, model, board, inputs, args.tflm_dir, command, kernels=k,
                                   cmsis_nn_dir=args.cmsis_nn_dir, esp_nn_dir=args.esp_nn_dir,
                                   runtime=args.runtime).to_dict()
                   for k in kernel_sets]
        emit({"model": str(args.model), "board": board.name, "profiles": reports}, args.json, profile_text)
        return 0


def profile_text(r: dict) -> str:
    """Each kernel set's ops, the costliest first, in instructions (never called time)."""
    out = []
    for p in r["profiles"]:
        total = p["instructions_per_inference"]
        share = 100 * p["ops_total"] / total if total else 0.0
        out.append(f"profile    {p['model']} for {p['board']} on {p['ran_on']}, kernels {p['kernels']}: "
                   f"{total:,} instructions per inference (QEMU -icount, mean of {p['vectors']} vectors); "
                   f"the ops account for {p['ops_total']:,} ({share:.1f} %)")
        ops = {o["index"]: o for o in p["ops"]}
        rows = [[rank, i, ops[i]["op"], ops[i]["instructions"],
                 f"{100 * ops[i]['instructions'] / total:.1f}%" if total else "-",
                 "yes" if ops[i]["op"] in p["optimized_ops"] else ""]
                for rank, i in enumerate(p["by_cost"], 1)]
        out.append(table(["rank", "op", "name", "instructions", "share", "library kernel"], rows, right={0, 1, 3, 4}))
        out += [f"note: {n}" for n in p["notes"]] + [""]
    out.append("Instructions, not time: QEMU does not model a chip's pipeline, caches or memory wait states.")
    return "\n".join(out)

