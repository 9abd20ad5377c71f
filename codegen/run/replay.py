"""What the firmware's test-vector replay prints (``firmware/tfgen_replay.cc``), read back and
compared byte for byte with the vector file's expected outputs, the authoritative comparison.

The lines (everything else, e.g. TFLM's own log or a boot banner, is ignored):

    tfgen replay model=<name> platform=<name>
    vectors count=<N> inputs=<I> outputs=<O>
    out <vector> <output> <hex bytes>
    opout <vector> <op> <tensor> <hex bytes>          (--per-op builds: every op's outputs)
    mismatch <vector> <output> bytes=<n> first=<index> expected=<xx> got=<yy>
    error: <message>
    summary result=<pass|mismatch|error> vectors=<n> arena_used=<b> arena_size=<b>
            invoke_us_mean=<us> invoke_us_max=<us> mismatched_bytes=<n>
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from codegen.errors import TfgenError
from codegen.model.vectors import VectorSet

_OUT = re.compile(r"^out (\d+) (\d+) ([0-9a-f]*)$")
_OPOUT = re.compile(r"^opout (\d+) (\d+) (\d+) ([0-9a-f]*)$")
_KEY_VALUES = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class ReplayLog:
    outputs: dict[tuple[int, int], bytes]   # (vector, output) -> the bytes the firmware computed
    summary: dict[str, str]                 # key=value pairs of the summary line ({} if none)
    errors: tuple[str, ...]                 # the `error:` lines, without the prefix
    firmware_mismatches: tuple[str, ...]    # the firmware's own `mismatch` lines
    op_outputs: dict = None                 # (op, tensor) -> bytes, from a --per-op build's `opout` lines

    @property
    def result(self) -> str | None:
        return self.summary.get("result")


@dataclass(frozen=True)
class Difference:
    vector: int
    output: int
    index: int                  # element index in the output tensor (flattened)
    expected: int
    got: int


@dataclass(frozen=True)
class Comparison:
    vectors: int
    bytes_compared: int
    mismatched_bytes: int
    max_lsb: int
    missing: tuple[tuple[int, int], ...]    # (vector, output) pairs the firmware never printed
    differences: tuple[Difference, ...]     # the first few, element by element

    @property
    def ok(self) -> bool:
        return self.mismatched_bytes == 0 and not self.missing


def parse(text: str) -> ReplayLog:
    outputs: dict[tuple[int, int], bytes] = {}
    summary: dict[str, str] = {}
    errors, mismatches = [], []
    op_outputs: dict[tuple[int, int], bytes] = {}
    for raw in text.splitlines():
        line = raw.strip()
        p = _OPOUT.match(line)
        if p:
            op_outputs[(int(p.group(2)), int(p.group(3)))] = bytes.fromhex(p.group(4))
            continue
        m = _OUT.match(line)
        if m:
            key = (int(m.group(1)), int(m.group(2)))
            if key in outputs:
                raise TfgenError(f"the firmware printed output {key[1]} of vector {key[0]} twice",
                                 "the log mixes two runs: capture one run only")
            outputs[key] = bytes.fromhex(m.group(3))
        elif line.startswith("summary "):
            summary = dict(_KEY_VALUES.findall(line))
        elif line.startswith("error: "):
            errors.append(line[len("error: "):])
        elif line.startswith("mismatch "):
            mismatches.append(line)
    return ReplayLog(outputs, summary, tuple(errors), tuple(mismatches), op_outputs)


def compare(vs: VectorSet, log: ReplayLog, keep: int = 20) -> Comparison:
    """Every output of every vector in ``vs`` against what the firmware printed."""
    compared = mismatched = max_lsb = 0
    missing, diffs = [], []
    for v in range(vs.count):
        for o, (spec, expected_all) in enumerate(zip(vs.outputs, vs.output_data)):
            expected = np.ascontiguousarray(expected_all[v]).ravel()
            raw = log.outputs.get((v, o))
            if raw is None or len(raw) != spec.nbytes:
                missing.append((v, o))
                continue
            little = np.dtype(spec.dtype).newbyteorder("<")
            got = np.frombuffer(raw, dtype=little).astype(spec.dtype)
            expected_raw = expected.astype(little).tobytes()
            compared += spec.nbytes
            mismatched += sum(a != b for a, b in zip(raw, expected_raw))
            bad = np.flatnonzero(got != expected)
            if bad.size:
                delta = np.abs(got[bad].astype(np.int64) - expected[bad].astype(np.int64))
                max_lsb = max(max_lsb, int(delta.max()))
                diffs += [Difference(v, o, int(i), int(expected[i]), int(got[i]))
                          for i in bad[:max(0, keep - len(diffs))]]
    return Comparison(vs.count, compared, mismatched, max_lsb, tuple(missing), tuple(diffs))
