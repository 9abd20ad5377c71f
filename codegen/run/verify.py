"""Verify: build the generated firmware, run it on test vectors, compare with the oracle byte for byte.

``host``: the project's own sources compiled with the system g++ and run natively. An emulated board
(``mps2_an386``, or any board with a ``[qemu]`` table): compiled with arm-none-eabi-g++ for its core
and run in ``qemu-system-arm -M <its machine>`` with semihosting, under ``-icount shift=0`` so that time is instructions (one per virtual nanosecond).
Objects are cached (``hostbuild``), so a second verify of the same model rebuilds nothing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codegen.toolchain import builder, elfsize, fetch, proc, sanitizers, tflm_tree
from codegen.project import fit
from codegen.oracle import oracle, reference
from codegen.run import replay
from codegen.model import vectors
from codegen.project import aot, generate, targets
from codegen.project.boards import Board
from codegen.errors import DoesNotFit, TfgenError
from codegen.model.ir import ModelIR

QEMU_TIMEOUT_S = 900


@dataclass(frozen=True)
class VerifyResult:
    board: str
    model: str
    comparison: replay.Comparison
    log: replay.ReplayLog
    build: builder.HostBuild
    run_seconds: float
    arena_size: int
    host_arena: int
    tflm: str
    oracle: str
    exit_status: int
    instructions_per_inference: int | None = None
    notes: tuple[str, ...] = field(default=())
    kernels: str = "reference"
    optimized_ops: tuple[str, ...] = ()
    flash_bytes: int | None = None
    arena_needed: int | None = None     # measured on the target where the generated arena was too small
    ran_on: str = ""                    # the target's board: the board itself, host, or the QEMU stand-in
    sanitized: bool = False
    sanitizer_findings: tuple[str, ...] = ()   # what ASan/UBSan reported (the run stops on all but overflow)

    @property
    def ok(self) -> bool:
        return self.comparison.ok and not self.log.errors and self.log.result == "pass"

    def to_dict(self) -> dict:
        c = self.comparison
        first = c.differences[0] if c.differences else None
        return {
            "board": self.board, "model": self.model, "ok": self.ok, "vectors": c.vectors,
            "bytes_compared": c.bytes_compared, "mismatched_bytes": c.mismatched_bytes,
            "max_lsb_difference": c.max_lsb, "missing_outputs": len(c.missing),
            "first_mismatch": first and {"vector": first.vector, "output": first.output,
                                         "index": first.index, "expected": first.expected,
                                         "got": first.got},
            "firmware_errors": list(self.log.errors),
            "arena_used_bytes": _int(self.log.summary.get("arena_used")),
            "arena_size": self.arena_size, "host_arena_64bit": self.host_arena,
            "ran_on": self.ran_on or self.board, "sanitized": self.sanitized,
            "sanitizer_findings": list(self.sanitizer_findings),
            "target_bits": 64 if (self.ran_on or self.board) == "host" else 32,
            "instructions_per_inference": self.instructions_per_inference,
            "kernels": self.kernels, "optimized_ops": list(self.optimized_ops), "flash_bytes": self.flash_bytes,
            "arena_needed_on_target": self.arena_needed,
            "invoke_us_mean": _int(self.log.summary.get("invoke_us_mean")),
            "build": self.build.to_dict(), "run_seconds": round(self.run_seconds, 3),
            "tflm": self.tflm, "oracle": self.oracle, "notes": list(self.notes),
        }


def _int(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def work_dir(ir: ModelIR, board: str) -> Path:
    """A new work directory for one run, private to it (mode 0700, created, never reused or followed
    through a symlink), under ``verify/`` in tfgen's cache: concurrent verifies of one model never
    share a project or a program. ``cleanup`` removes it."""
    root = fetch.cache_root() / "verify"
    root.mkdir(parents=True, exist_ok=True)
    proc.remove_stale(root)
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(ir.source).stem)[:40]
    return Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-{name}-{ir.sha256[:12]}-{board}-", dir=root))


def cleanup(prep: "Prepared") -> None:
    """Remove the run's work directory, if ``prepare`` made it."""
    if prep.private:
        shutil.rmtree(prep.project.parent, ignore_errors=True)


