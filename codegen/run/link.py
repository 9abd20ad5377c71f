"""The host's side of the validation firmware's serial protocol (``firmware/tfgen_validate.h``).

Frames, both ways: ``A5 'T' 'F' 'V' | type | length (u32 LE) | payload | CRC-32 (zlib) of type,
length and payload``. Bytes between frames (a boot log, TFLM's messages) are kept as the board's
console text, for the error messages. Every read has a deadline: nothing here waits for ever.
"""
from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass

from codegen.errors import TfgenError

MAGIC = b"\xa5TFV"
PROTOCOL = 1
HELLO, INFER, READY, OUTPUT, ERROR = b"H", b"I", b"R", b"O", b"E"
MAX_FRAME = 64 * 1024 * 1024
ERRORS = {1: "crc", 2: "incomplete", 3: "wrong-model", 4: "length", 5: "invoke", 6: "no-hello", 7: "type",
          8: "init"}
_READY = struct.Struct("<BBHIIIIIII")


def frame(kind: bytes, payload: bytes) -> bytes:
    head = kind + struct.pack("<I", len(payload))
    return MAGIC + head + payload + struct.pack("<I", zlib.crc32(head + payload))


@dataclass(frozen=True)
class Ready:
    reason: int                 # 0: the board (re)started; 1: the answer to a hello
    protocol: int
    ticks_per_second: int
    arena_used: int
    arena_size: int
    inputs: int
    outputs: int
    input_bytes: int
    output_bytes: int
    sha256: str
    tick_source: str            # "cycles", "systick-icount" (QEMU: instructions), "ns", "us"
    platform: str
    model: str

    @classmethod
    def parse(cls, payload: bytes) -> "Ready":
        if len(payload) < _READY.size:
            raise LinkError("garbled", f"a ready frame of {len(payload)} bytes")
        reason, protocol, _, *numbers = _READY.unpack_from(payload)
        strings = payload[_READY.size:].decode("utf-8", "replace").split("\0")
        if len(strings) != 4:
            raise LinkError("garbled", "a ready frame without its four names")
        return cls(reason, protocol, *numbers, *strings)


@dataclass(frozen=True)
class Output:
    vector: int
    invoke_ticks: int
    invoke_us: int
    op_ticks: tuple[int, ...]
    outputs: bytes              # every output tensor's bytes, in order

    @classmethod
    def parse(cls, payload: bytes, output_bytes: int) -> "Output":
        if len(payload) < 16:
            raise LinkError("garbled", f"an output frame of {len(payload)} bytes")
        vector, ticks, us, events = struct.unpack_from("<IIII", payload)
        if len(payload) != 16 + 4 * events + output_bytes:
            raise LinkError("garbled", f"an output frame of {len(payload)} bytes, with {events} op timings and "
                                       f"{output_bytes} output bytes it would be {16 + 4 * events + output_bytes}")
        ops = struct.unpack_from(f"<{events}I", payload, 16)
        return cls(vector, ticks, us, ops, payload[16 + 4 * events:])


class LinkError(TfgenError):
    """What went wrong on the link: ``kind`` is "timeout", "garbled", "reset" or a board error code's name."""

    def __init__(self, kind: str, message: str, hint: str = ""):
        super().__init__(message, hint)
        self.kind = kind


class Link:
    """Frames over a pyserial port (a device, or a ``socket://host:port`` URL)."""

    def __init__(self, port):
        self.port = port
        self.console = bytearray()          # the bytes outside frames, as the board printed them

    def send(self, kind: bytes, payload: bytes) -> None:
        self.port.write(frame(kind, payload))
        self.port.flush()

    def receive(self, timeout: float) -> tuple[bytes, bytes]:
        """The next frame's (type, payload) within ``timeout`` seconds; LinkError on a timeout or a bad CRC."""
        deadline = time.monotonic() + timeout
        window = b""
        while window != MAGIC:
            window += self._read(1, deadline, "no frame")
            while not MAGIC.startswith(window):
                self.console += window[:1]
                window = window[1:]
        head = self._read(5, deadline, "a frame's header")
        kind, length = head[:1], struct.unpack("<I", head[1:])[0]
        if length > MAX_FRAME:
            raise LinkError("garbled", f"a frame header announcing {length:,} bytes")
        payload = self._read(length, deadline, f"a {length:,}-byte frame")
        crc = struct.unpack("<I", self._read(4, deadline, "a frame's CRC"))[0]
        if crc != zlib.crc32(head + payload):
            raise LinkError("garbled", f"a {length:,}-byte frame from the board failed its CRC (a byte changed or "
                                       "was lost on the line)")
        return kind, payload

    def _read(self, count: int, deadline: float, what: str) -> bytes:
        data = bytearray()
        while len(data) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                if what == "no frame":
                    raise LinkError("timeout", "no frame came")
                raise LinkError("incomplete", f"{what} stopped after {len(data)} of {count} bytes")
            self.port.timeout = min(left, 0.5)
            data += self.port.read(count - len(data))
        return bytes(data)

    def console_tail(self, lines: int = 3) -> str:
        text = self.console.decode("utf-8", "replace").strip().splitlines()
        return " | ".join(l.strip() for l in text[-lines:] if l.strip())


def open_port(url: str, baud: int, connect_timeout: float = 10.0):
    """Open a serial device or a ``socket://`` URL with pyserial; a socket that is not listening yet
    (QEMU starting) is retried until ``connect_timeout``."""
    import serial
    deadline = time.monotonic() + connect_timeout
    while True:
        try:
            return serial.serial_for_url(url, baudrate=baud, timeout=0.5, write_timeout=30)
        except (serial.SerialException, ValueError, OSError) as e:
            if not url.startswith("socket://") or time.monotonic() > deadline or isinstance(e, ValueError):
                raise TfgenError(f"cannot open the serial port {url}: {e}",
                                 "check the port name (`tfgen monitor` lists ports; `socket://HOST:PORT` for a TCP "
                                 "serial) and that no other program holds it") from None
            time.sleep(0.2)
