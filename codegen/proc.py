"""The one way tfgen runs another program: logged, under a timeout, failures turned into TfgenError."""
from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from codegen.errors import TfgenError

log = logging.getLogger("tfgen")


def describe_status(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run(cmd: list[str], *, what: str, timeout: float, cwd: Path | None = None,
        env: dict[str, str] | None = None, check: bool = True,
        hint: str | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` capturing its output. ``what`` names it in errors ("the TFLM interpreter")."""
    quoted = shlex.join(str(c) for c in cmd)
    log.debug("running: %s", quoted)
    try:
        result = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                                text=True, errors="replace", timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TfgenError(f"{what} did not finish within {timeout:g} s and was stopped (command: {quoted})",
                         hint or "the model may be corrupt; otherwise raise the timeout")
    except FileNotFoundError:
        raise TfgenError(f"{what}: command not found: {cmd[0]}", hint or "install it and try again")
    if check and result.returncode != 0:
        output = tail(result.stderr or result.stdout)
        detail = f": {output.splitlines()[-1]}" if output else ""
        log.debug("output of the failed command:\n%s", output)
        raise TfgenError(f"{what} {describe_status(result.returncode)}{detail} (command: {quoted})", hint)
    return result


@contextlib.contextmanager
def native_stderr(sink: list[str]):
    """Capture what native code (TFLM's MicroPrintf, TensorFlow's C++ logs) writes to fd 2.

    The captured text is appended to ``sink`` when the block ends, also when it raises.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield sink
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            sink.append(tmp.read().decode("utf-8", "replace"))
