"""Verify on the board: the validation firmware (-DTFGEN_VALIDATE) answers over its serial link.

``tfgen verify MODEL --board B --port PORT``: the oracle's vectors go to the board one at a time
(``link``), the outputs come back and are compared byte for byte with the oracle's, with the ticks
of every Invoke and every op. Upload first (unless ``upload`` is false): PlatformIO's ``validate``
environment for a real board; for an emulated one (a board with a ``[qemu]`` table), tfgen builds the
firmware and starts QEMU with the board's UART on the ``socket://`` port, so the whole serial path is
the one a board takes.
"""
from __future__ import annotations

import contextlib
import shlex
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from codegen.errors import TfgenError
from codegen.model.ir import ModelIR
from codegen.model.vectors import VectorSet
from codegen.oracle import oracle, reference
from codegen.project import targets
from codegen.project.boards import Board
from codegen.run import link, replay, verify
from codegen.toolchain import builder, proc

FLAGS = ("-DTFGEN_VALIDATE", "-DTFGEN_PROFILE")
VALIDATE_ENV = "validate"
DEFAULT_BAUD = 115200
DEFAULT_TIMEOUT_S = 30.0
LINE_HINT = "check the cable and the baud rate (--baud, default 115200), or lower it"


@dataclass(frozen=True)
class OpTiming:
    index: int
    op: str
    ticks: int                      # mean over the vectors

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class BoardResult:
    model: str
    board: str
    port: str
    ready: link.Ready
    comparison: replay.Comparison
    invoke_ticks: tuple[int, ...]   # per vector
    ops: tuple[OpTiming, ...]       # in execution order; () when the events do not match the model's ops
    uploaded: str                   # how the firmware got there ("qemu", "platformio", "" with --no-upload)
    oracle: str
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.comparison.ok

    @property
    def unit(self) -> str:
        return {"cycles": "cycles", "systick-icount": "instructions", "ns": "ns", "us": "us"}.get(
            self.ready.tick_source, "ticks")

    def count(self, ticks: float) -> int:
        """Ticks as the unit's count (QEMU's SysTick ticks are 1e9/Hz instructions under -icount shift=0)."""
        per_tick = 1_000_000_000 // self.ready.ticks_per_second if self.unit == "instructions" else 1
        return round(ticks * per_tick)

    def ms(self, ticks: float) -> float | None:
        """Milliseconds at the board's clock; None on QEMU (instructions are not time)."""
        return None if self.unit == "instructions" else round(1000 * ticks / self.ready.ticks_per_second, 4)

    def to_dict(self) -> dict:
        c, r = self.comparison, self.ready
        first = c.differences[0] if c.differences else None
        mean = sum(self.invoke_ticks) / max(len(self.invoke_ticks), 1)
        top = max(self.invoke_ticks, default=0)
        ops_total = sum(o.ticks for o in self.ops)
        return {
            "model": self.model, "board": self.board, "ran_on": f"{self.board} over {self.port}", "port": self.port,
            "ok": self.ok, "vectors": c.vectors, "bytes_compared": c.bytes_compared,
            "mismatched_bytes": c.mismatched_bytes, "max_lsb_difference": c.max_lsb, "missing_outputs": len(c.missing),
            "first_mismatch": first and dict(first.__dict__), "platform": r.platform, "tick_source": r.tick_source,
            "unit": self.unit, "clock_hz": r.ticks_per_second if self.unit != "instructions" else None,
            "arena_used_bytes": r.arena_used, "arena_size": r.arena_size, "uploaded": self.uploaded,
            "latency": {"mean": self.count(mean), "max": self.count(top), "mean_ms": self.ms(mean),
                        "max_ms": self.ms(top)},
            "ops": [{**o.to_dict(), "count": self.count(o.ticks), "ms": self.ms(o.ticks),
                     "percent": round(100 * o.ticks / ops_total, 2) if ops_total else 0.0} for o in self.ops],
            "ops_total": self.count(ops_total),
            "ops_vs_invoke_percent": round(100 * ops_total / mean, 2) if mean and self.ops else None,
            "oracle": self.oracle, "notes": list(self.notes)}


