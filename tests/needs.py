"""What a test needs that a machine may lack, found the way a user's run finds it.

A TFLM tree and a CMSIS-NN setup are resolved as `tfgen` resolves them (the option's variable, the
cache, else the pinned download, which `TFGEN_TFLM_URL` and the CMSIS-NN URL variables can point at a
local archive); a tool is looked up on PATH. When one is missing the test skips and says why, except
under ``TFGEN_REQUIRE_FULL=1`` (CI sets it where it has everything a Linux x86-64 machine can have),
where a missing need fails the test: there, a skip would hide firmware that was never built.
"""
from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

import pytest

from codegen.toolchain import cmsis_nn as _cmsis_nn, esp_nn as _esp_nn, tflm_tree as _tflm_tree
from codegen.errors import TfgenError

REQUIRE_FULL_ENV = "TFGEN_REQUIRE_FULL"
STSTM32_ENV = "TFGEN_PIO_STSTM32_DIR"
DEBIAN = {"arm-none-eabi-gcc": "gcc-arm-none-eabi", "arm-none-eabi-g++": "gcc-arm-none-eabi",
          "arm-none-eabi-nm": "binutils-arm-none-eabi", "qemu-system-arm": "qemu-system-arm",
          "g++": "g++", "gcc": "gcc"}


def require_full() -> bool:
    return os.environ.get(REQUIRE_FULL_ENV) == "1"


def lacking(reason: str) -> NoReturn:
    """Skip, saying ``reason``; under TFGEN_REQUIRE_FULL=1, fail instead."""
    if require_full():
        pytest.fail(f"{REQUIRE_FULL_ENV}=1, yet this test would skip: {reason}", pytrace=False)
    pytest.skip(reason)


@lru_cache(maxsize=None)
def _resolve(what: str, key: tuple) -> tuple[object | None, str]:
    try:
        resolve = {"tflm": _tflm_tree.resolve, "cmsis": _cmsis_nn.resolve, "esp-nn": _esp_nn.resolve}[what]
        return resolve(), ""
    except TfgenError as exc:
        return None, exc.message + (f" (try: {exc.hint})" if exc.hint else "")


def _key() -> tuple:
    """What resolving depends on, so that a test which changes it resolves again."""
    names = (_tflm_tree.ENV_VAR, _cmsis_nn.ENV_VAR, _esp_nn.ENV_VAR, "TFGEN_CACHE_DIR", "TFGEN_TFLM_URL",
             "TFGEN_CMSIS_NN_TFLM_URL", "TFGEN_CMSIS_NN_URL", "TFGEN_ESP_NN_URL")
    return tuple(os.environ.get(n) for n in names)


def tflm() -> _tflm_tree.TflmTree:
    """The TFLM tree a user's `tfgen build` would use here (downloading it once if need be)."""
    tree, why = _resolve("tflm", _key())
    if tree is None:
        lacking(f"needs a TFLM tree, and tfgen found none: {why}")
    return tree


def cmsis_nn() -> _cmsis_nn.CmsisNn:
    """The CMSIS-NN setup a user's Cortex-M build would use here (downloading it once if need be)."""
    setup, why = _resolve("cmsis", _key())
    if setup is None:
        lacking(f"needs a CMSIS-NN setup, and tfgen found none: {why}")
    return setup


def esp_nn() -> _esp_nn.EspNn:
    """The esp-nn sources an ESP board's builds off the chip use here (downloading them once if need be)."""
    found, why = _resolve("esp-nn", _key())
    if found is None:
        lacking(f"needs the esp-nn sources, and tfgen found none: {why}")
    return found


def cmsis_nn_if_any() -> _cmsis_nn.CmsisNn | None:
    """The CMSIS-NN setup, or None where there is none (under TFGEN_REQUIRE_FULL=1 it must be there)."""
    setup, _ = _resolve("cmsis", _key())
    return setup if setup is not None or not require_full() else cmsis_nn()


def tools(*names: str) -> None:
    for name in names:
        if shutil.which(name) is None:
            lacking(f"needs {name} (Debian package {DEBIAN.get(name, name)}; bash scripts/setup.sh as root "
                    "installs it)")


def cortex_m() -> _tflm_tree.TflmTree:
    """A TFLM tree, the Arm cross compiler and QEMU: what a verify on mps2_an386 needs."""
    tools("arm-none-eabi-gcc", "arm-none-eabi-g++", "qemu-system-arm")
    return tflm()


def ststm32() -> Path:
    """An unpacked platform-ststm32 v19.6.0 (PlatformIO would download it from GitHub)."""
    folder = os.environ.get(STSTM32_ENV)
    if not folder or not (Path(folder) / "platform.json").is_file():
        lacking(f"needs an unpacked platform-ststm32 (v19.6.0) in {STSTM32_ENV}: PlatformIO would download it "
                "from GitHub (.ci/run unpacks ../shared/third_party/platform-ststm32-19.6.0.tar.gz)")
    return Path(folder)
