"""CMSIS-NN for Cortex-M boards: TFLM's ``kernels/cmsis_nn/`` wrappers over Arm's CMSIS-NN library.

A CMSIS-NN setup is one directory holding::

    DIR/tflite-micro/   tensorflow/tflite-micro at the commit the TFLM tree was synced from
                        (only tensorflow/lite/micro/kernels/cmsis_nn/*.cc is read)
    DIR/CMSIS-NN/       ARM-software/CMSIS-NN at the commit that tflite-micro's
                        tensorflow/lite/micro/tools/make/ext_libs/cmsis_nn_download.sh names

For esp-tflite-micro 1.3.8 (TFLM synced 2026-07-20) those are PINNED_TFLM_COMMIT and
PINNED_CMSIS_NN_COMMIT below. It is found in this order: ``--cmsis-nn-dir``, ``TFGEN_CMSIS_NN_DIR``,
tfgen's cache (``cmsis-nn/<commits>/`` in codegen.toolchain.fetch.cache_root()), else the two GitHub archives
of those commits are downloaded (or from TFGEN_CMSIS_NN_TFLM_URL and TFGEN_CMSIS_NN_URL), each
accepted only when the sha256 over the files tfgen uses matches the one below (codegen/toolchain/fetch.py).
A board whose default is cmsis-nn falls back to the reference kernels, with a note, when that
download fails (offline); ``--kernels cmsis-nn`` makes it an error.

Selection: for each kernel file of the model's ops that has a wrapper of the same name in
``kernels/cmsis_nn/``, the wrapper replaces the reference file (``<op>_common.cc`` and the other
helpers stay), and only the CMSIS-NN library sources the chosen wrappers reach are copied. That
reach is the table ``data/cmsis_nn_sources.json``, made by a symbol closure over the compiled
library (what the linker pulls from an archive of it); regenerate it from the checkout with::

    python -m tools.cmsis_nn_table --cmsis-nn-dir DIR > codegen/data/cmsis_nn_sources.json

In a project the wrappers go to ``lib/tflm/tensorflow/lite/micro/kernels/cmsis_nn/`` and the library
to ``lib/tflm/third_party/cmsis_nn/`` (its ``Include/`` and the selected ``Source/`` files); every
file of the project is compiled with ``-DCMSIS_NN`` (TFLM's kernel headers depend on it).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from codegen.toolchain import fetch
from codegen.errors import TfgenError
from codegen.resources import DATA_DIR

ENV_VAR = "TFGEN_CMSIS_NN_DIR"
PINNED_TFLM_COMMIT = "096563546742ba81adb6f012ab718d196a48e02d"     # tflite-micro, 2026-07-13
PINNED_CMSIS_NN_COMMIT = "4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae"  # CMSIS-NN, 2026-06-17
WRAPPERS_DIR = "tensorflow/lite/micro/kernels/cmsis_nn"
KERNELS_DIR = "tensorflow/lite/micro/kernels"
LIB_DEST = "third_party/cmsis_nn"              # in lib/tflm/
DEFINES = ("-DCMSIS_NN",)
# Header directories, relative to lib/tflm/: the wrappers include "Include/arm_nnfunctions.h",
# the library's own sources "arm_nnfunctions.h".
INCLUDE_DIRS = (LIB_DEST, f"{LIB_DEST}/Include")
KERNEL_CHOICES = ("reference", "cmsis-nn", "esp-nn")
LIBRARIES = ("cmsis-nn", "esp-nn")
DATA_FILE = DATA_DIR / "cmsis_nn_sources.json"
HINT = (f"pass --cmsis-nn-dir DIR or set {ENV_VAR}=DIR, DIR holding tflite-micro/ (tensorflow/tflite-micro "
        f"@{PINNED_TFLM_COMMIT[:12]}) and CMSIS-NN/ (ARM-software/CMSIS-NN @{PINNED_CMSIS_NN_COMMIT[:12]}); "
        "or use --kernels reference")
CACHE_PATH = f"cmsis-nn/{PINNED_TFLM_COMMIT[:12]}-{PINNED_CMSIS_NN_COMMIT[:12]}"
# The two GitHub archives, each checked by fetch.tree_digest() over its `tops` (git archive of the
# pinned commits, the way GitHub makes them). Another location of either: the URL_ENV variables.
ARCHIVES = (
    fetch.Pinned(f"tensorflow/tflite-micro @{PINNED_TFLM_COMMIT[:12]}",
                 f"https://github.com/tensorflow/tflite-micro/archive/{PINNED_TFLM_COMMIT}.tar.gz",
                 "TFGEN_CMSIS_NN_TFLM_URL", ("LICENSE", WRAPPERS_DIR),
                 "90f2b0aa2554dec24c5cf8e8e94b882356d6f263ff38a06f37bf68c2c6a78645",
                 f"{CACHE_PATH}/tflite-micro", HINT),
    fetch.Pinned(f"ARM-software/CMSIS-NN @{PINNED_CMSIS_NN_COMMIT[:12]}",
                 f"https://github.com/ARM-software/CMSIS-NN/archive/{PINNED_CMSIS_NN_COMMIT}.tar.gz",
                 "TFGEN_CMSIS_NN_URL", ("Include", "Source", "LICENSE"),
                 "d5041044ce86fe7997ec50e0ef37082da16512f4541cb546636294a95096bcd5",
                 f"{CACHE_PATH}/CMSIS-NN", HINT),
)
# The board's default tries the download too; offline it must give up quickly.
DEFAULT_TIMEOUT_S = 15


@dataclass(frozen=True)
class CmsisNn:
    root: Path

    @property
    def wrappers(self) -> Path:
        return self.root / "tflite-micro" / WRAPPERS_DIR

    @property
    def library(self) -> Path:
        return self.root / "CMSIS-NN"

    @property
    def version(self) -> str:
        return f"CMSIS-NN {PINNED_CMSIS_NN_COMMIT[:12]} (tflite-micro cmsis_nn wrappers {PINNED_TFLM_COMMIT[:12]})"

    def wrapped(self) -> set[str]:
        """Names of the kernel files that have a wrapper (conv.cc, ...)."""
        return {p.name for p in self.wrappers.glob("*.cc")}

    def select(self, kernel_files: list[str]) -> "Selection":
        """Split the reference kernel selection: which files a wrapper replaces, and what to copy."""
        wrapped = self.wrapped()
        table = load_table()
        kept, wrappers, library = [], [], set()
        for f in kernel_files:
            name = Path(f).name
            if f.startswith(KERNELS_DIR + "/") and "/" not in f[len(KERNELS_DIR) + 1:] and name in wrapped:
                wrappers.append(name)
                if name not in table:
                    raise TfgenError(f"no CMSIS-NN source list for the wrapper {name}",
                                     "regenerate codegen/data/cmsis_nn_sources.json (python -m tools.cmsis_nn_table)")
                library.update(table[name])
            else:
                kept.append(f)
        files: dict[str, Path] = {f"{WRAPPERS_DIR}/{w}": self.wrappers / w for w in wrappers}
        include = self.library / "Include"
        for h in sorted(include.rglob("*.h")):
            files[f"{LIB_DEST}/{h.relative_to(self.library).as_posix()}"] = h
        for src in sorted(library):
            files[f"{LIB_DEST}/{src}"] = self.library / src
        files[f"{LIB_DEST}/LICENSE"] = self.library / "LICENSE"
        return Selection(tuple(kept), tuple(sorted(wrappers)), tuple(sorted(files.items())))


@dataclass(frozen=True)
class Selection:
    kernel_files: tuple[str, ...]              # reference kernel files still used (tree-relative)
    wrappers: tuple[str, ...]                  # wrapper file names used (conv.cc, ...)
    files: tuple[tuple[str, Path], ...]        # lib/tflm-relative destination -> source file


def resolve(option: Path | None = None, download: bool = True,
            timeout: float = fetch.DOWNLOAD_TIMEOUT_S) -> CmsisNn:
    """The setup from the first of: --cmsis-nn-dir, TFGEN_CMSIS_NN_DIR, tfgen's cache, or (when
    ``download``) the two pinned archives, downloaded, checked and cached."""
    chosen = option or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    if chosen is not None:
        return open_dir(chosen)
    if not download and cached_setup() is None:
        raise TfgenError("no CMSIS-NN setup: none was given and none is cached", HINT)
    for archive in ARCHIVES:
        if fetch.cached(archive) is None:
            fetch.download(archive, timeout=timeout)
    return open_dir(fetch.cache_root() / CACHE_PATH)


def cached_setup() -> Path | None:
    """The cached setup, if both its archives are there and were verified when they were stored."""
    return fetch.cache_root() / CACHE_PATH if all(fetch.cached(a) for a in ARCHIVES) else None


def kernels_for(board_kernels: str, kernels: str | None = None) -> str:
    """The kernel set a build for a board with ``board_kernels`` asks for with ``--kernels`` (None: the
    board's): reference, or the board's own library (cmsis-nn on Cortex-M boards, esp-nn on ESP
    chips); another board's library is an error."""
    if kernels in LIBRARIES and kernels != board_kernels:
        raise TfgenError(f"--kernels {kernels}: this board's kernels are {board_kernels}",
                         "CMSIS-NN is for the Cortex-M boards, ESP-NN for the ESP chips (kernels = ... in "
                         "boards/*.toml); or pass --kernels reference")
    return kernels or board_kernels


def choose(board_kernels: str, option: Path | None = None, kernels: str | None = None
           ) -> tuple[CmsisNn | None, str | None]:
    """The CMSIS-NN setup a build for a board with ``board_kernels`` uses, and a note when it falls
    back to the reference kernels (the download failed). ``kernels`` ("reference"/"cmsis-nn"/None =
    the board's default)."""
    if kernels_for(board_kernels, kernels) != "cmsis-nn":
        return None, None
    if kernels == "cmsis-nn":
        return resolve(option), None
    found = available(option)
    if found is not None:
        return found, None
    try:
        return resolve(timeout=DEFAULT_TIMEOUT_S), None
    except TfgenError as exc:
        return None, (f"CMSIS-NN not available ({exc.message}), so TFLM's reference kernels were used; "
                      f"set {ENV_VAR} (or --cmsis-nn-dir) for the board's CMSIS-NN kernels")


def available(option: Path | None = None) -> CmsisNn | None:
    """The setup from --cmsis-nn-dir, TFGEN_CMSIS_NN_DIR or the cache, without downloading; None if none."""
    if option or os.environ.get(ENV_VAR) or cached_setup():
        return resolve(option, download=False)
    return None


def open_dir(root: Path) -> CmsisNn:
    root = Path(root).expanduser().resolve()
    c = CmsisNn(root)
    problems = []
    if not (c.wrappers / "conv.cc").is_file():
        problems.append(f"no {c.wrappers}/conv.cc")
    if not (c.library / "Include" / "arm_nnfunctions.h").is_file():
        problems.append(f"no {c.library}/Include/arm_nnfunctions.h")
    if problems:
        raise TfgenError(f"{root}: not a CMSIS-NN setup tfgen can use ({'; '.join(problems)})", HINT)
    return c


@lru_cache(maxsize=1)
def load_table() -> dict[str, list[str]]:
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))["wrappers"]


def optimized_ops(tree, ops: list[str], wrappers: tuple[str, ...]) -> list[str]:
    """The builtin ops among ``ops`` whose kernel is one of ``wrappers``."""
    from codegen.toolchain.tflm_tree import kernel_main_file
    return [op for op in ops if kernel_main_file(tree, op) in wrappers]
