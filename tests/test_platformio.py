"""The generated `sim` environment, built by real PlatformIO (`pio run -e sim`) offline, and its replay
compared byte for byte with the oracle's test vectors.

Offline, PlatformIO lacks two things, which the test supplies in a PlatformIO home of its own
(PLATFORMIO_CORE_DIR under tmp_path; ~/.platformio is not touched):
- its `tool-scons` package: seeded from the `scons` Python package (the version PlatformIO requires),
  laid out as PlatformIO's package is (scons.py next to SCons/);
- the `native` platform: a stub that does what platform-native's builder/main.py does for a build
  (the host's gcc/g++, PlatformIO's standard BuildProgram), installed with `pio pkg install -p`.
The generated platformio.ini is used as it is.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codegen import replay, vectors
from codegen.tflm_tree import ENV_VAR
from conftest import model, run_tfgen

pytestmark = pytest.mark.slow
VECTORS = 5

NATIVE_PLATFORM_JSON = {"name": "native", "title": "Native (tfgen test stub)", "version": "1.2.1",
                        "engines": {"platformio": "^6"}}
# platform-native 1.2.1's builder/main.py without its exec, size and compiledb targets.
NATIVE_BUILDER = '''\
from SCons.Script import Default, DefaultEnvironment

env = DefaultEnvironment()
for k in ("CC", "CXX"):
    if k in env:
        del env[k]
backup_cflags = env.get("CFLAGS", [])
backup_cxxflags = env.get("CXXFLAGS", [])
env.Tool("gcc")
env.Tool("g++")
env.Append(CFLAGS=backup_cflags, CXXFLAGS=backup_cxxflags)
Default([env.BuildProgram()])
'''


def _pio() -> str:
    path = Path(sys.executable).parent / "pio"
    if not path.exists():
        pytest.skip("needs PlatformIO (pip install -e '.[test]')")
    return str(path)


def _seed_tool_scons(core: Path) -> None:
    """PlatformIO's tool-scons package, from the installed scons: the version PlatformIO asks for."""
    SCons = pytest.importorskip("SCons", reason="needs scons (pip install -e '.[test]')")
    import semantic_version
    from platformio.dependencies import get_core_dependencies
    required = get_core_dependencies()["tool-scons"]
    major, minor, patch = (int(x) for x in SCons.__version__.split(".")[:3])
    version = f"{major}.{major}{minor:02d}{patch:02d}.0"          # tool-scons' scheme: 4.11.1 -> 4.41101.0
    if semantic_version.Version(version) not in semantic_version.SimpleSpec(required):
        pytest.skip(f"PlatformIO wants tool-scons {required}; the installed scons {SCons.__version__} is not it")
    pkg = core / "packages" / "tool-scons"
    shutil.copytree(Path(SCons.__file__).parent, pkg / "SCons", ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "scons.py").write_text("import sys\nfrom SCons.Script.Main import main\nsys.exit(main())\n")
    (pkg / "package.json").write_text(json.dumps({"name": "tool-scons", "version": version}))
    (pkg / ".piopm").write_text(json.dumps({"type": "tool", "name": "tool-scons", "version": version, "spec": {
        "owner": "platformio", "id": None, "name": "tool-scons", "requirements": None, "uri": None}}))


def test_the_sim_environment_builds_with_platformio_and_replays_the_vectors(tmp_path):
    if not os.environ.get(ENV_VAR):
        pytest.skip(f"needs a TFLM tree: set {ENV_VAR} to an esp-tflite-micro v1.3.8 checkout")
    if not shutil.which("g++"):
        pytest.skip("needs g++ for PlatformIO's native platform")
    pio = _pio()
    core = tmp_path / "core"
    _seed_tool_scons(core)
    env = {**os.environ, "PLATFORMIO_CORE_DIR": str(core), "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No",
           "PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL": "9999"}
    platform = tmp_path / "platform-native"
    (platform / "builder").mkdir(parents=True)
    (platform / "platform.json").write_text(json.dumps(NATIVE_PLATFORM_JSON))
    (platform / "builder" / "main.py").write_text(NATIVE_BUILDER)
    r = subprocess.run([pio, "pkg", "install", "-g", "-p", platform], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]

    tfgv, project = tmp_path / "hw.tfgv", tmp_path / "hw"
    r = run_tfgen("reference", model("hello_world_int8"), "--vectors", VECTORS, "-o", tfgv, "--no-crosscheck")
    assert r.returncode == 0, r.stderr
    r = run_tfgen("generate", model("hello_world_int8"), "--board", "host", "-o", project, "--vectors", tfgv)
    assert r.returncode == 0, r.stderr

    start = time.monotonic()
    r = subprocess.run([pio, "run", "-e", "sim", "-d", project], capture_output=True, text=True,
                       timeout=1800, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    print(f"\npio run -e sim: {time.monotonic() - start:.1f} s")
    run = subprocess.run([project / ".pio" / "build" / "sim" / "program"], capture_output=True, text=True,
                         timeout=120)
    log, vs = replay.parse(run.stdout), vectors.read(tfgv)
    assert (run.returncode, log.result, log.errors) == (0, "pass", ()), run.stdout + run.stderr
    comparison = replay.compare(vs, log)
    assert comparison.ok and comparison.bytes_compared == VECTORS * vs.outputs[0].nbytes
    expected = {(v, o): vs.output_data[o][v].tobytes() for v in range(vs.count) for o in range(len(vs.outputs))}
    assert log.outputs == expected
