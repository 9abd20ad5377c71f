"""Pinned source archives in tfgen's cache: downloaded once, checked, reused.

An archive (a GitHub ``.tar.gz``: one top-level folder) is checked by a sha256 over the unpacked files
tfgen uses (paths and contents), not over the archive's bytes: the server's compression may change,
the sources may not. Only those files are unpacked and kept; the checked tree is moved into the cache
in one step, with a marker holding its digest, so a half-written or refused tree is never used.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from codegen.errors import TfgenError

CACHE_ENV = "TFGEN_CACHE_DIR"
MARKER = ".tfgen-tree-sha256"
DOWNLOAD_TIMEOUT_S = 120


@dataclass(frozen=True)
class Pinned:
    what: str                   # what the archive is, for messages ("esp-tflite-micro v1.3.8")
    url: str
    url_env: str                # names another location of the same archive (a mirror, a file:// URL)
    tops: tuple[str, ...]       # the files and folders tfgen uses, relative to the archive's folder
    sha256: str                 # tree_digest() over ``tops``
    cache_path: str             # where it goes, relative to cache_root()
    offline_hint: str           # how to do without the download

    @property
    def dir(self) -> Path:
        return cache_root() / self.cache_path


def cache_root() -> Path:
    """tfgen's cache: $TFGEN_CACHE_DIR, else $XDG_CACHE_HOME/tfgen, else ~/.cache/tfgen. Everything tfgen
    keeps (source trees, objects, verify's work directories) is inside it."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tfgen"


def tree_digest(root: Path, tops: tuple[str, ...]) -> str:
    """sha256 over every file under ``tops``: its relative path and the sha256 of its bytes."""
    h = hashlib.sha256()
    for top in tops:
        base = root / top
        paths = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for p in paths:
            h.update(p.relative_to(root).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


_verified: dict[Path, bool] = {}


def cached(pinned: Pinned) -> Path | None:
    """The cached tree, if it is there, was verified when it was stored, and still has the pinned
    digest (checked once per process: a tree modified in the cache is not served, and the next
    download replaces it)."""
    marker = pinned.dir / MARKER
    if not (marker.is_file() and marker.read_text().strip() == pinned.sha256):
        return None
    if pinned.dir not in _verified:
        _verified[pinned.dir] = tree_digest(pinned.dir, pinned.tops) == pinned.sha256
    return pinned.dir if _verified[pinned.dir] else None


def modified(pinned: Pinned) -> bool:
    """Whether the cache holds this tree with its marker but other contents (someone changed it)."""
    marker = pinned.dir / MARKER
    return (marker.is_file() and marker.read_text().strip() == pinned.sha256
            and not _verified.get(pinned.dir, tree_digest(pinned.dir, pinned.tops) == pinned.sha256))


def download(pinned: Pinned, url: str | None = None, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Fetch the archive, unpack the files under ``pinned.tops``, check their tree digest and move
    them into the cache. One process at a time per tree (a lock file in the cache's .locks/): a second
    one waits, then uses what the first stored."""
    import fcntl
    dest = pinned.dir
    dest.parent.mkdir(parents=True, exist_ok=True)
    locks = cache_root() / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / (pinned.cache_path.replace("/", "__") + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _verified.pop(dest, None)
        if cached(pinned) is not None and url is None:
            return dest
        return _download_locked(pinned, url, timeout)


def _download_locked(pinned: Pinned, url: str | None, timeout: float) -> Path:
    url = url or os.environ.get(pinned.url_env) or pinned.url
    dest = pinned.dir
    with tempfile.TemporaryDirectory(prefix="tfgen-fetch-", dir=dest.parent) as tmp:
        archive = Path(tmp) / "archive.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, archive.open("wb") as f:
                shutil.copyfileobj(response, f)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            changed = (f"the cached {pinned.what} in {dest} does not match its checksum (it was modified), "
                       "and " if modified(pinned) else "")
            raise TfgenError(f"{changed}cannot download {pinned.what} from {url}: {getattr(exc, 'reason', exc)}",
                             f"when offline, {pinned.offline_hint}; or retry when the network is back")
        root = _unpack(archive, Path(tmp) / "unpacked", pinned.tops, url, pinned.url_env)
        got = tree_digest(root, pinned.tops)
        if got != pinned.sha256:
            raise TfgenError(f"{url}: the {pinned.what} archive's contents do not match the pinned checksum "
                             f"(got {got[:16]}..., expected {pinned.sha256[:16]}...); refused, nothing cached",
                             f"make sure it is {pinned.what}, unmodified")
        (root / MARKER).write_text(got + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(root, dest)
        _verified[dest] = True
    return dest


def _unpack(archive: Path, out: Path, tops: tuple[str, ...], url: str, url_env: str) -> Path:
    """Extract the members under ``tops`` of the archive's one top-level folder, in one streaming
    pass (a large archive is never unpacked whole); return that folder."""
    folders = set()
    out.mkdir()
    try:
        with tarfile.open(archive, "r|gz") as tar:
            for member in tar:
                folder, _, rel = member.name.partition("/")
                if any(rel == t or rel.startswith(t + "/") for t in tops):
                    folders.add(folder)
                    tar.extract(member, out, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise TfgenError(f"{url}: not a readable .tar.gz archive ({exc})",
                         f"check {url_env} or the network; the archive was not used")
    return out / folders.pop() if len(folders) == 1 else out
