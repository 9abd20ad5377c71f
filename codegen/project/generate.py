"""Generate: a model and a board -> a project's plan, files and report. The one way to make a project.

`tfgen generate` and `tfgen build` write what ``generate`` returns; `tfgen verify` and the benchmarks
call it too, with their own vectors and arena. Nothing here writes to disk or prints.

Every project carries ``tfgen.json``: what was decided for it (board, arena, kernels, environments),
which `build`, `verify` and the benchmarks read instead of working it out again or parsing headers.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from codegen import __version__
from codegen.errors import TfgenError
from codegen.model import memplan
from codegen.model import vectors as vectors_mod
from codegen.model.inspection import require_tflm_int8
from codegen.model.ir import ModelIR
from codegen.oracle import oracle
from codegen.project import fit, plan, render
from codegen.project.boards import Board
from codegen.toolchain import cmsis_nn, esp_nn, tflm_tree

PROJECT_FILE = "tfgen.json"
PROJECT_FORMAT = 1
MAX_ARENA = 1 << 30


@dataclass(frozen=True)
class Options:
    """What the user chose; None everywhere is `tfgen generate MODEL --board B`."""
    output_name: str = "project"            # -o's name, for the regenerate line
    tflm_dir: Path | None = None
    cmsis_nn_dir: Path | None = None
    esp_nn_dir: Path | None = None
    kernels: str | None = None              # "reference", "cmsis-nn", "esp-nn" or None for the board's
    boards_dir: Path | None = None          # only for the regenerate line (the board is given)
    vectors_file: Path | None = None        # a .tfgv from `tfgen reference`
    vectors: bytes | None = None            # or the .tfgv's bytes (verify)
    arena_from: int | None = None           # --arena-from: the arena from this figure
    arena_measured: int | None = None       # the oracle's measurement, when the caller has it
    arena_source: str | None = None         # how arena_from was measured, for the header
    command: str | None = None              # the regenerate line, when not `tfgen generate ...`
    runtime: str = "tflm"                   # "tflm", or "aot": the model as code (project/aot.py)


@dataclass(frozen=True)
class Generated:
    plan: plan.ProjectPlan
    files: dict[str, render.Content]
    report: dict
    notes: tuple[str, ...] = field(default=())


def generate(ir: ModelIR, model: bytes, board: Board, options: Options = Options()) -> Generated:
    require_tflm_int8(ir)
    # ESP32 projects get TFLM from the ESP-IDF component; a tree adds the `sim` environment.
    if plan.template_kind(board) == "espidf":
        tree = tflm_tree.available(options.tflm_dir)
    else:
        tree = tflm_tree.resolve(options.tflm_dir)
    blob, count = _vectors(ir, options)
    measured, source = _arena(ir, model, options)
    warning = fit.check_before_generate(ir, board, measured, options.kernels, len(blob) if blob else 0,
                                        options.runtime)
    cmsis, espnn, notes = _libraries(board, tree, options)
    command = options.command or regenerate_command(ir, board, options)
    project = plan.make_plan(ir, board, measured, tree, count, command, source, cmsis=cmsis, espnn=espnn,
                             runtime=options.runtime, model=model)
    files = render.render_project(project, model, blob)
    files[PROJECT_FILE] = project_file(project)
    notes = tuple(n for n in (warning, *notes, *project.kernel_notes) if n)
    return Generated(project, dict(sorted(files.items())), _report(ir, project, options, len(files), notes), notes)


def _libraries(board: Board, tree, o: Options) -> tuple:
    """The board's kernel library sources for the project's builds off the chip, and notes."""
    kernels = cmsis_nn.kernels_for(board.kernels, o.kernels)
    if tree is None:
        return None, None, ()
    cmsis, note = cmsis_nn.choose(board.kernels, o.cmsis_nn_dir, o.kernels)
    if board.kernels != "esp-nn":
        return cmsis, None, (note,)
    if kernels == "reference":
        return None, None, (() if o.runtime == "aot" else (   # aot: the generated code calls them on the chip too
            f"--kernels reference: the `sim`/`qemu` builds use TFLM's reference kernels, but "
            f"{board.name} itself runs ESP-NN (the {plan.ESP_COMPONENT} component)",))
    # aot: the generated code calls esp-nn, so its sources are needed for the builds off the chip.
    espnn, note = esp_nn.choose(o.esp_nn_dir, required=o.kernels == "esp-nn" or o.runtime == "aot")
    return None, espnn, (note,)


def regenerate_command(ir: ModelIR, board: Board, o: Options) -> str:
    """The whole `tfgen generate` line that makes this project again: every option that changes it."""
    args = ["tfgen", "generate", ir.source, "--board", board.name, "-o", o.output_name]
    for flag, value in (("--vectors", o.vectors_file and o.vectors_file.name), ("--arena-from", o.arena_from),
                        ("--kernels", o.kernels), ("--tflm-dir", o.tflm_dir), ("--cmsis-nn-dir", o.cmsis_nn_dir),
                        ("--esp-nn-dir", o.esp_nn_dir),
                        ("--boards-dir", o.boards_dir), ("--runtime", None if o.runtime == "tflm" else o.runtime)):
        if value is not None and value != "":
            args += [flag, str(value)]
    return shlex.join(args)


def _vectors(ir: ModelIR, o: Options) -> tuple[bytes | None, int]:
    if o.vectors is not None:
        return o.vectors, vectors_mod.decode(o.vectors).count
    if o.vectors_file is None:
        return None, 0
    vs = vectors_mod.read(o.vectors_file)
    if vs.model_sha256 != ir.sha256:
        raise TfgenError(f"{o.vectors_file}: test vectors of another model (sha256 {vs.model_sha256[:12]}..., "
                         f"{ir.source} is {ir.sha256[:12]}...)",
                         f"write them for this model: tfgen reference {ir.source} -o FILE")
    return o.vectors_file.read_bytes(), vs.count


def _arena(ir: ModelIR, model: bytes, o: Options) -> tuple[int, str]:
    if o.arena_from is not None:
        if not 1 <= o.arena_from <= MAX_ARENA:
            raise TfgenError(f"--arena-from {o.arena_from}: must be a number of bytes from 1 to 1 GiB",
                             "pass the arena_used figure of `tfgen verify`")
        return o.arena_from, o.arena_source or "given with --arena-from, e.g. the 32-bit figure of `tfgen verify`"
    if o.arena_measured is not None:
        return o.arena_measured, plan.HOST_ARENA
    return oracle.measure_arena(ir, model).min_bytes, plan.HOST_ARENA


def project_file(p: plan.ProjectPlan) -> str:
    """tfgen.json: the plan's decisions that the later stages need, stable (no time, no paths)."""
    data = {
        "format": PROJECT_FORMAT, "tfgen": __version__, "firmware_api": plan.FIRMWARE_API,
        "model": {"file": p.model_file, "sha256": p.model_sha256, "bytes": p.model_bytes},
        "board": p.board, "kind": p.kind, "core": p.core,
        "arena": {"size": p.arena_size, "measured": p.arena_measured, "source": p.arena_source,
                  "placement": p.arena_placement, "in_heap": p.arena_in_heap},
        "kernels": p.kernels, "kernel_library": p.library_version or None, "runtime": p.runtime,
        "optimized_ops": list(p.optimized_ops),
        "ops": list(p.op_names), "tflm": p.tflm_version, "vectors": p.vector_count,
        "environments": [{"name": e.name, "role": e.role} for e in p.environments],
        "default_env": p.default_env, "regenerate": p.regenerate,
        # what every file of the project is compiled with, beyond the target's flags (toolchain.builder)
        "build": {"defines": list(p.defines), "include_dirs": list(p.include_dirs)},
    }
    return json.dumps(data, indent=2) + "\n"


