"""Shared fixtures: where the real models are, and how to run the CLI as a user does."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import needs
from needs import lacking

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = Path(os.environ.get("TFGEN_SHARED_MODELS", REPO.parent / "shared" / "models"))

MODELS = {
    "ad01_int8": SHARED_MODELS / "mlperf_tiny" / "ad01_int8.tflite",
    "kws_ref_model": SHARED_MODELS / "mlperf_tiny" / "kws_ref_model.tflite",
    "hello_world_int8": SHARED_MODELS / "tflm_examples" / "hello_world_int8.tflite",
    "hello_world_float": SHARED_MODELS / "tflm_examples" / "hello_world_float.tflite",
    "person_detect": SHARED_MODELS / "tflm_examples" / "person_detect.tflite",
    "ad01_h5": SHARED_MODELS / "mlperf_tiny" / "ad01.h5",
    "keyword_scrambled": SHARED_MODELS / "tflm_examples" / "keyword_scrambled.tflite",
    "micro_speech_lstm": SHARED_MODELS / "tflm_examples" / "micro_speech_lstm.tflite",
    "audio_preprocessor_int8": SHARED_MODELS / "tflm_examples" / "audio_preprocessor_int8.tflite",
    "seanet_conv0": SHARED_MODELS / "tflm_int16" / "seanet_conv0.tflite",
    "kws_saved_model": SHARED_MODELS / "mlperf_tiny" / "kws_ref_model",
    "mobilenet_v2": SHARED_MODELS / "tflm_examples" / "mobilenet_v2_quantized_1x3x224x224.tflite",
}


def model(name: str) -> Path:
    path = MODELS[name]
    if not path.exists():
        lacking(f"needs the shared test models: {path} is missing (set TFGEN_SHARED_MODELS)")
    return path


def run_tfgen(*args, timeout: float = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `tfgen ARGS` in a child process, as a user would."""
    return subprocess.run([sys.executable, "-m", "codegen", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or REPO)


@pytest.fixture(scope="session")
def tflm_root() -> Path:
    """The TFLM tree's root, found as `tfgen` finds it; session-scoped, so it is resolved before a test's
    own monkeypatching hides the tree and the cache."""
    return needs.tflm().root


@pytest.fixture(scope="session")
def cmsis_nn_root() -> Path:
    """The CMSIS-NN setup's root, found as `tfgen` finds it (session-scoped, like tflm_root)."""
    return needs.cmsis_nn().root


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


def pytest_terminal_summary(terminalreporter):
    """The count of skips, each of which says why above (-ra); under TFGEN_REQUIRE_FULL=1 a missing
    tree, tool or model fails instead of skipping."""
    skipped = len(terminalreporter.stats.get("skipped", []))
    mode = "TFGEN_REQUIRE_FULL=1" if needs.require_full() else "skips allowed (CI sets TFGEN_REQUIRE_FULL=1)"
    terminalreporter.write_line(f"tfgen: {skipped} test{'s' if skipped != 1 else ''} skipped; {mode}")