def verify_on_board(ir: ModelIR, model: bytes, board: Board, inputs: list, port: str, *, tflm_dir: Path | None,
                    command: str, upload: bool = True, baud: int = DEFAULT_BAUD,
                    timeout: float = DEFAULT_TIMEOUT_S, **options) -> BoardResult:
    """Upload the validation firmware (unless ``upload`` is false), stream the oracle's vectors to it on
    ``port`` and compare. ``options``: verify's (kernels, cmsis_nn_dir, esp_nn_dir)."""
    with contextlib.ExitStack() as stack:
        if not upload:
            vs, how = reference.run_reference(ir, model, inputs, crosscheck=False).vectors, ""
        elif targets.for_board(board) is not None and board.arch != "host":
            vs, how = _start_emulated(stack, ir, model, board, inputs, port, tflm_dir, command, options), "qemu"
        elif board.arch == "host":
            raise TfgenError("--port talks to a board; the host build is verified without it",
                             f"run `tfgen verify {ir.source} --board host`")
        else:
            vs, how = _upload_pio(stack, ir, model, board, inputs, port, tflm_dir, command, options), "platformio"
        port_handle = stack.enter_context(link.open_port(port, baud, connect_timeout=30 if how == "qemu" else 2))
        port_handle.reset_input_buffer()        # what an earlier run left unread
        session = Session(link.Link(port_handle), port, timeout)
        ready = session.hello(ir.sha256, Path(ir.source).name)
        received = session.run(vs)
    return _result(ir, board, port, ready, vs, received, how)


class Session:
    """One conversation with the validation firmware; every failure is one LinkError line."""

    def __init__(self, lnk: link.Link, port: str, timeout: float):
        self.link, self.port, self.timeout = lnk, port, timeout

    def hello(self, sha256: str, name: str) -> link.Ready:
        self.link.send(link.HELLO, sha256.encode())
        while True:
            kind, payload = self._receive("the hello")
            if kind == link.ERROR and len(payload) >= 2 and payload[1:2] not in (link.HELLO, b"\0"):
                continue                        # it answers an earlier run's frame, left on the line
            if kind == link.READY:
                ready = link.Ready.parse(payload)
                if ready.reason == 1:
                    if ready.protocol != link.PROTOCOL:
                        raise link.LinkError("protocol", f"the board speaks validation protocol {ready.protocol}, "
                                             f"this tfgen {link.PROTOCOL}", "upload the firmware of this tfgen")
                    return ready
                continue                        # its boot announcement: the answer follows
            self._unexpected(kind, payload, "the hello", name=name, sha256=sha256)

    def run(self, vs: VectorSet) -> list[link.Output]:
        received = []
        output_bytes = sum(spec.nbytes for spec in vs.outputs)
        for v in range(vs.count):
            payload = struct.pack("<I", v) + b"".join(
                _le_bytes(data[v]) for data in vs.input_data)
            self.link.send(link.INFER, payload)
            what = f"vector {v} of {vs.count}"
            kind, answer = self._receive(what)
            if kind != link.OUTPUT:
                self._unexpected(kind, answer, what)
            out = self._parse(answer, output_bytes, what)
            if out.vector != v:
                raise link.LinkError("garbled", f"the board answered vector {out.vector} for {what} on {self.port}",
                                     LINE_HINT)
            received.append(out)
        return received

    def _parse(self, payload: bytes, output_bytes: int, what: str) -> link.Output:
        try:
            return link.Output.parse(payload, output_bytes)
        except link.LinkError as e:
            raise link.LinkError(e.kind, f"the board's answer to {what} on {self.port} is garbled: {e}",
                                 LINE_HINT) from None

    def _receive(self, what: str) -> tuple[bytes, bytes]:
        try:
            return self.link.receive(self.timeout)
        except link.LinkError as e:
            printed = self.link.console_tail()
            said = f" (the board printed: {printed})" if printed else ""
            if e.kind == "timeout" and what == "the hello":
                raise link.LinkError("timeout", f"no answer from the board on {self.port} within {self.timeout:g} s"
                                     f"{said}", "is its validation firmware running? Upload it (verify without "
                                     "--no-upload, or `pio run -e validate -t upload` in its project); check the "
                                     "port and --baud") from None
            if e.kind == "timeout":
                raise link.LinkError("timeout", f"the board on {self.port} did not answer {what} within "
                                     f"{self.timeout:g} s{said}", "a slow model needs a larger --timeout; a board "
                                     "that hangs in Invoke shows why on its console (`tfgen monitor`)") from None
            raise link.LinkError(e.kind, f"the board's answer to {what} on {self.port} was damaged: {e}{said}",
                                 LINE_HINT) from None

    def _unexpected(self, kind: bytes, payload: bytes, what: str, name: str = "", sha256: str = "") -> None:
        if kind == link.READY:
            raise link.LinkError("reset", f"the board on {self.port} restarted during {what} (it announced itself "
                                 "again)", "a power dip, a watchdog or a crash in Invoke: see its console "
                                 "(`tfgen monitor`)")
        if kind != link.ERROR or len(payload) < 2:
            raise link.LinkError("garbled", f"the board sent a frame of type {kind!r} in answer to {what} on "
                                 f"{self.port}", LINE_HINT)
        code, message = link.ERRORS.get(payload[0], str(payload[0])), payload[2:].decode("utf-8", "replace")
        if code == "wrong-model":
            raise link.LinkError(code, f"the board on {self.port} does not run {name} (sha256 {sha256[:16]}...): "
                                 f"{message}", "upload this model's validation firmware: verify without "
                                 "--no-upload") from None
        if code in ("crc", "incomplete", "length"):
            raise link.LinkError(code, f"the board received {what} damaged: {message}", LINE_HINT)
        raise link.LinkError(code, f"the board could not run {what}: {message}",
                             "see the board's console (`tfgen monitor`)")


