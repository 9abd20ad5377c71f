"""`tfgen verify --port`: the validation firmware over a real serial path.

The board is QEMU's mps2-an386 (Cortex-M4F) running the validation image (-DTFGEN_VALIDATE), its
UART0 a TCP server, reached through pyserial's ``socket://``: the same frames, CRCs and timeouts as a
board on a USB cable. Faults are made on the wire by a TCP proxy between tfgen and QEMU (a byte
dropped or changed, either way) and in the machine itself (QEMU's monitor resets it mid-run).
"""
from __future__ import annotations

import contextlib
import json
import socket
import struct
import subprocess
import threading
import time
import zlib

import pytest

import needs
from codegen.model.inspection import load_model_bytes, parse_model
from codegen.oracle import reference
from codegen.project import boards
from codegen.run import link, onboard, verify
from conftest import model, run_tfgen


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _verify_port(path, port, *args, timeout=900):
    return run_tfgen("verify", path, "--board", "mps2_an386", "--port", f"socket://127.0.0.1:{port}", *args,
                     timeout=timeout)


def _one_error_line(r) -> str:
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


# --- the protocol, without a board ---------------------------------------------------------------

class _Bytes:
    """A port that holds some bytes, then has nothing (a read returns b"" after its timeout)."""

    def __init__(self, data: bytes):
        self.data, self.timeout = bytearray(data), 0.0

    def read(self, n):
        if not self.data:
            time.sleep(min(self.timeout, 0.01))
        out, self.data[:n] = bytes(self.data[:n]), b""
        return out


def test_a_frame_is_found_among_console_text_and_its_crc_checked():
    frame = link.frame(link.ERROR, b"\x03Hmodel X")
    assert frame[:4] == b"\xa5TFV" and frame[-4:] == struct.pack("<I", zlib.crc32(frame[4:-4]))
    lnk = link.Link(_Bytes(b"I (312) boot: ESP-IDF \xa5T log\n" + frame))
    assert lnk.receive(1) == (link.ERROR, b"\x03Hmodel X")
    assert bytes(lnk.console) == b"I (312) boot: ESP-IDF \xa5T log\n"
    bad = bytearray(frame)
    bad[10] ^= 0x01
    with pytest.raises(link.LinkError) as e:
        link.Link(_Bytes(bytes(bad))).receive(1)
    assert e.value.kind == "garbled" and "failed its CRC" in str(e.value)


def test_nothing_waits_for_ever():
    with pytest.raises(link.LinkError) as e:
        link.Link(_Bytes(b"no frame here")).receive(0.3)
    assert e.value.kind == "timeout"
    short = link.frame(link.OUTPUT, b"x" * 40)[:-5]
    with pytest.raises(link.LinkError) as e:
        link.Link(_Bytes(short)).receive(0.3)
    assert e.value.kind == "incomplete" and "stopped after" in str(e.value)


def test_a_silent_port_is_one_line_and_a_timeout():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        r = run_tfgen("verify", model("hello_world_int8"), "--board", "mps2_an386", "--port",
                      f"socket://127.0.0.1:{port}", "--no-upload", "--timeout", "2", "--vectors", 2)
    line = _one_error_line(r)
    assert f"no answer from the board on socket://127.0.0.1:{port} within 2 s" in line and "validation firmware" in line


def test_port_options_are_checked():
    r = run_tfgen("verify", model("hello_world_int8"), "--board", "mps2_an386", "--no-upload")
    assert "--no-upload is for --port" in _one_error_line(r)
    r = run_tfgen("verify", model("hello_world_int8"), "--board", "mps2_an386", "--port", "socket://127.0.0.1:1",
                  "--per-op")
    assert "--per-op is for verify on host or QEMU" in _one_error_line(r)
    r = run_tfgen("verify", model("hello_world_int8"), "--board", "mps2_an386", "--port", "/dev/ttyUSB0")
    assert "mps2_an386 is emulated" in _one_error_line(r)


# --- the acceptance models, through QEMU's UART ----------------------------------------------------