@dataclass(frozen=True)
class Prepared:
    """A generated project with test vectors embedded, ready to build."""
    project: Path
    board: Board
    source: str
    vectors: vectors.VectorSet
    host_arena: int
    arena_size: int
    tflm: str
    ir: ModelIR | None = None
    model: bytes = b""
    kernels: str = "reference"
    optimized_ops: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    private: bool = False               # project/ is in a work directory of this run's own
    target: targets.BoardTarget | None = None   # where it runs (targets.verify_target)
    sanitize: bool = False              # built with AddressSanitizer and UBSan (host only)

    @property
    def build_target(self) -> builder.Target:
        base = self.target.build if self.target else targets.verify_target(self.board).build
        return sanitizers.sanitized(base) if self.sanitize else base


@dataclass(frozen=True)
class OpDivergence:
    """Where the firmware's per-op outputs first differ from the oracle's (op None: they never do)."""
    vector: int
    ops_compared: int
    tensors_compared: int = 0
    op: int | None = None
    op_name: str = ""
    tensor: int = -1
    tensor_name: str = ""
    mismatched_bytes: int = 0
    index: int = -1
    expected: int = 0
    got: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def prepare(ir: ModelIR, model: bytes, board: Board, inputs: list, tflm_dir: Path | None, command: str,
            out: Path | None = None, cmsis_nn_dir: Path | None = None, kernels: str | None = None,
            arena: int | None = None, esp_nn_dir: Path | None = None, on: str | None = None,
            sanitize: bool = False, runtime: str = "tflm") -> Prepared:
    """Run the oracle on ``inputs`` and (re)generate the project with those vectors embedded.

    ``arena``: size the arena from this figure (as --arena-from) instead of the oracle's measurement.
    ``kernels``: "reference", the board's library, or None for the board's own (cmsis-nn on
    mps2_an386 when a CMSIS-NN setup is available, else reference with a note; esp-nn on ESP chips).
    ``on``: where to run (targets.verify_target). ``sanitize``: AddressSanitizer and UBSan (host)."""
    target = targets.verify_target(board, on)
    _check_tools(board, target, sanitize)
    aot.check_runtime(ir, runtime)      # before the oracle runs
    too_big = fit.certainly_too_big(ir, board, runtime=runtime)
    if too_big:
        raise DoesNotFit(too_big, "verify on host, or use a smaller model (`tfgen fit MODEL` compares the boards)")
    tree = tflm_tree.resolve(tflm_dir)
    ref = reference.run_reference(ir, model, inputs, crosscheck=False)
    blob = vectors.encode(ref.vectors)
    _check_vectors_fit(ir, board, blob, ref.vectors, runtime)
    if kernels is None and board.kernels == "esp-nn":
        kernels = "esp-nn"                  # what verify is for: the kernels the chip runs
    gen = generate.generate(ir, model, board, generate.Options(
        tflm_dir=tree.root, cmsis_nn_dir=cmsis_nn_dir, esp_nn_dir=esp_nn_dir, kernels=kernels,
        vectors=blob, arena_from=arena, arena_source="measured on the target, with these kernels",
        arena_measured=ref.arena.min_bytes, command=command, runtime=runtime))
    project = gen.plan
    private = out is None
    out = out or work_dir(ir, board.name) / "project"
    refresh(gen.files, out)
    kernels_used = f"{project.kernels} ({project.library_version})" if project.library_version else project.kernels
    return Prepared(out, board, ir.source, ref.vectors, ref.arena.min_bytes, project.arena_size,
                    tree.version, ir, model, kernels_used, project.optimized_ops, gen.notes, private, target,
                    sanitize)


def _check_tools(board: Board, target: targets.BoardTarget, sanitize: bool) -> None:
    if sanitize and target.emulator:
        raise TfgenError("--sanitize is for the host build (AddressSanitizer and UBSan do not run in QEMU)",
                         "pass --on host with --sanitize")
    if target.emulator:
        for tool in (target.build.cxx, target.emulator[0]):
            if not shutil.which(tool):
                raise TfgenError(f"verify on {target.board.name} needs {tool}, which is not installed",
                                 "apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi "
                                 "libstdc++-arm-none-eabi-newlib qemu-system-arm")