def _le_bytes(array) -> bytes:
    import numpy as np
    a = np.ascontiguousarray(array)
    return a.astype(a.dtype.newbyteorder("<")).tobytes()


def _result(ir: ModelIR, board: Board, port: str, ready: link.Ready, vs: VectorSet,
            received: list[link.Output], how: str) -> BoardResult:
    outputs = {}
    for out in received:
        offset = 0
        for o, spec in enumerate(vs.outputs):
            outputs[(out.vector, o)] = out.outputs[offset:offset + spec.nbytes]
            offset += spec.nbytes
    log = replay.ReplayLog(outputs, {"result": "pass"}, (), (), {})
    comparison = replay.compare(vs, log)
    ops = [op for op in ir.operators if op.subgraph == 0]
    notes = []
    timings: tuple[OpTiming, ...] = ()
    if received and all(len(r.op_ticks) == len(ops) for r in received):
        timings = tuple(OpTiming(i, op.name, round(sum(r.op_ticks[i] for r in received) / len(received)))
                        for i, op in enumerate(ops))
    elif received:
        notes.append(f"the board timed {len(received[0].op_ticks)} op events, the model has {len(ops)} ops in "
                     "its main graph (control flow): no per-op table")
    if ready.sha256 != ir.sha256:
        notes.append(f"the board says it runs sha256 {ready.sha256[:16]}..., not this model's")
    if ready.tick_source == "systick-icount":
        notes.append("QEMU: counts are instructions (-icount shift=0), not time on a chip")
    return BoardResult(Path(ir.source).name, board.name, port, ready, comparison,
                       tuple(r.invoke_ticks for r in received), timings, how, oracle.tflm_version(), tuple(notes))


def _local_socket(port: str, board: Board) -> tuple[str, int]:
    url = urlparse(port)
    if url.scheme != "socket" or url.hostname not in ("localhost", "127.0.0.1", "::1") or not url.port:
        raise TfgenError(f"{board.name} is emulated: its UART is a TCP port QEMU opens here, and {port} is not "
                         "one", "pass --port socket://127.0.0.1:PORT (any free port), or --no-upload to reach "
                         "a board already running")
    return url.hostname, url.port


