"""`tfgen verify --port`: the model verified on the board itself, over its serial port."""
from __future__ import annotations

from codegen.cli.output import checked_model_board_inputs, emit
from codegen.cli.textreport import table, verdict_lines


def add_port_options(p) -> None:
    g = p.add_argument_group("on the board (validation firmware over serial)")
    g.add_argument("--port", metavar="PORT",
                   help="verify on the board on this serial port (/dev/ttyUSB0, COM3, or socket://HOST:PORT): "
                        "uploads the validation firmware (PlatformIO's `validate` environment; an emulated "
                        "board runs in QEMU with its UART on socket://127.0.0.1:PORT), streams the vectors and "
                        "reports latency and every op's cycles")
    g.add_argument("--no-upload", action="store_true",
                   help="with --port: the board runs the validation firmware already; only talk to it")
    g.add_argument("--baud", type=int, default=115200, help="with --port: baud rate (default 115200)")
    g.add_argument("--timeout", type=float, default=30.0, metavar="S",
                   help="with --port: seconds to wait for each answer (default 30)")


def check_port_options(args) -> None:
    from codegen.errors import TfgenError
    if args.port is None:
        if args.no_upload:
            raise TfgenError("--no-upload is for --port: it says the board runs its validation firmware already",
                             "add --port PORT, or drop --no-upload")
        return
    clash = [f for f, on in (("--on", args.on), ("--sanitize", args.sanitize), ("--per-op", args.per_op)) if on]
    if clash:
        raise TfgenError(f"{clash[0]} is for verify on host or QEMU, not with --port (the board runs the image)",
                         f"drop {clash[0]}, or drop --port")
    if args.timeout <= 0 or args.baud <= 0:
        raise TfgenError("--timeout and --baud take positive numbers", "e.g. --timeout 30 --baud 115200")


def run_on_board(args) -> int:
    import shlex
    from codegen.run import onboard
    model, ir, board, inputs = checked_model_board_inputs(args)
    command = shlex.join(["tfgen", "verify", args.model.name, "--board", board.name])
    result = onboard.verify_on_board(ir, model, board, inputs, args.port, tflm_dir=args.tflm_dir, command=command,
                                     upload=not args.no_upload, baud=args.baud, timeout=args.timeout,
                                     kernels=args.kernels, cmsis_nn_dir=args.cmsis_nn_dir,
                                     esp_nn_dir=args.esp_nn_dir, runtime=args.runtime)
    emit(result.to_dict(), args.json, board_verify_text)
    return 0 if result.ok else 1


def board_verify_text(r: dict) -> str:
    """`verify --port`: the verdict, latency, and every op in execution order (cycles and ms, or instructions)."""
    out = verdict_lines(r, r["ran_on"])
    unit, lat = r["unit"], r["latency"]
    timed = lat["mean_ms"] is not None
    clock = f" at {r['clock_hz'] / 1e6:g} MHz" if r.get("clock_hz") and unit == "cycles" else ""
    out.append(f"latency    mean {lat['mean']:,} {unit}, max {lat['max']:,}"
               + (f" ({lat['mean_ms']:.3f} ms mean, {lat['max_ms']:.3f} ms max{clock})" if timed else ""))
    out.append(f"arena      {r['arena_used_bytes']:,} bytes used on the board, of {r['arena_size']:,}; "
               f"platform {r['platform']}, counter {r['tick_source']}")
    if r["ops"]:
        rows = [[o["index"], o["op"], o["count"], *([f"{o['ms']:.3f}"] if timed else []), f"{o['percent']:.1f}%"]
                for o in r["ops"]]
        out.append(table(["op", "name", unit, *(["ms"] if timed else []), "share"], rows, right={0, 2, 3, 4}))
        out.append(f"ops        {r['ops_total']:,} {unit} in all, {r['ops_vs_invoke_percent']:.1f} % of the "
                   "inference (the rest is the interpreter between ops)")
    out.append(f"versions   oracle tflite_micro {r['oracle']}")
    out += [f"note: {n}" for n in r["notes"]]
    return "\n".join(out)
