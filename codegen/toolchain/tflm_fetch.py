"""The pinned TFLM tree in tfgen's cache: downloaded once, checked, reused (see codegen/toolchain/fetch.py).

The archive is Espressif's esp-tflite-micro release that every generated project uses.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from codegen.toolchain import fetch
from codegen.toolchain.fetch import CACHE_ENV, MARKER, cache_root  # noqa: F401  (tfgen's cache, for the callers)

PINNED_VERSION = "1.3.8"
PINNED_URL = f"https://github.com/espressif/esp-tflite-micro/archive/refs/tags/v{PINNED_VERSION}.tar.gz"
# tree_digest() of that release (tag v1.3.8, commit d6465fd).
PINNED_TREE_SHA256 = "74a746a74a970ee329259ca4f7fade816614de5c28d464031fbe0a8ab12cbbaf"
DIGEST_ROOTS = ("LICENSE", "idf_component.yml", "signal", "tensorflow", "third_party")
URL_ENV = "TFGEN_TFLM_URL"          # another location of the same archive (a mirror, a file:// URL)
PINNED = fetch.Pinned(
    f"esp-tflite-micro v{PINNED_VERSION}", PINNED_URL, URL_ENV, DIGEST_ROOTS, PINNED_TREE_SHA256,
    f"tflm/esp-tflite-micro-{PINNED_VERSION}",
    f"pass --tflm-dir DIR or set TFGEN_TFLM_DIR to an esp-tflite-micro v{PINNED_VERSION} checkout")


def tree_version(root: Path) -> str | None:
    """The esp-tflite-micro release a tree is, from its idf_component.yml ("esp-tflite-micro 1.3.8")."""
    manifest = Path(root) / "idf_component.yml"
    if manifest.is_file():
        m = re.search(r'^version:\s*"?([^"\s]+)"?', manifest.read_text(encoding="utf-8"), re.M)
        if m:
            return f"esp-tflite-micro {m.group(1)}"
    return None


def cached_dir() -> Path:
    return PINNED.dir


def tree_digest(root: Path) -> str:
    return fetch.tree_digest(root, DIGEST_ROOTS)


def cached_tree() -> Path | None:
    return fetch.cached(PINNED)


def download(url: str | None = None, expected: str = PINNED_TREE_SHA256) -> Path:
    return fetch.download(dataclasses.replace(PINNED, sha256=expected), url)
