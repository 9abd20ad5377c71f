"""Corrupted models never crash or hang `tfgen inspect`.

Real models are mutated (bit flips, byte overwrites, truncation, zeroed or overwritten 4-byte words),
seeded so every run sees the same mutants. Two levels:

* in process: ``parse_model`` + ``require_tflm_int8`` + ``summary`` (+ its JSON and text forms) on
  ~400 mutants; each must give a result or a one-line ``TfgenError``, within a time bound;
* the whole CLI, ``tfgen inspect --json``, on 40 mutants that parse and pass the INT8 checks, so
  that each reaches TFLM's interpreter (in a child process that may crash or hang on them): exit 0
  with valid JSON, or exit 2 with one ``error:`` line, never a traceback, within a timeout.

A failure names the model and the mutation (offsets, values), which is enough to rebuild the file.
Run with ``-s`` to see the summary of outcomes.
"""
from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import re
import signal
import struct
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from codegen.model import inspection
from codegen.errors import TfgenError
from codegen.cli.textreport import inspect_text
from conftest import REPO
from conftest import model as shared_model

SEED = 20241128
IN_PROCESS = {"hello_world_int8": 320, "kws_ref_model": 80}
CLI_MUTANTS = {"hello_world_int8": 32, "kws_ref_model": 8}
PARSE_LIMIT_S = 2.0           # any single in-process inspection slower than this fails the test
HANG_GUARD_S = 30             # ... and one that runs this long is interrupted (a hang)
CLI_TIMEOUT_S = 120           # one `tfgen inspect --json` of a 2.7 kB / 54 kB model takes ~0.4 s

INTERESTING_BYTES = (0x00, 0x01, 0x7F, 0x80, 0xFF)
INTERESTING_WORDS = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFC, 1 << 20)
TRACEBACK_BITS = re.compile(r'Traceback|File "[^"]*", line \d+|\^\^\^\^')


# --------------------------------------------------------------------------------------------------
# mutations


@dataclass(frozen=True)
class Mutation:
    model: str                                   # name in conftest.MODELS
    kind: str                                    # flip | bytes | truncate | zero4 | word
    edits: tuple[tuple[int, int], ...] = ()      # (offset, bit) for flip, (offset, value) otherwise
    length: int | None = None                    # for truncate

    def apply(self, buf: bytes) -> bytes:
        if self.kind == "truncate":
            return buf[: self.length]
        b = bytearray(buf)
        for off, v in self.edits:
            if self.kind == "flip":
                b[off] ^= 1 << v
            elif self.kind == "bytes":
                b[off] = v
            elif self.kind == "zero4":
                b[off:off + 4] = bytes(4)
            elif self.kind == "word":
                b[off:off + 4] = struct.pack("<I", v)
        return bytes(b)

    def __str__(self) -> str:
        if self.kind == "truncate":
            return f"{self.model}.tflite truncated to {self.length} bytes"
        if self.kind == "flip":
            what = ", ".join(f"bit {bit} of byte {off}" for off, bit in self.edits)
        elif self.kind == "zero4":
            what = ", ".join(f"4 bytes at {off} zeroed" for off, _ in self.edits)
        elif self.kind == "word":
            what = ", ".join(f"u32 at {off} := {v:#x}" for off, v in self.edits)
        else:
            what = ", ".join(f"byte {off} := {v:#04x}" for off, v in self.edits)
        return f"{self.model}.tflite with {what}"