def build_firmware(ir: ModelIR, model: bytes, board: Board, inputs: list, tflm_dir: Path | None, command: str,
                   options: dict) -> tuple[verify.Prepared, Path]:
    """The emulated board's project (with the oracle's vectors, as verify makes it) and its validation ELF."""
    prep = verify.prepare(ir, model, board, inputs, tflm_dir, command, on="qemu", **options)
    try:
        out = prep.project / "build" / f"{prep.build_target.name}-validate" / Path(prep.build_target.output).name
        return prep, builder.build(prep.project, out, target=prep.build_target, extra_flags=FLAGS).executable
    except BaseException:
        verify.cleanup(prep)
        raise


def _start_emulated(stack: contextlib.ExitStack, ir: ModelIR, model: bytes, board: Board, inputs: list,
                    port: str, tflm_dir: Path | None, command: str, options: dict) -> VectorSet:
    """Build the validation firmware for the emulated board and start QEMU with its UART on ``port``."""
    host, number = _local_socket(port, board)
    prep, exe = build_firmware(ir, model, board, inputs, tflm_dir, command, options)
    stack.callback(verify.cleanup, prep)
    log_path = prep.project / "build" / "qemu-validate.log"
    console = stack.enter_context(open(log_path, "wb"))
    qemu = subprocess.Popen(qemu_command(prep.target, exe, host, number), stdin=subprocess.DEVNULL,
                            stdout=console, stderr=subprocess.STDOUT)
    stack.callback(stop, qemu)
    time.sleep(0.2)
    if qemu.poll() is not None:
        text = log_path.read_text(errors="replace")
        raise TfgenError(f"QEMU did not start with its UART on {port}: {proc.tail(text, 1) or 'no message'}",
                         "pick another free port") from None
    return prep.vectors


def qemu_command(target: targets.BoardTarget, executable: Path, host: str, port: int) -> list:
    """The target's QEMU command with UART0 a TCP server on host:port (QEMU waits for the connection)."""
    cmd = [str(c) for c in target.run_command(executable)]
    at = cmd.index("-serial")
    cmd[at:at + 2] = ["-chardev", f"socket,id=tfgen,host={host},port={port},server=on,wait=on",
                      "-serial", "chardev:tfgen"]
    return cmd


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _upload_pio(stack: contextlib.ExitStack, ir: ModelIR, model: bytes, board: Board, inputs: list, port: str,
                tflm_dir: Path | None, command: str, options: dict) -> VectorSet:
    """Generate the project and upload its ``validate`` environment with PlatformIO."""
    from codegen.project import generate
    from codegen.run import build
    vs = reference.run_reference(ir, model, inputs, crosscheck=False).vectors
    gen = generate.generate(ir, model, board, generate.Options(
        tflm_dir=tflm_dir, cmsis_nn_dir=options.get("cmsis_nn_dir"), esp_nn_dir=options.get("esp_nn_dir"),
        kernels=options.get("kernels"), command=command, runtime=options.get("runtime", "tflm")))
    if not any(e.name == VALIDATE_ENV for e in gen.plan.environments):
        raise TfgenError(f"{board.name}'s project has no `{VALIDATE_ENV}` environment", "please report it")
    project = verify.work_dir(ir, board.name) / "project"
    stack.callback(lambda: __import__("shutil").rmtree(project.parent, ignore_errors=True))
    verify.refresh(gen.files, project)
    args = ["run", "-e", VALIDATE_ENV, "-t", "upload", "--upload-port", port]
    if build.run_pio(project, args) != 0:
        raise TfgenError(f"pio {shlex.join(args)} failed for {board.name}",
                         f"run it in a generated project to see why: tfgen generate {ir.source} --board "
                         f"{board.name} -o proj && cd proj && pio {shlex.join(args)}")
    return vs
