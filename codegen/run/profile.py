"""Profile: what each op of a model costs on an emulated Cortex-M, before anyone buys a board.

The firmware is the verified one (``verify.verify`` first: byte-exact, the arena right for the kernels)
rebuilt with ``-DTFGEN_PROFILE``: TFLM's interpreter then reports every op it invokes to the harness's
profiler, which reads the board's SysTick (firmware/tfgen_platform.cc). QEMU runs it under
``-icount shift=0``, one instruction per virtual nanosecond, so the ticks are instruction counts:
deterministic, the same on every machine, and to be read as instructions, not as time on a chip.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from codegen.errors import TfgenError
from codegen.model.ir import ModelIR
from codegen.project import targets
from codegen.project.boards import Board
from codegen.run import replay, verify
from codegen.toolchain import builder

FLAGS = ("-DTFGEN_PROFILE",)
NS_PER_INSTRUCTION = 1              # -icount shift=0
_CLOCK = re.compile(r"^profile_clock (\d+)$", re.M)
_OP = re.compile(r"^profile (\d+) (\d+) (\d+) (\S+)$", re.M)
_INVOKE = re.compile(r"^profile_invoke (\d+) (\d+)$", re.M)


@dataclass(frozen=True)
class OpCost:
    index: int                      # the operator's index in subgraph 0, which is its execution order
    op: str
    instructions: int               # mean over the vectors

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class Profile:
    model: str
    board: str
    ran_on: str
    kernels: str
    vectors: int
    instructions_per_inference: int  # around Invoke, mean over the vectors
    ops: tuple[OpCost, ...]          # in execution order
    optimized_ops: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def ops_total(self) -> int:
        return sum(o.instructions for o in self.ops)

    def by_cost(self) -> list[OpCost]:
        return sorted(self.ops, key=lambda o: (-o.instructions, o.index))

    def to_dict(self) -> dict:
        return {"model": self.model, "board": self.board, "ran_on": self.ran_on, "kernels": self.kernels,
                "vectors": self.vectors, "unit": "instructions (QEMU -icount shift=0), not time",
                "instructions_per_inference": self.instructions_per_inference, "ops_total": self.ops_total,
                "ops": [o.to_dict() for o in self.ops], "by_cost": [o.index for o in self.by_cost()],
                "optimized_ops": list(self.optimized_ops), "notes": list(self.notes)}


def profile(ir: ModelIR, model: bytes, board: Board, inputs: list, tflm_dir: Path | None, command: str,
            **options) -> Profile:
    """Verify, then profile the same project. ``options``: verify's (kernels, cmsis_nn_dir, esp_nn_dir)."""
    if targets.emulated(board) is None:
        raise TfgenError(f"profile counts instructions on an emulated Cortex-M, and {board.name} is the host",
                         "pass --board mps2_an386, or the board you will flash")
    prep, result = verify.verify(ir, model, board, inputs, tflm_dir, command, on="qemu", **options)
    try:
        if not result.ok:
            first = result.notes[0] if result.notes else "see `tfgen verify`"
            raise TfgenError(f"{ir.source} does not verify on {result.ran_on} with {prep.kernels} "
                             f"({result.comparison.mismatched_bytes} bytes differ; {first})",
                             f"run `tfgen verify {ir.source} --board {board.name} --on qemu` to see why")
        return _profile_build(ir, prep, result)
    finally:
        verify.cleanup(prep)


def _profile_build(ir: ModelIR, prep: verify.Prepared, result: verify.VerifyResult) -> Profile:
    target = prep.target
    out = prep.project / "build" / f"{prep.build_target.name}-profile" / Path(prep.build_target.output).name
    built = builder.build(prep.project, out, target=prep.build_target, extra_flags=FLAGS)
    run = verify.run_firmware(target, built.executable)
    log = replay.parse(run.stdout)
    if log.errors or not replay.compare(prep.vectors, log).ok:
        raise TfgenError(f"the profiling build of {ir.source} did not replay its vectors exactly "
                         f"({(log.errors or ('outputs differ',))[0]})", "this is a bug in tfgen; please report it")
    return _costs(ir, prep, result, run.stdout)


def _costs(ir: ModelIR, prep: verify.Prepared, result: verify.VerifyResult, text: str) -> Profile:
    clock = _CLOCK.search(text)
    if not clock:
        raise TfgenError("the profiling firmware printed no profile", "this is a bug in tfgen; please report it")
    per_tick = 1_000_000_000 // int(clock.group(1)) // NS_PER_INSTRUCTION     # instructions per tick
    ops = [op for op in ir.operators if op.subgraph == 0]
    sums = [0] * len(ops)
    vectors = set()
    for v, event, ticks, tag in _OP.findall(text):
        i = int(event)
        if i >= len(ops):
            raise TfgenError(f"the profile names op {i}, the model has {len(ops)}", "please report it")
        if tag not in ("?", ops[i].name):
            raise TfgenError(f"the profile's op {i} is {tag}, the model's is {ops[i].name}", "please report it")
        sums[i] += int(ticks) * per_tick
        vectors.add(v)
    invokes = [int(t) * per_tick for _, t in _INVOKE.findall(text)]
    n = max(len(vectors), 1)
    costs = tuple(OpCost(i, op.name, round(s / n)) for i, (op, s) in enumerate(zip(ops, sums)))
    per_inference = round(sum(invokes) / max(len(invokes), 1))
    notes = (f"one SysTick tick is {per_tick} instructions: each op's count is within {per_tick} of the truth",)
    return Profile(ir.source, prep.board.name, result.ran_on, prep.kernels, n, per_inference, costs,
                   prep.optimized_ops, notes + tuple(result.notes))
