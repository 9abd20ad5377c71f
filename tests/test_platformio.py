"""Generated environments built by real PlatformIO offline, and their replay compared byte for byte with
the oracle's test vectors: `sim` (`pio run -e sim`, run on the host) and `qemu` (`pio run -e qemu`, the
firmware run in qemu-system-arm -M mps2-an386 as `tfgen verify` runs it).

Offline, PlatformIO lacks packages, which the tests supply in a PlatformIO home of their own
(PLATFORMIO_CORE_DIR under tmp_path; ~/.platformio is not touched):
- its `tool-scons` package: seeded from the `scons` Python package (the version PlatformIO requires),
  laid out as PlatformIO's package is (scons.py next to SCons/);
- the `native` platform: a stub that does what platform-native's builder/main.py does for a build
  (the host's gcc/g++, PlatformIO's standard BuildProgram), installed with `pio pkg install -p`;
- the `ststm32` platform: the real one, from an unpacked platform-ststm32 that TFGEN_PIO_STSTM32_DIR
  names (PlatformIO would download it from GitHub), installed with `pio pkg install -p`;
- its `toolchain-gccarmnoneeabi` package: seeded from the system's arm-none-eabi-gcc (symlinks in
  bin/), under the version the generated platformio.ini pins (the real package is another build of GCC).
The generated platformio.ini is used as it is.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import needs
from codegen.project import boards, targets
from codegen.run import replay, verify
from codegen.model import vectors
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
        needs.lacking("needs PlatformIO (pip install -e .)")
    return str(path)


def _seed_tool_scons(core: Path) -> None:
    """PlatformIO's tool-scons package, from the installed scons: the version PlatformIO asks for."""
    try:
        import SCons
    except ImportError:
        needs.lacking("needs scons (pip install -e '.[test]')")
    import semantic_version
    from platformio.dependencies import get_core_dependencies
    required = get_core_dependencies()["tool-scons"]
    major, minor, patch = (int(x) for x in SCons.__version__.split(".")[:3])
    version = f"{major}.{major}{minor:02d}{patch:02d}.0"          # tool-scons' scheme: 4.11.1 -> 4.41101.0
    if semantic_version.Version(version) not in semantic_version.SimpleSpec(required):
        needs.lacking(f"PlatformIO wants tool-scons {required}; the installed scons {SCons.__version__} is not it")
    pkg = core / "packages" / "tool-scons"
    shutil.copytree(Path(SCons.__file__).parent, pkg / "SCons", ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "scons.py").write_text("import sys\nfrom SCons.Script.Main import main\nsys.exit(main())\n")
    (pkg / "package.json").write_text(json.dumps({"name": "tool-scons", "version": version}))
    (pkg / ".piopm").write_text(json.dumps({"type": "tool", "name": "tool-scons", "version": version, "spec": {
        "owner": "platformio", "id": None, "name": "tool-scons", "requirements": None, "uri": None}}))


def _pio_home(root: Path) -> dict:
    """A PlatformIO home of its own under ``root`` with tool-scons seeded; the environment to run pio in."""
    core = root / "core"
    _seed_tool_scons(core)
    return {**os.environ, "PLATFORMIO_CORE_DIR": str(core), "PLATFORMIO_SETTING_ENABLE_TELEMETRY": "No",
            "PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL": "9999"}


def _install_platform(pio: str, env: dict, folder: Path) -> None:
    """`pio pkg install -p FOLDER`, without the platform's packages (each test seeds those it needs)."""
    r = subprocess.run([pio, "pkg", "install", "-g", "--skip-dependencies", "-p", folder], capture_output=True,
                       text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]