def random_mutation(rng: random.Random, name: str, size: int) -> Mutation:
    kind = rng.choices(["flip", "bytes", "truncate", "zero4", "word"], weights=[3, 3, 1, 2, 2])[0]
    n = rng.choice([1, 1, 1, 2, 3])
    if kind == "truncate":
        return Mutation(name, kind, length=rng.randrange(size))
    if kind == "flip":
        edits = [(rng.randrange(size), rng.randrange(8)) for _ in range(n)]
    elif kind == "bytes":
        edits = [(rng.randrange(size), rng.choice(INTERESTING_BYTES + (rng.randrange(256),)))
                 for _ in range(n)]
    elif kind == "zero4":
        edits = [(rng.randrange(size // 4) * 4, 0) for _ in range(n)]
    else:
        edits = [(rng.randrange(size // 4) * 4, rng.choice(INTERESTING_WORDS + (rng.randrange(size),)))
                 for _ in range(n)]
    return Mutation(name, kind, tuple(edits))


def originals() -> dict[str, bytes]:
    return {name: shared_model(name).read_bytes() for name in ("hello_world_int8", "kws_ref_model")}


# --------------------------------------------------------------------------------------------------
# level (a): in process


class _Hang(BaseException):
    """Raised by SIGALRM when one inspection runs past HANG_GUARD_S (BaseException: no `except
    Exception` in the code under test can swallow it)."""


@contextlib.contextmanager
def hang_guard(seconds: float):
    def fire(signum, frame):
        raise _Hang()
    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def inspect_in_process(buf: bytes, source: str) -> str:
    """What `tfgen inspect` does before it measures the arena: the outcome, as a short label."""
    ir = inspection.parse_model(buf, source)
    s = inspection.summary(ir)
    json.loads(json.dumps(s, default=str))      # the --json report (the CLI also writes inf/nan as strings)
    inspect_text(s)                              # the text report
    problems = inspection.firmware_problems(ir)
    try:
        inspection.require_tflm_int8(ir)
    except TfgenError as exc:
        check_message(exc)
        assert problems, "require_tflm_int8 refused a model without problems"
        return "parsed, refused as firmware: " + normalize(exc.message.split(": ", 1)[1])
    assert not problems
    return "parsed, fit for INT8 firmware"


def check_message(exc: TfgenError) -> None:
    text = f"error: {exc.message}" + (f" (try: {exc.hint})" if exc.hint else "")
    assert exc.hint, f"no fix in: {text}"
    assert "\n" not in text and "\r" not in text, f"the error is not one line: {text!r}"


def normalize(message: str) -> str:
    """A message without its numbers, names and flatbuffers' details: its kind, for the summary."""
    m = re.sub(r"^\S+: ", "", message)
    m = re.sub(r"\(inputs/outputs .*", "(...)", m)
    m = re.sub(r"\((\w+) while reading the flatbuffer: .*", r"(\1 while reading the flatbuffer)", m)
    m = re.sub(r"(?<![\w.])-?\d+", "N", m)
    m = re.sub(r"\((N, )+N\)", "(...)", m)
    return m[:110]


def test_inspect_mutants_in_process():
    rng = random.Random(SEED)
    models = originals()
    outcomes: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    slowest = (0.0, "")
    parsed = 0
    for name, count in IN_PROCESS.items():
        for _ in range(count):
            mut = random_mutation(rng, name, len(models[name]))
            buf = mut.apply(models[name])
            start = time.perf_counter()
            try:
                with hang_guard(HANG_GUARD_S):
                    label = inspect_in_process(buf, f"{name}.tflite")
                parsed += 1
            except TfgenError as exc:
                try:
                    check_message(exc)
                    label = "rejected: " + normalize(exc.message)
                except AssertionError as bad:
                    label = "BAD MESSAGE"
                    failures.append(f"{mut}: {bad}")
            except _Hang:
                label = "HANG"
                failures.append(f"{mut}: still running after {HANG_GUARD_S} s")
            except BaseException as exc:            # anything else is a bug; KeyboardInterrupt too
                if isinstance(exc, KeyboardInterrupt):
                    raise
                label = f"CRASH {type(exc).__name__}"
                where = traceback.extract_tb(exc.__traceback__)[-1]
                failures.append(f"{mut}: {type(exc).__name__}: {exc} (at {where.filename}:{where.lineno} "
                                f"in {where.name})")
            elapsed = time.perf_counter() - start
            if elapsed > PARSE_LIMIT_S and label != "HANG":
                failures.append(f"{mut}: took {elapsed:.2f} s (limit {PARSE_LIMIT_S} s)")
            slowest = max(slowest, (elapsed, str(mut)))
            outcomes[label] += 1

    total = sum(IN_PROCESS.values())
    print(f"\nin-process inspection of {total} mutants: {parsed} parsed, {total - parsed} rejected; "
          f"slowest {slowest[0] * 1000:.1f} ms ({slowest[1]})")
    for label, n in outcomes.most_common():
        print(f"  {n:4d}  {label}")
    assert not failures, f"{len(failures)} of {total} mutants broke inspection:\n" + "\n".join(failures)
    # The mutants must exercise both sides, or the test proves little.
    assert parsed >= total // 10 and total - parsed >= total // 10, outcomes


# --------------------------------------------------------------------------------------------------
# level (b): the whole CLI, with the arena measured by TFLM in a child process


def cli_mutants() -> list[tuple[Mutation, bytes]]:
    """Mutants that parse and pass the INT8 checks, so that `inspect` hands them to TFLM."""
    rng = random.Random(SEED + 1)
    models = originals()
    chosen: list[tuple[Mutation, bytes]] = []
    for name, want in CLI_MUTANTS.items():
        found = tries = 0
        while found < want:
            tries += 1
            assert tries < 50 * want, f"too few {name} mutants parse; change the mutation mix"
            mut = random_mutation(rng, name, len(models[name]))
            buf = mut.apply(models[name])
            try:
                ir = inspection.parse_model(buf, f"{name}.tflite")
            except TfgenError:
                continue
            if inspection.firmware_problems(ir) or buf == models[name]:
                continue
            chosen.append((mut, buf))
            found += 1
    return chosen


def run_cli(args: list, tmpdir: Path, timeout: float) -> tuple[int | None, str, str, float]:
    """Returns (exit status or None on timeout, stdout, stderr, seconds). The CLI runs in its own
    process group, so that a timeout also ends the TFLM worker it started."""
    env = dict(os.environ, TMPDIR=str(tmpdir),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    start = time.monotonic()
    p = subprocess.Popen([sys.executable, "-m", "codegen", *map(str, args)], env=env, cwd=tmpdir.parent,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, errors="replace", start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err, time.monotonic() - start
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return None, out, err, time.monotonic() - start


@pytest.mark.slow
def test_inspect_cli_mutants(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    outcomes: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    slowest = (0.0, "")
    mutants = cli_mutants()
    for i, (mut, buf) in enumerate(mutants):
        path = tmp_path / f"m{i:02d}_{mut.model}_{mut.kind}.tflite"
        path.write_bytes(buf)
        status, out, err, seconds = run_cli(["inspect", "--json", path], tmpdir, CLI_TIMEOUT_S)
        slowest = max(slowest, (seconds, str(mut)))
        lines = err.splitlines()
        problem = None
        if status is None:
            problem = f"no answer within {CLI_TIMEOUT_S} s (killed)"
        elif TRACEBACK_BITS.search(err):
            problem = f"exit {status} with a traceback (or parts of one) on stderr"
        elif status == 0:
            try:
                report = json.loads(out)
                assert report["arena"]["min_bytes"] > 0
                outcomes["exit 0, arena measured"] += 1
            except (ValueError, KeyError, TypeError, AssertionError) as exc:
                problem = f"exit 0 without a valid JSON report with an arena ({exc!r})"
        elif status == 2:
            if len(lines) != 1 or not lines[0].startswith("error: ") or path.name not in lines[0] \
                    or "(try: " not in lines[0]:
                problem = "exit 2 without exactly one 'error: FILE: ... (try: ...)' line"
            else:
                outcomes["exit 2: " + normalize(lines[0][len("error: "):].split(" (try: ")[0])] += 1
        else:
            problem = f"exit {status}"
        if problem:
            outcomes[f"FAILED: {problem.split(' (')[0]}"] += 1
            tail = "\n      ".join(err.strip().splitlines()[-6:])
            failures.append(f"{mut} ({path.name}, {seconds:.1f} s): {problem}\n      {tail}")
    leftovers = sorted(p.name for p in tmpdir.iterdir())

    print(f"\n`tfgen inspect --json` on {len(mutants)} mutants that parse: slowest {slowest[0]:.1f} s "
          f"({slowest[1]})")
    for label, n in outcomes.most_common():
        print(f"  {n:4d}  {label}")
    if leftovers:
        failures.append(f"temporary files left in TMPDIR: {leftovers}")
    assert not failures, f"{len(failures)} failures on {len(mutants)} mutants of `tfgen inspect`:\n" + \
        "\n".join(failures)
