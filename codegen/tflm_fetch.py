"""The pinned TFLM tree in tfgen's cache: downloaded once, checked, reused.

The archive is Espressif's esp-tflite-micro release that every generated project uses. Its check is a
sha256 over the unpacked files tfgen uses (paths and contents), not over the archive's bytes: the
server's compression may change, the sources may not.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from codegen.errors import TfgenError

PINNED_VERSION = "1.3.8"
PINNED_URL = f"https://github.com/espressif/esp-tflite-micro/archive/refs/tags/v{PINNED_VERSION}.tar.gz"
# tree_digest() of that release (tag v1.3.8, commit d6465fd).
PINNED_TREE_SHA256 = "74a746a74a970ee329259ca4f7fade816614de5c28d464031fbe0a8ab12cbbaf"
DIGEST_ROOTS = ("LICENSE", "idf_component.yml", "signal", "tensorflow", "third_party")
URL_ENV = "TFGEN_TFLM_URL"          # another location of the same archive (a mirror, a file:// URL)
CACHE_ENV = "TFGEN_CACHE_DIR"
MARKER = ".tfgen-tree-sha256"
DOWNLOAD_TIMEOUT_S = 120


def tree_version(root: Path) -> str | None:
    """The esp-tflite-micro release a tree is, from its idf_component.yml ("esp-tflite-micro 1.3.8")."""
    manifest = Path(root) / "idf_component.yml"
    if manifest.is_file():
        m = re.search(r'^version:\s*"?([^"\s]+)"?', manifest.read_text(encoding="utf-8"), re.M)
        if m:
            return f"esp-tflite-micro {m.group(1)}"
    return None


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tfgen")


def cached_dir() -> Path:
    return cache_root() / "tflm" / f"esp-tflite-micro-{PINNED_VERSION}"


def tree_digest(root: Path) -> str:
    """sha256 over every file under DIGEST_ROOTS: its relative path and the sha256 of its bytes."""
    h = hashlib.sha256()
    for top in DIGEST_ROOTS:
        base = root / top
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for p in paths:
            h.update(p.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def cached_tree() -> Path | None:
    """The cached tree, if it is there and was verified when it was stored."""
    d = cached_dir()
    marker = d / MARKER
    if marker.is_file() and marker.read_text().strip() == PINNED_TREE_SHA256:
        return d
    return None


def download(url: str | None = None, expected: str = PINNED_TREE_SHA256) -> Path:
    """Fetch the archive, unpack it, check its tree digest and move it into the cache."""
    url = url or os.environ.get(URL_ENV) or PINNED_URL
    dest = cached_dir()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tfgen-tflm-", dir=dest.parent) as tmp:
        archive = Path(tmp) / "tflm.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response, archive.open("wb") as f:
                shutil.copyfileobj(response, f)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TfgenError(f"cannot download TFLM (esp-tflite-micro {PINNED_VERSION}) from {url}: {reason}",
                             "when offline, pass --tflm-dir DIR or set TFGEN_TFLM_DIR to an esp-tflite-micro "
                             f"v{PINNED_VERSION} checkout; or retry when the network is back")
        unpacked = Path(tmp) / "unpacked"
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(unpacked, filter="data")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise TfgenError(f"{url}: not a readable .tar.gz archive ({exc})",
                             f"check {URL_ENV} or the network; the archive was not used")
        tops = [p for p in unpacked.iterdir()]
        root = tops[0] if len(tops) == 1 and tops[0].is_dir() else unpacked
        got = tree_digest(root)
        if got != expected:
            raise TfgenError(f"{url}: the TFLM archive's contents do not match the pinned checksum "
                             f"(got {got[:16]}..., expected {expected[:16]}...); refused, nothing cached",
                             f"make sure it is esp-tflite-micro v{PINNED_VERSION}, unmodified")
        (root / MARKER).write_text(got + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(root, dest)
    return dest