def _seed_toolchain_gccarmnoneeabi(env: dict, project: Path) -> None:
    """PlatformIO's toolchain-gccarmnoneeabi, from the system's arm-none-eabi-gcc, under the version the
    project's `qemu` environment pins (platform_packages), so PlatformIO finds it installed."""
    from platformio.package.meta import PackageSpec
    from platformio.project.config import ProjectConfig
    import semantic_version
    pinned = [PackageSpec(p) for p in ProjectConfig(project / "platformio.ini").get("env:qemu", "platform_packages")]
    spec = next(p for p in pinned if p.name == "toolchain-gccarmnoneeabi")
    version = re.search(r"\d+\.\d+\.\d+", str(spec.requirements)).group(0)
    assert semantic_version.Version(version) in spec.requirements, spec
    pkg = Path(env["PLATFORMIO_CORE_DIR"]) / "packages" / "toolchain-gccarmnoneeabi"
    if (pkg / "package.json").is_file() and json.loads((pkg / "package.json").read_text())["version"] == version:
        return
    (pkg / "bin").mkdir(parents=True)
    for tool in sorted(Path(shutil.which("arm-none-eabi-gcc")).parent.glob("arm-none-eabi-*")):
        (pkg / "bin" / tool.name).symlink_to(tool)
    (pkg / "package.json").write_text(json.dumps({"name": spec.name, "version": version}))
    (pkg / ".piopm").write_text(json.dumps({"type": "tool", "name": spec.name, "version": version, "spec": {
        "owner": spec.owner, "id": None, "name": spec.name, "requirements": None, "uri": None}}))


def _expected_outputs(vs: vectors.VectorSet) -> dict:
    return {(v, o): vs.output_data[o][v].tobytes() for v in range(vs.count) for o in range(len(vs.outputs))}


def test_the_sim_environment_builds_with_platformio_and_replays_the_vectors(tmp_path):
    needs.tflm()
    needs.tools("g++")
    pio = _pio()
    env = _pio_home(tmp_path)
    platform = tmp_path / "platform-native"
    (platform / "builder").mkdir(parents=True)
    (platform / "platform.json").write_text(json.dumps(NATIVE_PLATFORM_JSON))
    (platform / "builder" / "main.py").write_text(NATIVE_BUILDER)
    _install_platform(pio, env, platform)

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
    assert log.outputs == _expected_outputs(vs)


@pytest.fixture(scope="module")
def stm32_home(tmp_path_factory):
    """pio and its environment, with the ststm32 platform installed from TFGEN_PIO_STSTM32_DIR."""
    folder = needs.ststm32()
    needs.tools("arm-none-eabi-gcc", "qemu-system-arm")
    pio = _pio()
    env = _pio_home(tmp_path_factory.mktemp("pio-stm32"))
    _install_platform(pio, env, folder)
    return pio, env


@pytest.mark.parametrize("kernels", ["cmsis-nn", "reference"])
def test_the_qemu_environment_builds_with_platformio_and_replays_the_vectors_in_qemu(tmp_path, request, kernels):
    needs.tflm()
    if kernels == "cmsis-nn":
        needs.cmsis_nn()
    pio, env = request.getfixturevalue("stm32_home")
    tfgv, project = tmp_path / "hw.tfgv", tmp_path / "hw"
    r = run_tfgen("reference", model("hello_world_int8"), "--vectors", VECTORS, "-o", tfgv, "--no-crosscheck")
    assert r.returncode == 0, r.stderr
    r = run_tfgen("generate", model("hello_world_int8"), "--board", "mps2_an386", "-o", project, "--vectors", tfgv,
                  "--kernels", kernels)
    assert r.returncode == 0, r.stderr
    _seed_toolchain_gccarmnoneeabi(env, project)

    start = time.monotonic()
    r = subprocess.run([pio, "run", "-e", "qemu", "-d", project], capture_output=True, text=True,
                       timeout=1800, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    print(f"\npio run -e qemu ({kernels}): {time.monotonic() - start:.1f} s")
    build = project / ".pio" / "build" / "qemu"
    vs = vectors.read(tfgv)
    # In QEMU as `tfgen verify` runs firmware: the ELF, and firmware.bin, which `-t upload` gives QEMU.
    for image in (build / "firmware.elf", build / "firmware.bin"):
        run = verify.run_firmware(targets.for_board(boards.get_board("mps2_an386")), image)
        log = replay.parse(run.stdout)
        assert (run.returncode, log.result, log.errors) == (0, "pass", ()), run.stdout + run.stderr
        comparison = replay.compare(vs, log)
        assert comparison.ok and comparison.bytes_compared == VECTORS * vs.outputs[0].nbytes
        assert log.outputs == _expected_outputs(vs)
    assert (build / "firmware.bin").stat().st_size < 4 << 20      # one block from 0x0, within the code SSRAM
