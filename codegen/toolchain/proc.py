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
import threading
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


_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()


def stop_children() -> None:
    """Kill every program ``run`` has running (an interrupted tfgen leaves none behind)."""
    with _running_lock:
        for p in list(_running):
            with contextlib.suppress(OSError):
                p.kill()


def _run(cmd: list[str], cwd, env, timeout: float) -> subprocess.CompletedProcess:
    """subprocess.run, with the child registered so that stop_children can end it."""
    with subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          errors="replace", stdin=subprocess.DEVNULL) as p:
        with _running_lock:
            _running.add(p)
        try:
            out, err = p.communicate(timeout=timeout)
        except BaseException:
            p.kill()
            p.communicate()
            raise
        finally:
            with _running_lock:
                _running.discard(p)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(folder: Path) -> None:
    """Remove the entries of ``folder`` named ``<pid>-...`` whose process is gone (a tfgen that was
    killed with SIGKILL could not clean up after itself)."""
    import shutil
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for entry in entries:
        pid, _, rest = entry.name.partition("-")
        if pid.isdigit() and rest and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def run(cmd: list[str], *, what: str, timeout: float, cwd: Path | None = None,
        env: dict[str, str] | None = None, check: bool = True,
        hint: str | None = None) -> subprocess.CompletedProcess:
    """Run ``cmd`` capturing its output. ``what`` names it in errors ("the TFLM interpreter")."""
    quoted = shlex.join(str(c) for c in cmd)
    log.debug("running: %s", quoted)
    try:
        result = _run([str(c) for c in cmd], cwd, env, timeout)
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