def read_project_file(project: Path) -> dict:
    """A generated project's tfgen.json, or one line saying to regenerate it."""
    path = Path(project) / PROJECT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TfgenError(f"{project}: no {PROJECT_FILE}; it was generated by an older tfgen",
                         "regenerate it: the command is in its platformio.ini, with --force")
    except (OSError, ValueError) as exc:
        raise TfgenError(f"{path}: unreadable ({exc})", "regenerate the project with `tfgen generate --force`")
    if not isinstance(data, dict) or data.get("format") != PROJECT_FORMAT:
        raise TfgenError(f"{path}: format {data.get('format') if isinstance(data, dict) else '?'}, this tfgen "
                         f"reads format {PROJECT_FORMAT}", "regenerate the project with `tfgen generate --force`")
    return data


def _report(ir: ModelIR, p: plan.ProjectPlan, o: Options, files: int, notes: tuple[str, ...]) -> dict:
    mp = p.aot.memory.to_dict() if p.aot else memplan.plan(ir).to_dict()
    return {"activation_plan": mp, "runtime": p.runtime, "board": p.board, "kind": p.kind, "files": files,
            "ops": list(p.op_names),
            "arena_measured": p.arena_measured, "arena_size": p.arena_size, "arena_placement": p.arena_placement,
            "arena_basis": "--arena-from" if o.arena_from is not None else "64-bit host",
            "tflm": p.tflm_version, "vectors": p.vector_count, "environments": p.environment_names,
            "kernels": p.kernels + (f" ({p.library_version})" if p.library_version else ""),
            "optimized_ops": list(p.optimized_ops), "notes": list(notes)}
