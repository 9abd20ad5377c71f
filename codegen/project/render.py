"""Render: a ProjectPlan -> the project's files, as {relative path: content}.

Text comes from the Jinja templates (``templates/<group>/...``, mirroring the output tree), the model
and vector arrays from ``cgen``, the harness is copied from ``firmware/``, TFLM's files from the tree.
Nothing here writes to disk: ``write_project`` (called by the CLI) does, atomically.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import jinja2

from codegen.project import cgen, escape
from codegen.project.naming import one_line
from codegen.project.boards import Board
from codegen.errors import TfgenError
from codegen.project.plan import ARENA_MARGIN_PERCENT, TFLM_LIB, ProjectPlan
from codegen.resources import resource_dir
from codegen.toolchain.tflm_fetch import PINNED_VERSION
from codegen.toolchain.tflm_tree import NOT_COMPILED_DIRS

Content = str | bytes | Path          # Path: copy that file

VECTORS_HEADER = "tfgen_vectors.h"
SDKCONFIG_COMMON = ("CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ_240=y", "CONFIG_ESP_MAIN_TASK_STACK_SIZE=8192",
                    "CONFIG_COMPILER_OPTIMIZATION_PERF=y")
SDKCONFIG_PSRAM = ("CONFIG_SPIRAM=y", "CONFIG_SPIRAM_MODE_OCT=y", "CONFIG_SPIRAM_USE_CAPS_ALLOC=y")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters.update(escape.FILTERS)      # every string from outside goes through one of these
    return env


def _groups(plan: ProjectPlan) -> list[str]:
    groups = ["common"]
    if plan.kind == "espidf":
        groups.append("espidf")
    if plan.tflm_files:
        groups.append("tflm")
        if plan.has_qemu_env:
            groups.append("qemu")
    return groups


def render_project(plan: ProjectPlan, board: Board, model: bytes, vectors: bytes | None) -> dict[str, Content]:
    files: dict[str, Content] = {}
    banner = "\n".join(one_line(line) for line in plan.banner)     # each banner line stays one line

    header, source = cgen.model_source(plan.names, model, banner)
    files[f"src/{plan.names.header_file}"] = header
    files[f"src/{plan.names.source_file}"] = source
    if vectors is not None:
        vh, vc = cgen.blob_source("g_tfgen_vectors", "g_tfgen_vectors_len", VECTORS_HEADER,
                                  "TFGEN_VECTORS_H_", vectors, banner,
                                  f"{plan.vector_count} test vectors of {plan.model_file} (.tfgv)",
                                  "the test mode replays them")
        files[f"src/{VECTORS_HEADER}"] = vh
        files["src/tfgen_vectors.cc"] = vc

    firmware = resource_dir("firmware")
    for path in sorted(firmware.rglob("*")):
        rel = path.relative_to(firmware).as_posix()
        if path.is_file() and rel != "README.md":
            if rel.startswith("qemu/") and not (plan.has_qemu_env and plan.tflm_files):
                continue
            files[f"src/{rel}"] = path.read_bytes()

    if plan.tflm_files:
        root = Path(plan.tflm_root)
        for rel in plan.tflm_files:
            files[f"{TFLM_LIB}/{rel}"] = root / rel
        for rel, src in plan.cmsis_nn_files:
            files[f"{TFLM_LIB}/{rel}"] = Path(src)

    sources = sorted(p.removeprefix("src/") for p in files
                     if p.startswith("src/") and p.endswith((".cc", ".cpp", ".c")) and "/" not in p[4:])
    data = plan.template_data() | {
        "arena_margin_percent": ARENA_MARGIN_PERCENT, "tflm_pinned": PINNED_VERSION,
        "not_compiled": list(NOT_COMPILED_DIRS),
        "sources": sorted(sources + ["tfgen_model.cc"]),
        "sdkconfig": SDKCONFIG_COMMON + (SDKCONFIG_PSRAM if plan.arena_placement == "psram" else ()),
        "qemu_flash": board.qemu.flash.length if board.qemu else 4 << 20,
        "qemu_ram": board.qemu.ram.length if board.qemu else 4 << 20,
    }
    env = _environment()
    templates = resource_dir("templates")
    for group in _groups(plan):
        for path in sorted((templates / group).rglob("*.j2")):
            rel = path.relative_to(templates / group).as_posix().removesuffix(".j2")
            name = path.relative_to(templates).as_posix()
            try:
                files[rel] = env.get_template(name).render(data)
            except jinja2.TemplateError as exc:
                raise TfgenError(f"template {name} failed to render: {exc}",
                                 "this is a bug in tfgen; please report it") from exc
    return dict(sorted(files.items()))


# Every generated project holds this file: --force replaces only a directory that has it.
PROJECT_MARKER = ".tfgen-project"


def made_by_tfgen(path: Path) -> bool:
    """Whether ``path`` is a project tfgen generated: its marker, or (projects of tfgen before the
    marker) a src/tfgen_model.h whose banner says so."""
    if (path / PROJECT_MARKER).is_file():
        return True
    header = path / "src" / "tfgen_model.h"
    try:
        return header.is_file() and header.read_text(encoding="utf-8", errors="replace").startswith(
            "// Generated by tfgen ")
    except OSError:
        return False


def check_output_dir(out: Path, force: bool) -> None:
    """Refuse, before any work, an -o that tfgen must not fill or replace (exit 2, one line)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TfgenError(f"{out}: exists and is not a directory", "choose another -o")
    try:
        resolved = out.resolve()
        empty = not out.is_dir() or not any(out.iterdir())
    except OSError as exc:
        raise TfgenError(f"{out}: cannot read it ({exc.strerror})", "choose another -o")
    if not empty and not force:
        raise TfgenError(f"{out}: directory exists and is not empty",
                         "pass --force to replace it, or choose another -o")
    cwd = Path.cwd().resolve()
    if resolved == Path(resolved.anchor) or resolved == Path.home().resolve() or resolved in (cwd, *cwd.parents):
        raise TfgenError(f"{out}: refusing to use {resolved} for a project (the root, your home, or the "
                         "current directory or one that holds it)", "pass -o NEW_DIR")
    if not empty and not made_by_tfgen(out):
        raise TfgenError(f"{out}: not a project tfgen generated (no {PROJECT_MARKER}); --force replaces only "
                         "those, so nothing was changed", "choose a new or empty directory for -o")
    parent = resolved.parent
    if not parent.is_dir():
        raise TfgenError(f"{parent}: no such directory for the project", "create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise TfgenError(f"{parent}: no permission to create {out.name} there", "choose a writable -o")


def write_project(files: dict[str, Content], out: Path, force: bool) -> None:
    """Write the project into ``out`` as a whole: into a temporary sibling, then renamed into place.

    An existing non-empty ``out`` is refused unless ``force`` and it is a project tfgen made; then it
    is replaced, never merged. An OS error is one TfgenError line.
    """
    out = Path(out)
    check_output_dir(out, force)
    try:
        _write(files, out, out.resolve().parent)
    except OSError as exc:
        raise TfgenError(f"{out}: cannot write the project ({exc.strerror or exc}"
                         + (f": {exc.filename}" if exc.filename else "") + ")",
                         "check the permissions and free space of -o's directory")


def _write(files: dict[str, Content], out: Path, parent: Path) -> None:
    files = {**files, PROJECT_MARKER: "generated by tfgen; `tfgen generate --force` may replace this directory\n"}
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=parent))
    try:
        for rel, content in files.items():
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, Path):
                shutil.copyfile(content, dest)
            elif isinstance(content, bytes):
                dest.write_bytes(content)
            else:
                dest.write_text(content, encoding="utf-8")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
