"""`pip install .` into a fresh virtual env gives a working `tfgen` that finds its data files."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, model

pytestmark = pytest.mark.slow


def test_wheel_installs_into_a_fresh_venv_and_finds_its_data(tmp_path):
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, REPO],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    wheel = next(wheels.glob("tfgen-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("codegen/cli.py", "codegen/data/tflm_ops.json", "codegen/_data/boards/esp32.toml",
                   "codegen/_data/templates/README.md", "codegen/_data/firmware/README.md"):
        assert needed in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # tfgen itself comes from the wheel; its (large) dependencies from this test's environment
    site = Path(subprocess.check_output([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                        text=True).strip())
    (site / "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = subprocess.run([py, "-m", "pip", "install", "--no-deps", "-q", wheel], capture_output=True,
                          text=True, timeout=600)
    assert inst.returncode == 0, inst.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = lambda *a: subprocess.run([env_dir / "bin" / "tfgen", *map(str, a)], capture_output=True,
                                    text=True, timeout=300, cwd=elsewhere)
    version = run("--version")
    assert version.returncode == 0 and version.stdout.startswith("tfgen ")
    where = subprocess.run([py, "-c", "from codegen.resources import resource_dir as r; "
                                      "print(r('boards')); print(r('templates')); print(r('firmware'))"],
                           capture_output=True, text=True, cwd=elsewhere)
    for line in where.stdout.split():
        assert Path(line).is_relative_to(env_dir), line          # not the checkout's copy
    listed = run("boards")
    assert listed.returncode == 0 and listed.stdout.splitlines()[1].startswith("esp32 ")
    inspected = run("inspect", "--no-arena", model("hello_world_int8"))
    assert inspected.returncode == 0, inspected.stderr
    assert "AddFullyConnected" in inspected.stdout
