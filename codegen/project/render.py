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
from codegen.errors import TfgenError
from codegen.project.plan import ARENA_MARGIN_PERCENT, FIRMWARE_API, TFLM_LIB, ProjectPlan
from codegen.resources import resource_dir
from codegen.toolchain import esp_nn
from codegen.toolchain.tflm_fetch import PINNED_VERSION
from codegen.toolchain.tflm_tree import NOT_COMPILED_DIRS

Content = str | bytes | Path          # Path: copy that file

VECTORS_HEADER = "tfgen_vectors.h"
OPTIONAL_FIRMWARE = ("tfgen_softmax.",)  # firmware/ files a project carries only where its plan says so
BOARD_PLACEHOLDER = "BOARD"        # in a template's path: the board's name (templates/qemu/src/qemu/BOARD.ld.j2)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(resource_dir("templates"))),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters.update(escape.FILTERS)      # every string from outside goes through one of these
    return env


def render_project(plan: ProjectPlan, model: bytes, vectors: bytes | None) -> dict[str, Content]:
    """The project's files. Every decision is the plan's; this only places its values."""
    files: dict[str, Content] = {}
    banner = "\n".join(one_line(line) for line in plan.banner)     # each banner line stays one line

    if plan.runtime != "aot":                       # aot: the weights are in tfgen_aot.cc, no flatbuffer
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
            if rel.startswith(OPTIONAL_FIRMWARE) and Path(rel).stem not in plan.firmware_extras:
                continue
            if rel.startswith("qemu/") and plan.qemu is None:
                continue
            files[f"src/{rel}"] = path.read_bytes()

    if plan.tflm_files:
        root = Path(plan.tflm_root)
        for rel in plan.tflm_files:
            files[f"{TFLM_LIB}/{rel}"] = root / rel
        for rel, src in plan.library_files:
            files[f"{TFLM_LIB}/{rel}"] = Path(src)

    sources = sorted(p.removeprefix("src/") for p in files
                     if p.startswith("src/") and p.endswith((".cc", ".cpp", ".c")) and "/" not in p[4:])
    templates = resource_dir("templates")
    # and the templates' own sources (src/tfgen_model.cc, aot's src/tfgen_aot.cc): every one is compiled
    sources += [p.name.removesuffix(".j2") for group in plan.template_groups
                for p in (templates / group / "src").glob("*.c*.j2") if p.name.endswith((".cc.j2", ".c.j2"))]
    data = plan.template_data() | {
        "arena_margin_percent": ARENA_MARGIN_PERCENT, "tflm_pinned": PINNED_VERSION, "firmware_api": FIRMWARE_API,
        "esp_nn_pinned": esp_nn.PINNED_VERSION,
        "not_compiled": list(NOT_COMPILED_DIRS),
        "sources": sorted(sources),
    }
    env = _environment()
    for group in plan.template_groups:
        for path in sorted((templates / group).rglob("*.j2")):
            rel = path.relative_to(templates / group).as_posix().removesuffix(".j2")
            rel = rel.replace(BOARD_PLACEHOLDER, plan.qemu.board if plan.qemu else plan.board)
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


def check_output_dir(out: Path, force: bool, refused_hint: str = "pass --force to replace it, or choose another -o"
                     ) -> None:
    """Refuse, before any work, an -o that tfgen must not fill or replace (exit 2, one line).
    ``refused_hint``: what to do about a non-empty directory without ``force``."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise TfgenError(f"{out}: exists and is not a directory", "choose another -o")
    try:
        resolved = out.resolve()
        empty = not out.is_dir() or not any(out.iterdir())
    except OSError as exc:
        raise TfgenError(f"{out}: cannot read it ({exc.strerror})", "choose another -o")
    if not empty and not force:
        raise TfgenError(f"{out}: directory exists and is not empty", refused_hint)
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
        os.chmod(tmp, 0o777 & ~_umask())
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


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a failure never leaves half a file behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's umask (reading it means setting it; set back at once)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask
