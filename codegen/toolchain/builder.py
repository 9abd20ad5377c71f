"""Build a generated project for the host with the system C++ compiler: no PlatformIO, no board.

The host build is the fastest way to check generated firmware against the oracle: the project's
``src/`` (generated wiring + ``firmware/``) and the TFLM sources the generator copied into
``lib/tflm/`` are compiled with the flags below, linked into one program, and that program replays
the embedded test vectors (``TFGEN_TEST_MODE``).

Objects are cached across projects, keyed by sha256 of the compiler's identity, the flags, the
source's path and bytes, and the bytes of every header the compiler reported it read (``-MD``), as
ccache's direct mode does: the first compile of a source records its headers in a manifest; a
later build reuses the object when those headers still hash the same. So a second build of the same
model compiles nothing, and another model compiles only its own kernels and generated files.
Headers outside the project (the compiler's and the C library's) are covered by the compiler's
identity only.
"""
from __future__ import annotations

import hashlib
import json
import re
import logging
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from codegen.toolchain import cmsis_nn, fetch, proc
from codegen.errors import DoesNotFit, TfgenError
from codegen.toolchain.tflm_fetch import PINNED_VERSION
from codegen.toolchain.tflm_tree import ENV_VAR, INCLUDE_DIRS, NOT_COMPILED_DIRS

log = logging.getLogger("tfgen")

CXX = "g++"
CC = "gcc"
CACHE_ENV_VAR = fetch.CACHE_ENV
SRC_DIR = "src"
# Left out of the host build, as the generated `sim` environment's build_src_filter does: the
# Cortex-M start-up code of the `qemu` environment.
SRC_EXCLUDED = ("src/qemu/",)
TFLM_DIR = "lib/tflm"
DEFAULT_OUTPUT = "build/host/program"
JOBS = 2
COMPILE_TIMEOUT_S = 600
LINK_TIMEOUT_S = 300
RUN_TIMEOUT_S = 120
MANIFEST_ENTRIES = 8            # header sets remembered per source (e.g. two TFLM versions)

# Every flag of the host build, in one place. The common part follows esp-tflite-micro's
# CMakeLists.txt and TFLM's tools/make/Makefile: static memory (TfLiteTensor's layout depends on
# it, so every file gets it), no RTTI/exceptions/thread-safe statics, sections for --gc-sections.
# -O2 is TFLM's kernel optimization level and the Python wheel's (Bazel -c opt). x86-64 has no FMA
# in its baseline, so no float multiply-add is contracted, here or in the wheel.
# The generated project's PlatformIO environments take these same constants (project.environments).
HOST_OPT = "-O2"
STATIC_MEMORY = "-DTF_LITE_STATIC_MEMORY"
NO_EXCEPTIONS = "-fno-exceptions"
COMMON_FLAGS = (HOST_OPT, STATIC_MEMORY, "-DTF_LITE_DISABLE_X86_NEON",
                "-fno-unwind-tables", "-ffunction-sections", "-fdata-sections", "-fmessage-length=0")
CXX_FLAGS = ("-std=c++17", "-fno-rtti", NO_EXCEPTIONS, "-fno-threadsafe-statics")
C_FLAGS = ("-std=c11",)
# TFLM's own sources are not ours to fix: no warnings. Ours (src/) with warnings as errors, the
# checks esp-tflite-micro builds TFLM with; TFLM's headers are -isystem there, so only our code
# is held to them.
TFLM_WARNINGS = ("-w",)
APP_WARNINGS = ("-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wvla", "-Wdouble-promotion",
                "-Wsign-compare", "-Wmissing-field-initializers", "-Wnon-virtual-dtor")
CXX_ONLY_WARNINGS = ("-Wnon-virtual-dtor",)
TEST_MODE_FLAGS = ("-DTFGEN_TEST_MODE",)
LINK_FLAGS = ("-Wl,--gc-sections",)
LIBS = ("-lm",)

# Textual includes, as lib/tflm/library.json's srcFilter leaves them out for PlatformIO.
_NOT_COMPILED = tuple(f"{TFLM_DIR}/{d}/" for d in NOT_COMPILED_DIRS)
_SOURCE_SUFFIXES = {".cc": "c++", ".cpp": "c++", ".cxx": "c++", ".c": "c"}


@dataclass(frozen=True)
class Target:
    """Where the program runs: its compilers, the flags that differ, what it links and leaves out."""
    name: str
    cxx: str
    cc: str
    arch_flags: tuple[str, ...]      # replaces COMMON_FLAGS' optimization level and adds the CPU
    link_flags: tuple[str, ...]
    libs: tuple[str, ...]
    src_excluded: tuple[str, ...]
    output: str                      # project-relative


HOST = Target("host", CXX, CC, (), LINK_FLAGS, LIBS, SRC_EXCLUDED, DEFAULT_OUTPUT)
ARM_CXX, ARM_CC = "arm-none-eabi-g++", "arm-none-eabi-gcc"
EMBEDDED_OPT = "-Os"                  # embedded builds are made for size
SEMIHOSTING_FLAGS = ("-DTFGEN_SEMIHOSTING",)
ARM_LINK_FLAGS = ("--specs=nano.specs", "--specs=rdimon.specs", "-nostartfiles")
QEMU_OUTPUT = "build/qemu/firmware.elf"
DEFAULT_SYSTICK_HZ = 25_000_000       # firmware/tfgen_platform.cc's default: QEMU's mps2 machines


def systick_flags(clock_hz: int) -> tuple[str, ...]:
    return () if clock_hz == DEFAULT_SYSTICK_HZ else (f"-DTFGEN_SYSTICK_HZ={clock_hz}u",)


def emulated_cortex_m(name: str, cpu_flags: tuple[str, ...], ldscript: str, clock_hz: int = DEFAULT_SYSTICK_HZ) -> Target:
    """A Cortex-M board run in QEMU: -Os as embedded builds are made, semihosting for output and exit,
    start-up code and the linker script ``ldscript`` from src/qemu/ (made from the board's memory map).
    ``clock_hz``: SysTick's clock, which the harness times with (firmware/tfgen_platform.cc)."""
    return Target(name, ARM_CXX, ARM_CC, (EMBEDDED_OPT, *cpu_flags, *SEMIHOSTING_FLAGS, *systick_flags(clock_hz)),
                  (*ARM_LINK_FLAGS, "-T", ldscript, "-Wl,--gc-sections", *cpu_flags), ("-lm",), (), QEMU_OUTPUT)


@dataclass(frozen=True)
class HostBuild:
    executable: Path
    compiled: tuple[str, ...]       # sources compiled in this build (project-relative)
    reused: tuple[str, ...]         # sources whose object came from the cache
    compile_seconds: float          # wall time of the cache look-ups and compiles
    link_seconds: float
    seconds: float                  # the whole build

    @property
    def warm(self) -> bool:
        """Nothing had to be compiled."""
        return not self.compiled

    def to_dict(self) -> dict:
        return {"executable": str(self.executable), "compiled": len(self.compiled),
                "reused": len(self.reused), "warm": self.warm,
                "compile_seconds": round(self.compile_seconds, 3),
                "link_seconds": round(self.link_seconds, 3), "seconds": round(self.seconds, 3)}


@dataclass(frozen=True)
class CompileUnit:
    source: str                     # project-relative, forward slashes
    compiler: str
    flags: tuple[str, ...]


def cache_dir() -> Path:
    """The object cache: ``objects/`` in tfgen's cache (codegen.toolchain.fetch.cache_root)."""
    return fetch.cache_root() / "objects"


def carries_cmsis_nn(project: Path) -> bool:
    """Whether the project's lib/tflm/ has CMSIS-NN (its kernels are then the cmsis_nn wrappers)."""
    return (Path(project) / TFLM_DIR / cmsis_nn.LIB_DEST).is_dir()


def project_build(project: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The defines and include dirs (project-relative) every file of the project is compiled with:
    from its tfgen.json, where generate wrote what it decided; a project without one (made by hand, or
    by a tfgen before tfgen.json) is read as such a tfgen made it: TFLM's dirs, and CMSIS-NN's with
    -DCMSIS_NN where lib/tflm/ carries it."""
    try:
        data = json.loads((Path(project) / "tfgen.json").read_text(encoding="utf-8"))["build"]
        return tuple(data["defines"]), tuple(data["include_dirs"])
    except (OSError, ValueError, KeyError, TypeError):
        with_cmsis = carries_cmsis_nn(project)
        subdirs = INCLUDE_DIRS + (cmsis_nn.INCLUDE_DIRS if with_cmsis else ())
        return (cmsis_nn.DEFINES if with_cmsis else ()), tuple(f"{TFLM_DIR}/{sub}" for sub in subdirs)


def include_flags(for_app: bool, include_dirs: tuple[str, ...]) -> list[str]:
    """``-I`` flags: lib/tflm and each of the project's include dirs; src/ first for our own files,
    whose view of TFLM's headers is -isystem (their warnings are TFLM's, not ours)."""
    dirs = []
    for d in (TFLM_DIR, *include_dirs):
        d = os.path.normpath(d)
        if d not in dirs:
            dirs.append(d)
    if for_app:
        return ["-I" + SRC_DIR] + [f for d in dirs for f in ("-isystem", d)]
    return ["-I" + d for d in dirs]


def units(project: Path, test_mode: bool = True, target: Target = HOST,
          extra_flags: tuple[str, ...] = ()) -> list[CompileUnit]:
    """What to compile: every source under src/ and lib/tflm/, with its flags."""
    project = Path(project)
    common = [f for f in COMMON_FLAGS if not (target.arch_flags and f.startswith("-O"))]
    common += target.arch_flags
    defines, include_dirs = project_build(project)
    common += defines                    # every file: TFLM's kernel headers depend on them (-DCMSIS_NN)
    found = []
    for top, for_app in ((SRC_DIR, True), (TFLM_DIR, False)):
        base = project / top
        if not base.is_dir() and for_app:
            raise TfgenError(f"{project}: no {top}/ directory; not a generated tfgen project",
                             "generate it with `tfgen generate`")
        if not base.is_dir():
            raise TfgenError(f"{project}: no {top}/ directory, so no TFLM sources to build for the host",
                             f"generate it with --tflm-dir DIR (or {ENV_VAR}=DIR) so it carries them")
        for path in sorted(p for p in base.rglob("*") if p.suffix in _SOURCE_SUFFIXES and p.is_file()):
            rel = path.relative_to(project).as_posix()
            if rel.startswith(target.src_excluded) or rel.startswith(_NOT_COMPILED):
                continue
            language = _SOURCE_SUFFIXES[path.suffix]
            flags = [*common, *(CXX_FLAGS if language == "c++" else C_FLAGS),
                     *(_app_warnings(language) if for_app else TFLM_WARNINGS),
                     *include_flags(for_app, include_dirs)]
            if for_app and test_mode:
                flags += TEST_MODE_FLAGS
            if for_app:
                flags += extra_flags
            found.append(CompileUnit(path.relative_to(project).as_posix(),
                                     target.cxx if language == "c++" else target.cc, tuple(flags)))
    if not any(u.source.startswith(SRC_DIR + "/") for u in found):
        raise TfgenError(f"{project}/{SRC_DIR}: no C++ sources", "generate the project with `tfgen generate`")
    return found


def _app_warnings(language: str) -> tuple[str, ...]:
    return APP_WARNINGS if language == "c++" else tuple(w for w in APP_WARNINGS if w not in CXX_ONLY_WARNINGS)


def build(project: Path, output: Path | None = None, *, test_mode: bool = True, jobs: int = JOBS,
          cache: Path | None = None, target: Target = HOST, extra_flags: tuple[str, ...] = ()) -> HostBuild:
    """Compile (or take from the cache) every source of ``project`` and link the program.

    ``output`` defaults to the target's (``<project>/build/host/program`` for the host). Raises
    TfgenError naming the file and the compiler's first error line when something does not compile.
    """
    start = time.monotonic()
    project = Path(project).resolve()
    output = Path(output).resolve() if output else project / target.output
    todo = units(project, test_mode, target, extra_flags)
    store = _ObjectCache(Path(cache) if cache else cache_dir(), project)
    proc.remove_stale(store.root / "tmp")
    identities = {c: _compiler_identity(c) for c in sorted({u.compiler for u in todo})}

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(store.object_for, u, identities[u.compiler]) for u in todo]
        try:
            results = [f.result() for f in futures]
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    compiled_at = time.monotonic()

    output.parent.mkdir(parents=True, exist_ok=True)
    objects = [obj for obj, _ in results]
    linked = proc.run([target.cxx, *target.link_flags, "-o", output, *objects, *target.libs],
                      what=f"linking {output.name}", timeout=LINK_TIMEOUT_S, cwd=project, check=False)
    if linked.returncode != 0:
        _raise_if_overflowed(target, linked.stderr)
        lines = [l for l in linked.stderr.splitlines() if "undefined reference" in l or "multiple definition"
                 in l or "error" in l.lower()]
        raise TfgenError(f"{project.name}: linking {output.name} failed: {(lines or ['no message'])[0].strip()}",
                         "a symbol is missing or defined twice: check that the project's src/ and lib/tflm/ "
                         "come from one `tfgen generate`")
    done = time.monotonic()
    compiled = tuple(u.source for u, (_, fresh) in zip(todo, results) if fresh)
    reused = tuple(u.source for u, (_, fresh) in zip(todo, results) if not fresh)
    log.info("host build of %s: %d compiled, %d from the cache, %.1f s", project.name,
             len(compiled), len(reused), done - start)
    return HostBuild(output, compiled, reused, compiled_at - start, done - compiled_at, done - start)


# GNU ld: "region `CODE' overflowed by 3456 bytes", and "section `.text' will not fit in region `CODE'"
# (alone when the first section that does not fit is the last one placed there). The linker scripts
# name flash CODE or FLASH.
_OVERFLOW = re.compile(r"region [`']?(\w+)'? overflowed by (\d+) bytes")
_WONT_FIT = re.compile(r"will not fit in region [`']?(\w+)'?")
_FLASH_REGIONS = ("CODE", "FLASH", "ROM", "IROM")


def _raise_if_overflowed(target: Target, stderr: str) -> None:
    """A linker region overflow is the image not fitting the board, not a broken project."""
    def memory(region: str) -> str:
        return "flash" if region.upper() in _FLASH_REGIONS else "RAM"
    over: dict[str, int | None] = {memory(r): None for r in _WONT_FIT.findall(stderr)}
    for region, count in _OVERFLOW.findall(stderr):
        over[memory(region)] = max(over.get(memory(region)) or 0, int(count))
    if not over:
        return
    line = next(l for l in stderr.splitlines() if _OVERFLOW.search(l) or _WONT_FIT.search(l)).strip()
    what = " and ".join(f"{m}: {n:,} bytes over" if n else m for m, n in over.items())
    raise DoesNotFit(f"does not fit {target.name}'s {what} (linker: {line})",
                     "use a smaller model or a board with more memory (`tfgen fit MODEL` compares them)")


def run_program(program: Path, timeout: float = RUN_TIMEOUT_S, env: dict | None = None
                ) -> subprocess.CompletedProcess:
    """Run a built program; its exit status is returned, not raised (non-zero = it found mismatches).
    ``env``: variables added to the environment (the sanitizers' options)."""
    return proc.run([Path(program).resolve()], what=f"the host program {Path(program).name}",
                    timeout=timeout, check=False, env={**os.environ, **(env or {})},
                    hint="it hung or crashed: run it by hand, or build it with -g and debug it")


def _compiler_identity(compiler: str) -> str:
    """What the cache key knows of the compiler: its path, version text and target."""
    path = shutil.which(compiler)
    if path is None:
        raise TfgenError(f"the host build needs a C/C++ compiler, and {compiler} is not installed",
                         "install it (Debian: apt-get install g++)")
    hint = f"check that {compiler} works"
    version = proc.run([path, "--version"], what=f"{compiler} --version", timeout=60, hint=hint).stdout
    machine = proc.run([path, "-dumpmachine"], what=f"{compiler} -dumpmachine", timeout=60, hint=hint).stdout
    return f"{os.path.realpath(path)}\n{version.strip()}\n{machine.strip()}"


class _ObjectCache:
    """Objects under ``<root>/o/``, header manifests under ``<root>/m/``; all writes atomic. Each
    manifest entry records its object's sha256 at write: an object changed since is compiled again."""

    def __init__(self, root: Path, project: Path):
        self.root = root
        self.project = project
        self._hashes: dict[str, str | None] = {}

    def object_for(self, unit: CompileUnit, identity: str) -> tuple[Path, bool]:
        """The cached object for ``unit`` and whether it had to be compiled now."""
        source_key = _digest(json.dumps([identity, unit.compiler, unit.flags, unit.source,
                                         self._file_hash(unit.source)]))
        manifest = self.root / "m" / source_key[:2] / f"{source_key}.json"
        entries = self._read_manifest(manifest)
        for entry in entries:
            deps = entry.get("deps") if isinstance(entry, dict) else None
            if not isinstance(deps, dict) or not deps or not isinstance(entry.get("object"), str):
                continue
            if all(self._file_hash(p) == h for p, h in deps.items()):
                obj = self._object_path(entry["object"])
                if obj.is_file() and entry.get("sha256") == _file_digest(obj):
                    return obj, False
                if obj.is_file():       # changed since it was written: compile it again
                    log.warning("cached object %s does not match the hash recorded at write; recompiling", obj)
        obj_key, obj, deps = self._compile(unit, source_key)
        kept = [e for e in entries if e.get("object") != obj_key][-(MANIFEST_ENTRIES - 1):]
        self._write_manifest(manifest, kept + [{"object": obj_key, "deps": deps, "sha256": _file_digest(obj)}])
        return obj, True

    def _compile(self, unit: CompileUnit, source_key: str) -> tuple[str, Path, dict[str, str | None]]:
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f"{os.getpid()}-", dir=tmp_dir) as tmp:
            obj_tmp, dep_tmp = Path(tmp) / "out.o", Path(tmp) / "out.d"
            cmd = [unit.compiler, *unit.flags, "-MD", "-MF", dep_tmp, "-c", unit.source, "-o", obj_tmp]
            result = proc.run(cmd, what=f"compiling {unit.source}", timeout=COMPILE_TIMEOUT_S,
                              cwd=self.project, env={**os.environ, "LC_ALL": "C"}, check=False)
            if result.returncode != 0:
                raise _compile_error(unit.source, result)
            deps = {}
            for dep in parse_depfile(dep_tmp.read_text(encoding="utf-8", errors="surrogateescape")):
                rel = self._relative(dep)
                if rel is not None:
                    deps[rel] = self._file_hash(rel)
            obj_key = _digest(json.dumps([source_key, sorted(deps.items())]))
            obj = self._object_path(obj_key)
            obj.parent.mkdir(parents=True, exist_ok=True)
            os.replace(obj_tmp, obj)
        return obj_key, obj, deps

    def _object_path(self, key: str) -> Path:
        return self.root / "o" / key[:2] / f"{key}.o"

    def _relative(self, dep: str) -> str | None:
        path = Path(os.path.normpath(self.project / dep))
        try:
            return path.relative_to(self.project).as_posix()
        except ValueError:
            return None             # a system header: covered by the compiler's identity

    def _file_hash(self, rel: str) -> str | None:
        if rel not in self._hashes:
            try:
                self._hashes[rel] = hashlib.sha256((self.project / rel).read_bytes()).hexdigest()
            except OSError:
                self._hashes[rel] = None
        return self._hashes[rel]

    @staticmethod
    def _read_manifest(path: Path) -> list[dict]:
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return entries if isinstance(entries, list) else []

    def _write_manifest(self, path: Path, entries: list[dict]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".manifest.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(entries, f)
        os.replace(tmp, path)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def parse_depfile(text: str) -> list[str]:
    """The prerequisites of a Make rule as gcc -MD writes it (``\\ `` escapes a space)."""
    body = text.replace("\\\r\n", " ").replace("\\\n", " ")
    _, _, prerequisites = body.partition(": ")
    words, word, i = [], "", 0
    while i < len(prerequisites):
        ch = prerequisites[i]
        if ch == "\\" and i + 1 < len(prerequisites) and prerequisites[i + 1] in " #":
            word += prerequisites[i + 1]
            i += 2
            continue
        if ch.isspace():
            if word:
                words.append(word)
            word = ""
        elif ch == "$" and prerequisites[i + 1:i + 2] == "$":
            word += "$"
            i += 1
        else:
            word += ch
        i += 1
    if word:
        words.append(word)
    return words


def _compile_error(source: str, result: subprocess.CompletedProcess) -> TfgenError:
    lines = (result.stderr or result.stdout).splitlines()
    first = next((ln for ln in lines if " error: " in ln or ln.startswith("error:")
                  or " fatal error: " in ln), lines[-1] if lines else "")
    log.debug("compiler output for %s:\n%s", source, proc.tail(result.stderr or result.stdout, 40))
    if source.startswith(SRC_DIR + "/"):
        hint = "fix that file, or regenerate the project with `tfgen generate`"
    else:
        hint = f"use the TFLM tree of espressif/esp-tflite-micro v{PINNED_VERSION}, unmodified"
    return TfgenError(f"{source} does not compile ({proc.describe_status(result.returncode)}): "
                      f"{first.strip()}", hint)
