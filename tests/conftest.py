"""Shared fixtures: where the real models are, and how to run the CLI as a user does."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = Path(os.environ.get("TFGEN_SHARED_MODELS", REPO.parent / "shared" / "models"))

MODELS = {
    "ad01_int8": SHARED_MODELS / "mlperf_tiny" / "ad01_int8.tflite",
    "kws_ref_model": SHARED_MODELS / "mlperf_tiny" / "kws_ref_model.tflite",
    "hello_world_int8": SHARED_MODELS / "tflm_examples" / "hello_world_int8.tflite",
    "hello_world_float": SHARED_MODELS / "tflm_examples" / "hello_world_float.tflite",
    "ad01_h5": SHARED_MODELS / "mlperf_tiny" / "ad01.h5",
    "kws_saved_model": SHARED_MODELS / "mlperf_tiny" / "kws_ref_model",
}


def model(name: str) -> Path:
    path = MODELS[name]
    if not path.exists():
        pytest.skip(f"needs the shared test models: {path} is missing (set TFGEN_SHARED_MODELS)")
    return path


def run_tfgen(*args, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `tfgen ARGS` in a child process, as a user would."""
    return subprocess.run([sys.executable, "-m", "codegen", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or REPO)


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """The bundled example: a small CNN trained on sklearn's 8x8 digits (no download).

    Returns the folder with model.keras, calib.npy (training images), x_test.npy and y_test.npy.
    """
    return _example("digits").train(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="session")
def sensor(tmp_path_factory):
    """The 1-D CNN example on a synthetic 3-axis accelerometer signal with sensor glitches.

    Returns the folder with model.keras, calib.npy, x_test.npy and y_test.npy.
    """
    return _example("sensor").train(tmp_path_factory.mktemp("sensor"))


def _example(name: str):
    """examples/NAME/make_model.py as a module."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(f"{name}_make_model", REPO / "examples" / name / "make_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
