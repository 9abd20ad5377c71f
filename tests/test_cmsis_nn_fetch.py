"""The pinned CMSIS-NN archives (tflite-micro's wrappers, Arm's library): downloaded into the cache
only when their contents match the checksums, then used from there; offline, the board's default
falls back to the reference kernels with one note."""
from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import pytest

from codegen.toolchain import cmsis_nn, fetch
from codegen.errors import TfgenError

TFLM, LIB = cmsis_nn.ARCHIVES
SOURCES = {TFLM: "tflite-micro", LIB: "CMSIS-NN"}
CONV = f"{cmsis_nn.WRAPPERS_DIR}/conv.cc"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache, no setup given, and both archives unreachable unless a test says otherwise."""
    monkeypatch.setenv(fetch.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(cmsis_nn.ENV_VAR, raising=False)
    for a in cmsis_nn.ARCHIVES:
        monkeypatch.setenv(a.url_env, (tmp_path / "absent.tar.gz").as_uri())
    return tmp_path / "cache"


def archive(dest: Path, prefix: str, files: dict[str, bytes]) -> str:
    """A .tar.gz laid out like GitHub's: every file under one folder."""
    with tarfile.open(dest, "w:gz") as tar:
        for rel, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{prefix}/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dest.as_uri()


def real_files(setup: Path, pinned: fetch.Pinned) -> dict[str, bytes]:
    """The files under the archive's tops, from the real setup (the cmsis_nn_root fixture)."""
    root = setup / SOURCES[pinned]
    files = {}
    for top in pinned.tops:
        paths = [root / top] if (root / top).is_file() else sorted(p for p in (root / top).rglob("*") if p.is_file())
        files.update({p.relative_to(root).as_posix(): p.read_bytes() for p in paths})
    return files


def serve(monkeypatch, tmp_path, pinned: fetch.Pinned, files: dict[str, bytes]) -> None:
    name = pinned.url.rsplit("/", 1)[1]
    url = archive(tmp_path / f"{SOURCES[pinned]}-{name}", f"{SOURCES[pinned]}-{name.removesuffix('.tar.gz')}", files)
    monkeypatch.setenv(pinned.url_env, url)


def test_unreachable_archives_name_the_ways_out_and_the_default_falls_back_quickly(cache):
    with pytest.raises(TfgenError) as err:
        cmsis_nn.resolve()
    assert "cannot download tensorflow/tflite-micro" in err.value.message
    for way in ("--cmsis-nn-dir", cmsis_nn.ENV_VAR, "--kernels reference"):
        assert way in err.value.hint
    with pytest.raises(TfgenError, match="cannot download"):
        cmsis_nn.choose("cmsis-nn", None, "cmsis-nn")
    start = time.monotonic()
    found, note = cmsis_nn.choose("cmsis-nn", None, None)
    assert found is None and "cannot download" in note and "reference kernels" in note
    assert time.monotonic() - start < 5
    assert cmsis_nn.available() is None and cmsis_nn.cached_setup() is None
    with pytest.raises(TfgenError, match="none is cached"):
        cmsis_nn.resolve(download=False)


def test_a_non_archive_is_refused(cache, tmp_path, monkeypatch):
    (tmp_path / "junk.tar.gz").write_bytes(b"<html>captive portal</html>")
    monkeypatch.setenv(TFLM.url_env, (tmp_path / "junk.tar.gz").as_uri())
    with pytest.raises(TfgenError, match="not a readable .tar.gz") as err:
        cmsis_nn.resolve()
    assert TFLM.url_env in err.value.hint
    assert not TFLM.dir.exists()


@pytest.mark.parametrize("tampered, path", [(TFLM, CONV), (LIB, "Source/ConvolutionFunctions/arm_convolve_s8.c")])
def test_a_tampered_real_archive_is_refused_and_nothing_of_it_cached(cmsis_nn_root, cache, tmp_path, monkeypatch,
                                                                     tampered, path):
    for pinned in cmsis_nn.ARCHIVES:
        files = real_files(cmsis_nn_root, pinned)
        if pinned is tampered:
            lines = files[path].splitlines(keepends=True)
            lines[len(lines) // 2] = b"  // one line changed\n"
            files[path] = b"".join(lines)
        serve(monkeypatch, tmp_path, pinned, files)
    with pytest.raises(TfgenError, match="do not match the pinned checksum.*nothing cached"):
        cmsis_nn.resolve()
    assert fetch.cached(tampered) is None and not tampered.dir.exists()
    assert cmsis_nn.cached_setup() is None
    assert [p.name for p in tampered.dir.parent.iterdir()] == (["tflite-micro"] if tampered is LIB else [])


def test_the_pinned_archives_are_downloaded_once_then_used_from_the_cache(cmsis_nn_root, cache, tmp_path,
                                                                          monkeypatch):
    for pinned in cmsis_nn.ARCHIVES:
        serve(monkeypatch, tmp_path, pinned, {**real_files(cmsis_nn_root, pinned), "README.md": b"not used\n",
                                              "tensorflow/lite/micro/kernels/conv.cc": b"// not used\n"})
    c = cmsis_nn.resolve()
    assert c.root == (cache / cmsis_nn.CACHE_PATH).resolve() == cmsis_nn.cached_setup().resolve()
    kept = {p.relative_to(c.root).as_posix() for p in c.root.rglob("*") if p.is_file()}
    assert {"tflite-micro/LICENSE", f"tflite-micro/{CONV}", "CMSIS-NN/LICENSE"} <= kept
    assert all(p.startswith(("tflite-micro/LICENSE", f"tflite-micro/{cmsis_nn.WRAPPERS_DIR}/", "CMSIS-NN/Include/",
                             "CMSIS-NN/Source/", "CMSIS-NN/LICENSE")) or p.endswith(fetch.MARKER) for p in kept)
    for pinned in cmsis_nn.ARCHIVES:                                   # no second download
        monkeypatch.setenv(pinned.url_env, (tmp_path / "gone.tar.gz").as_uri())
    assert cmsis_nn.resolve().root == c.root and cmsis_nn.choose("cmsis-nn", None, None) == (c, None)
    sel = c.select([f"{cmsis_nn.KERNELS_DIR}/conv.cc", f"{cmsis_nn.KERNELS_DIR}/conv_common.cc"])
    assert sel.wrappers == ("conv.cc",) and all(src.is_file() for _, src in sel.files)
