"""Concurrent runs, private work directories, a cache that checks what it serves."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

import needs
from codegen.toolchain import builder, tflm_fetch
from conftest import REPO, model

pytestmark = pytest.mark.slow


def _tfgen_env(cache: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TFGEN_TFLM_DIR"}
    return {**env, "TFGEN_CACHE_DIR": str(cache), **extra}


def _seed_cache(cache: Path, tflm_root: Path) -> None:
    """A cache holding the pinned TFLM tree, stored by tfgen's own download from a local archive."""
    archive = cache.parent / "tflm.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for top in tflm_fetch.DIGEST_ROOTS:
            if (tflm_root / top).exists():
                tar.add(tflm_root / top, arcname=f"esp-tflite-micro-1.3.8/{top}")
    r = subprocess.run([sys.executable, "-c", "from codegen.toolchain import tflm_tree; print(tflm_tree.resolve().root)"],
                       capture_output=True, text=True, timeout=300, cwd=REPO,
                       env=_tfgen_env(cache, TFGEN_TFLM_URL=archive.as_uri()))
    assert r.returncode == 0, r.stderr


def test_concurrent_verifies_of_one_model_give_the_sequential_answers(tflm_root, tmp_path):
    """Three verifies of the same model at once, each with its own seed and vector count: each is
    byte-exact with exactly its own vectors (they once shared a work directory)."""
    needs.tools("g++")
    cache = tmp_path / "cache"
    _seed_cache(cache, tflm_root)
    runs = [(1, 7), (2, 13), (3, 5)]

    def command(seed, n):
        return [sys.executable, "-m", "codegen", "verify", str(model("ad01_int8")), "--board", "host", "--seed",
                str(seed), "--vectors", str(n), "--json"]
    keys = ("ok", "vectors", "bytes_compared", "mismatched_bytes", "arena_used_bytes", "arena_size")
    sequential = []
    for seed, n in runs:                                    # one after the other (the first warms the cache)
        r = subprocess.run(command(seed, n), capture_output=True, text=True, timeout=1800, cwd=REPO,
                           env=_tfgen_env(cache))
        assert r.returncode == 0, r.stderr
        sequential.append({k: json.loads(r.stdout)[k] for k in keys})
    procs = [subprocess.Popen(command(seed, n), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_tfgen_env(cache)) for seed, n in runs]
    for (seed, n), p, alone in zip(runs, procs, sequential):
        out, err = p.communicate(timeout=1800)
        assert p.returncode == 0, err
        report = {k: json.loads(out)[k] for k in keys}
        assert report == alone and report["ok"] and report["vectors"] == n, (report, alone)
        assert report["bytes_compared"] == n * 640
    # private, inside the cache, and gone after a pass; nothing beside the cache
    assert not (tmp_path / "verify").exists()
    assert list((cache / "verify").iterdir()) == []


def test_each_verify_has_a_private_work_directory_inside_the_cache(tflm_root, tmp_path, monkeypatch):
    from codegen.project import boards
    from codegen.model import inspection
    from codegen.oracle import reference
    from codegen.run import verify
    cache = tmp_path / "cache"
    monkeypatch.setenv("TFGEN_CACHE_DIR", str(cache))
    data = model("hello_world_int8").read_bytes()
    ir = inspection.parse_model(data, "hello_world_int8.tflite")
    preps = [verify.prepare(ir, data, boards.get_board("host"), reference.random_inputs(ir, 2, 0), tflm_root, "t")
             for _ in range(2)]
    works = [p.project.parent for p in preps]
    assert works[0] != works[1]
    for work in works:
        assert work.parent == cache / "verify" and stat.S_IMODE(work.stat().st_mode) == 0o700
    for p in preps:
        verify.cleanup(p)
    assert not any(w.exists() for w in works)


