"""The pinned TFLM archive: downloaded into the cache only when its contents match the checksum."""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from codegen.toolchain import tflm_fetch, tflm_tree
from codegen.errors import TfgenError


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(tflm_fetch.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(tflm_tree.ENV_VAR, raising=False)
    return tmp_path / "cache"


def make_archive(src: Path, dest: Path, prefix: str = "esp-tflite-micro-1.3.8") -> str:
    with tarfile.open(dest, "w:gz") as tar:
        for top in tflm_fetch.DIGEST_ROOTS:
            if (src / top).exists():
                tar.add(src / top, arcname=f"{prefix}/{top}")
    return dest.as_uri()


def test_unreachable_archive_names_both_ways_out(cache, monkeypatch):
    monkeypatch.setenv(tflm_fetch.URL_ENV, (cache.parent / "absent.tar.gz").as_uri())
    with pytest.raises(TfgenError) as err:
        tflm_tree.resolve()
    assert "cannot download" in err.value.message
    assert "--tflm-dir" in err.value.hint and "TFGEN_TFLM_DIR" in err.value.hint
    assert tflm_fetch.cached_tree() is None


def test_an_archive_with_other_contents_is_refused_and_not_cached(cache, tmp_path, monkeypatch):
    fake = tmp_path / "fake"
    (fake / "tensorflow").mkdir(parents=True)
    (fake / "tensorflow" / "x.h").write_text("// not TFLM\n")
    (fake / "LICENSE").write_text("nope\n")
    monkeypatch.setenv(tflm_fetch.URL_ENV, make_archive(fake, tmp_path / "fake.tar.gz"))
    with pytest.raises(TfgenError, match="do not match the pinned checksum"):
        tflm_tree.resolve()
    assert tflm_fetch.cached_tree() is None and not tflm_fetch.cached_dir().exists()


def test_a_non_archive_is_refused(cache, tmp_path, monkeypatch):
    (tmp_path / "junk.tar.gz").write_bytes(b"<html>captive portal</html>")
    monkeypatch.setenv(tflm_fetch.URL_ENV, (tmp_path / "junk.tar.gz").as_uri())
    with pytest.raises(TfgenError, match="not a readable .tar.gz"):
        tflm_tree.resolve()


def test_the_pinned_archive_is_downloaded_once_then_used_from_the_cache(tflm_root, cache, tmp_path, monkeypatch):
    src = tflm_root
    monkeypatch.setenv(tflm_fetch.URL_ENV, make_archive(src, tmp_path / "tflm.tar.gz"))
    tree = tflm_tree.resolve()
    assert tree.root == tflm_fetch.cached_dir().resolve() and tree.version == "esp-tflite-micro 1.3.8"
    monkeypatch.setenv(tflm_fetch.URL_ENV, (tmp_path / "gone.tar.gz").as_uri())   # no second download
    assert tflm_tree.resolve().root == tree.root


def test_a_tampered_real_archive_is_refused(tflm_root, cache, tmp_path, monkeypatch):
    src = tflm_root
    copy = tmp_path / "copy"
    for top in tflm_fetch.DIGEST_ROOTS:
        if (src / top).is_dir():
            shutil.copytree(src / top, copy / top)
        elif (src / top).is_file():
            copy.mkdir(exist_ok=True)
            shutil.copy(src / top, copy / top)
    kernel = copy / "tensorflow/lite/micro/kernels/fully_connected.cc"
    kernel.write_text(kernel.read_text() + "\n// one line more\n")
    monkeypatch.setenv(tflm_fetch.URL_ENV, make_archive(copy, tmp_path / "t.tar.gz"))
    with pytest.raises(TfgenError, match="do not match"):
        tflm_tree.resolve()
    assert tflm_fetch.cached_tree() is None