@pytest.mark.parametrize("name,ops", [("kws_ref_model", 13), ("ad01_int8", 10), ("person_detect", 31)])
def test_the_board_computes_what_the_oracle_computes(name, ops):
    needs.cortex_m()
    needs.cmsis_nn()
    r = _verify_port(model(name), _free_port(), "--vectors", 3, "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    report = json.loads(r.stdout)
    assert report["ok"] and report["mismatched_bytes"] == 0 and report["vectors"] == 3 and report["bytes_compared"]
    assert report["uploaded"] == "qemu" and report["platform"] == "qemu" and report["unit"] == "instructions"
    assert len(report["ops"]) == ops and [o["index"] for o in report["ops"]] == list(range(ops))
    # per-op counts add up to the per-inference figure within 2 %
    mean = report["latency"]["mean"]
    assert mean > 0 and abs(report["ops_total"] - mean) <= 0.02 * mean
    assert report["latency"]["mean_ms"] is None          # instructions on QEMU, never called time


def test_the_text_report_lists_every_op():
    needs.cortex_m()
    r = _verify_port(model("hello_world_int8"), _free_port(), "--vectors", 2, "--kernels", "reference")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("PASS: byte-exact   hello_world_int8.tflite on mps2_an386 over socket://")
    assert r.stdout.count("FULLY_CONNECTED") == 3 and "instructions" in r.stdout and " ms" not in r.stdout


# --- one board, and what can go wrong between it and tfgen ---------------------------------------

class _Board:
    """QEMU running hello_world's validation firmware: UART0 on ``port``, its monitor on ``monitor``."""

    def __init__(self):
        path = model("hello_world_int8")
        data = load_model_bytes(path)
        ir = parse_model(data, path.name)
        board = boards.get_board("mps2_an386")
        inputs = reference.random_inputs(ir, 2, 0)
        self.prep, exe = onboard.build_firmware(ir, data, board, inputs, None, "test", {"kernels": "reference"})
        self.port, self.monitor = _free_port(), _free_port()
        cmd = onboard.qemu_command(self.prep.target, exe, "127.0.0.1", self.port)
        cmd = [c if c != "none" or cmd[i - 1] != "-monitor" else f"tcp:127.0.0.1:{self.monitor},server=on,wait=off"
               for i, c in enumerate(cmd)]
        self.qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def reset(self) -> None:
        with socket.create_connection(("127.0.0.1", self.monitor), timeout=5) as m:
            m.sendall(b"system_reset\n")
            time.sleep(0.3)

    def close(self):
        onboard.stop(self.qemu)
        verify.cleanup(self.prep)


@pytest.fixture(scope="module")
def qemu_board():
    needs.cortex_m()
    b = _Board()
    yield b
    b.close()


class _Proxy:
    """Forwards one connection to the board, byte by byte, through ``tamper(direction, index, byte)``
    (direction "up" is tfgen -> board), which returns the bytes to pass on."""

    def __init__(self, board_port: int, tamper):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.board_port, self.tamper = board_port, tamper
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        client, _ = self.server.accept()
        board = socket.create_connection(("127.0.0.1", self.board_port))
        for src, dst, way in ((client, board, "up"), (board, client, "down")):
            threading.Thread(target=self._pump, args=(src, dst, way), daemon=True).start()

    def _pump(self, src, dst, way):
        index = 0
        with contextlib.suppress(OSError):
            while chunk := src.recv(4096):
                out = bytearray()
                for b in chunk:
                    out += self.tamper(way, index, b)
                    index += 1
                dst.sendall(bytes(out))
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


HELLO_FRAME = 4 + 5 + 64 + 4                    # magic, type and length, sha256 hex, CRC
INFER_FRAME = 4 + 5 + 4 + 1 + 4                 # hello_world: vector index, one int8 input
INPUT_AT = 4 + 5 + 4                            # the input byte in an infer frame
READY_FRAME = 4 + 5 + 32 + len("\0".join(("0" * 64, "systick-icount", "qemu", "hello_world_int8"))) + 4
OUTPUT_FRAME = 4 + 5 + 16 + 4 * 3 + 1 + 4       # three ops' ticks, one int8 output


def _through(board: _Board, tamper, *args):
    proxy = _Proxy(board.port, tamper)
    return _verify_port(model("hello_world_int8"), proxy.port, "--no-upload", "--vectors", 3, *args, timeout=300)


def test_no_upload_talks_to_the_running_board(qemu_board):
    r = _verify_port(model("hello_world_int8"), qemu_board.port, "--no-upload", "--vectors", 3, "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["ok"] and report["uploaded"] == "" and len(report["ops"]) == 3


def test_a_board_with_another_model_is_refused(qemu_board):
    r = _verify_port(model("ad01_int8"), qemu_board.port, "--no-upload", "--vectors", 2)
    line = _one_error_line(r)
    assert "does not run ad01_int8.tflite" in line and "this board runs hello_world_int8, sha256 " in line, line
    assert "without --no-upload" in line


def test_a_byte_lost_on_the_way_to_the_board(qemu_board):
    lost = HELLO_FRAME + INFER_FRAME + INPUT_AT     # the input byte of vector 1
    r = _through(qemu_board, lambda way, i, b: b"" if way == "up" and i == lost else bytes([b]))
    line = _one_error_line(r)
    assert "the board received vector 1 of 3 damaged: a frame of 5 bytes stopped in its CRC" in line
    assert "--baud" in line


def test_a_byte_changed_on_the_way_to_the_board(qemu_board):
    changed = HELLO_FRAME + INPUT_AT            # the input byte of vector 0
    r = _through(qemu_board, lambda way, i, b: bytes([b ^ 0x10 if way == "up" and i == changed else b]))
    assert "the board received vector 0 of 3 damaged: a frame of 5 bytes failed its CRC" in _one_error_line(r)


def test_a_byte_lost_on_the_way_back(qemu_board):
    lost = READY_FRAME + OUTPUT_FRAME + 20      # in the answer to vector 1
    r = _through(qemu_board, lambda way, i, b: b"" if way == "down" and i == lost else bytes([b]), "--timeout", "3")
    line = _one_error_line(r)
    assert "the board's answer to vector 1 of 3" in line and "was damaged" in line and "stopped after" in line


def test_a_board_that_resets_mid_run(qemu_board):
    state = {"sent": False}

    def reset_before_vector_1(way, i, b):
        if way == "up" and i == HELLO_FRAME + INFER_FRAME and not state["sent"]:
            state["sent"] = True
            threading.Thread(target=qemu_board.reset, daemon=True).start()
            time.sleep(1.0)                     # the board restarts before vector 1 reaches it
        return bytes([b])
    r = _through(qemu_board, reset_before_vector_1)
    line = _one_error_line(r)
    assert "the board on socket://" in line and "restarted during vector 1 of 3" in line
    # and it serves again, from its start: the error it sent for vector 1 (no hello since it restarted),
    # still on the line, answers an earlier frame and does not confuse the next run
    time.sleep(1.0)
    again = _verify_port(model("hello_world_int8"), qemu_board.port, "--no-upload", "--vectors", 2)
    assert again.returncode == 0, again.stderr


def test_the_host_build_serves_the_protocol_on_its_stdin_and_stdout():
    """The validation image built for the host: its serial link is stdin/stdout, here a TCP connection."""
    from codegen.toolchain import builder
    path = model("hello_world_int8")
    data = load_model_bytes(path)
    ir = parse_model(data, path.name)
    host = boards.get_board("host")
    inputs = reference.random_inputs(ir, 4, 1)
    prep = verify.prepare(ir, data, host, inputs, None, "test")
    try:
        out = prep.project / "build" / "host-validate" / "program"
        exe = builder.build(prep.project, out, target=prep.build_target, extra_flags=onboard.FLAGS).executable
        server = socket.create_server(("127.0.0.1", 0))
        children = []

        def serve():
            conn, _ = server.accept()
            children.append(subprocess.Popen([str(exe)], stdin=conn, stdout=conn, stderr=subprocess.DEVNULL))
            conn.close()
        threading.Thread(target=serve, daemon=True).start()
        port = f"socket://127.0.0.1:{server.getsockname()[1]}"
        result = onboard.verify_on_board(ir, data, host, inputs, port, tflm_dir=None, command="test", upload=False)
        report = result.to_dict()
        assert report["ok"] and report["vectors"] == 4 and report["platform"] == "host"
        assert report["unit"] == "ns" and report["latency"]["mean_ms"] is not None and len(report["ops"]) == 3
    finally:
        for c in children:
            onboard.stop(c)
        verify.cleanup(prep)