def _check_vectors_fit(ir: ModelIR, board: Board, blob: bytes, vs: vectors.VectorSet, runtime: str) -> None:
    with_vectors = fit.certainly_too_big(ir, board, len(blob), runtime)
    if with_vectors:
        per_vector = max(1, (len(blob) - vectors.header_bytes(vs)) // max(vs.count, 1))
        model = ir.weights_bytes if runtime == "aot" else ir.size_bytes
        room = board.flash_bytes - (len(blob) - per_vector * vs.count) - model - 64 * 1024
        fewer = (f"pass fewer --vectors (each is {per_vector:,} B; about {room // per_vector} fit)"
                 if room >= per_vector else "not one vector fits beside the model")
        raise DoesNotFit(f"{with_vectors}: the firmware carries its test vectors", f"{fewer}, or verify on host")


ARENA_TOO_SMALL = "AllocateTensors failed: the tensor arena"


def verify(ir: ModelIR, model: bytes, board: Board, inputs: list, tflm_dir: Path | None, command: str,
           **options) -> tuple[Prepared, VerifyResult]:
    """prepare + build_and_run; where the arena from the oracle's measurement (TFLM's reference kernels)
    is too small for the firmware's kernels (CMSIS-NN's scratch buffers), the arena the firmware needs
    is measured on the target and the model verified with it, and the report says so. ``options``:
    prepare's (cmsis_nn_dir, esp_nn_dir, kernels, on, sanitize)."""
    def run(arena: int | None = None) -> tuple[Prepared, VerifyResult]:
        prep = prepare(ir, model, board, inputs, tflm_dir, command, arena=arena, **options)
        try:
            return prep, build_and_run(prep)
        except BaseException:
            cleanup(prep)
            raise
    prep, result = run()
    if not any(e.startswith(ARENA_TOO_SMALL) for e in result.log.errors):
        return prep, result
    cleanup(prep)
    probe, measured = run(min(board.ram_bytes // 2, max(16 * prep.arena_size, 1 << 20)))
    cleanup(probe)
    needed = _int(measured.log.summary.get("arena_used"))
    if not needed:
        return run()
    final, result = run(needed)
    which = {"cmsis-nn": "CMSIS-NN", "esp-nn": "ESP-NN"}.get(final.kernels.split(" ")[0], final.kernels)
    note = (f"the arena sized from the oracle's measurement ({prep.arena_size:,} B, TFLM's reference kernels) is "
            f"too small for {which} on {board.name}: the firmware needs {needed:,} B (its kernels' scratch "
            f"buffers), measured on the target and verified with it; generate this model's {which} projects "
            f"with --arena-from {needed}")
    return final, dataclasses.replace(result, notes=result.notes + (note,), arena_needed=needed)


def build_and_run(prep: Prepared) -> VerifyResult:
    """Build the project for its board, run it, and compare every output byte with the oracle's."""
    target = prep.target or targets.verify_target(prep.board)
    built = builder.build(prep.project, target=prep.build_target)
    start = time.monotonic()
    result = run_firmware(target, built.executable)
    seconds = time.monotonic() - start
    log = replay.parse(result.stdout)
    comparison = replay.compare(prep.vectors, log)
    instructions = None
    if target.counts_instructions and _int(log.summary.get("invoke_us_mean")) is not None:
        instructions = _int(log.summary["invoke_us_mean"]) * 1000    # -icount shift=0: 1 ns = 1 insn
    notes = list(prep.notes)
    flash = elfsize.image_size(built.executable).flash if target.emulator else None
    oracle_version = oracle.tflm_version()
    if comparison.mismatched_bytes:
        notes.append(f"the firmware's TFLM is {prep.tflm}, the oracle is tflite_micro {oracle_version}; "
                     "a difference can come from their versions (see README: Pinned dependencies)")
    found = sanitizers.findings(result.stderr) if prep.sanitize else []
    stopped = result.returncode not in (0, 1) or not log.summary
    if found and stopped:
        notes.append(f"the sanitizers stopped the firmware: {found[0]}")
    elif found:
        notes += [f"UBSan found, and the firmware went on (it wraps, as GCC compiles it): {f}" for f in found]
    elif result.returncode not in (0, 1) or (not log.summary and result.returncode != 0):
        notes.append(f"the firmware {proc.describe_status(result.returncode)}: "
                     + proc.tail(result.stderr or result.stdout, 3).replace("\n", " | "))
    return VerifyResult(prep.board.name, prep.source, comparison, log, built, seconds, prep.arena_size,
                        prep.host_arena, prep.tflm, oracle_version, result.returncode,
                        instructions, tuple(notes), prep.kernels, prep.optimized_ops, flash,
                        ran_on=target.board.name, sanitized=prep.sanitize,
                        sanitizer_findings=tuple(found))


def per_op(prep: Prepared, vector: int) -> OpDivergence:
    """Rebuild with every tensor kept and each op's outputs printed for ``vector``; compare them, op
    by op in execution order, with the oracle's (TFLM's Python interpreter keeping all tensors)."""
    ir = prep.ir
    ops = [op for op in ir.operators if op.subgraph == 0]
    arena = oracle.per_op_arena(ir, max(prep.arena_size, prep.host_arena))   # aot: the plan, not an arena
    flags = ("-DTFGEN_PER_OP", f"-DTFGEN_PER_OP_VECTOR={vector}", f"-DTFGEN_ARENA_SIZE={arena}")
    target = prep.target or targets.verify_target(prep.board)
    out = prep.project / "build" / f"{prep.build_target.name}-per-op" / Path(prep.build_target.output).name
    built = builder.build(prep.project, out, target=prep.build_target, extra_flags=flags)
    result = run_firmware(target, built.executable)
    log = replay.parse(result.stdout)
    if log.errors:
        raise TfgenError(f"the per-op build failed on {prep.board.name}: {log.errors[0]}",
                         "run `tfgen verify` without --per-op to see the firmware's own error")
    inputs = [a[vector:vector + 1] for a in prep.vectors.input_data]
    expected = oracle.run_tflm_per_op(ir, prep.model, inputs, arena)
    compared = 0
    for i, op in enumerate(ops):
        for t in (t for t in op.outputs if t >= 0):
            want = expected.get((i, t))
            got = log.op_outputs.get((i, t))
            if want is None or got is None:
                raise TfgenError(f"per-op: no output of op {i} ({op.name}) from the "
                                 f"{'oracle' if want is None else 'firmware'}",
                                 "this is a bug in tfgen; please report it with the model")
            compared += 1
            want_raw = np.ascontiguousarray(want).view(np.uint8).ravel()
            got_raw = np.frombuffer(got, np.uint8)
            if want_raw.size == got_raw.size and np.array_equal(want_raw, got_raw):
                continue
            w = np.ascontiguousarray(want).ravel()
            if got_raw.size != want_raw.size:
                return OpDivergence(vector, i + 1, compared, i, op.name, t, ir.tensors[t].name,
                                    int(want_raw.size))
            g = np.frombuffer(got, dtype=w.dtype)
            first = int(np.flatnonzero(w != g)[0])
            return OpDivergence(vector, i + 1, compared, i, op.name, t, ir.tensors[t].name,
                                int(np.count_nonzero(want_raw != got_raw)), first, int(w[first]), int(g[first]))
    return OpDivergence(vector, len(ops), compared)


def run_firmware(target: targets.BoardTarget, executable: Path):
    """Run a built firmware where its target runs (natively, or in QEMU)."""
    if not target.emulator:
        return builder.run_program(executable, env=sanitizers.SANITIZER_ENV)
    return proc.run(target.run_command(executable), what=f"QEMU ({target.emulator[2]})", timeout=QEMU_TIMEOUT_S,
                    check=False, hint="the firmware hung or faulted in QEMU")


def refresh(files: dict, project: Path) -> None:
    """Write the project into ``project``, touching only files whose bytes changed, and remove files
    it no longer has (but not its build output)."""
    wanted = set(files)
    for rel, content in files.items():
        dest = project / rel
        data = content.read_bytes() if isinstance(content, Path) else (
            content if isinstance(content, bytes) else content.encode("utf-8"))
        if dest.is_file() and hashlib.sha256(dest.read_bytes()).digest() == hashlib.sha256(data).digest():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    if project.is_dir():
        for path in sorted(project.rglob("*"), reverse=True):
            rel = path.relative_to(project).as_posix()
            if path.is_file() and rel not in wanted and not rel.startswith("build/"):
                path.unlink()