def test_a_modified_cached_tflm_tree_is_not_served(tflm_root, tmp_path):
    """'+=' made '-=' in the cached tree: not used; the next resolve downloads it again (repaired),
    and where it cannot, one line says the cached tree was modified."""
    cache = tmp_path / "cache"
    _seed_cache(cache, tflm_root)
    header = cache / "tflm/esp-tflite-micro-1.3.8/tensorflow/lite/kernels/internal/reference/integer_ops/fully_connected.h"
    original = header.read_text()
    assert "+=" in original
    header.write_text(original.replace("+=", "-=", 1))
    code = "from codegen.toolchain import tflm_tree; print(tflm_tree.resolve().root)"
    offline = _tfgen_env(cache, TFGEN_TFLM_URL=(tmp_path / "absent.tar.gz").as_uri())
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO, env=offline)
    assert r.returncode != 0 and "does not match its checksum (it was modified)" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "codegen", "generate", str(model("hello_world_int8")), "--board", "host",
                        "-o", str(tmp_path / "p")], capture_output=True, text=True, timeout=300, cwd=REPO, env=offline)
    assert r.returncode == 2 and "was modified" in r.stderr and not (tmp_path / "p").exists(), r.stderr
    online = _tfgen_env(cache, TFGEN_TFLM_URL=(tmp_path / "tflm.tar.gz").as_uri())
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO, env=online)
    assert r.returncode == 0, r.stderr
    assert header.read_text() == original


def test_a_modified_cached_object_is_compiled_again(tflm_root, tmp_path):
    needs.tools("g++")
    project, cache = tmp_path / "p", tmp_path / "objects"
    r = subprocess.run([sys.executable, "-m", "codegen", "generate", str(model("hello_world_int8")), "--board", "host",
                        "-o", str(project)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr
    first = builder.build(project, cache=cache, test_mode=False)
    objects = sorted((cache / "o").rglob("*.o"))
    assert len(objects) == len(first.compiled) > 10
    victim = objects[len(objects) // 2]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    second = builder.build(project, cache=cache, test_mode=False)
    assert len(second.compiled) == 1 and victim.read_bytes() != bytes(data)
    assert len(builder.build(project, cache=cache, test_mode=False).compiled) == 0


def _compilers_of(cache: Path) -> list[str]:
    """Running processes whose command line names ``cache`` (the compilers write their .d files there)."""
    r = subprocess.run(["pgrep", "-f", "-a", str(cache)], capture_output=True, text=True)
    return [line for line in r.stdout.splitlines() if "pgrep" not in line]


def _start_cold_verify(cache: Path, tflm_root: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "codegen", "verify", str(model("kws_ref_model")), "--board", "host",
                          "--vectors", "3", "--tflm-dir", str(tflm_root)], cwd=REPO, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=_tfgen_env(cache))
    deadline = time.monotonic() + 300
    while not _compilers_of(cache):             # wait until it compiles
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.2)
    return p


def test_sigterm_ends_the_compilers_and_leaves_no_temporaries(tflm_root, tmp_path):
    needs.tools("g++", "pgrep")
    cache = tmp_path / "cache"
    p = _start_cold_verify(cache, tflm_root)
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    time.sleep(0.5)
    assert _compilers_of(cache) == []
    assert list((cache / "objects" / "tmp").iterdir()) == []
    assert list((cache / "verify").iterdir()) == []


def test_what_a_sigkilled_run_left_is_removed_by_the_next(tflm_root, tmp_path):
    needs.tools("g++", "pgrep")
    cache = tmp_path / "cache"
    p = _start_cold_verify(cache, tflm_root)
    p.kill()
    p.communicate(timeout=60)
    deadline = time.monotonic() + 120
    while _compilers_of(cache) and time.monotonic() < deadline:     # its compilers finish on their own
        time.sleep(0.5)
    left = list((cache / "objects" / "tmp").iterdir()) + list((cache / "verify").iterdir())
    assert left and all(e.name.startswith(f"{p.pid}-") for e in left)
    r = subprocess.run([sys.executable, "-m", "codegen", "verify", str(model("hello_world_int8")), "--board", "host",
                        "--vectors", "2", "--tflm-dir", str(tflm_root)], cwd=REPO, capture_output=True, text=True,
                       timeout=1800, env=_tfgen_env(cache))
    assert r.returncode == 0, r.stderr
    assert not any(e.exists() for e in left)
