"""ESP-NN for ESP chips: the kernels an ESP32 actually runs, built off the chip to verify them.

esp-tflite-micro's CMakeLists.txt removes TFLM's reference sources of seven ops (KERNEL_FILES below),
compiles its ``kernels/esp_nn/*.cc`` wrappers instead and defines ``ESP_NN``; the wrappers call
Espressif's esp-nn library. With the default ``CONFIG_NN_OPTIMIZED``, esp-nn's ``esp_nn.h`` picks
hand-written assembly on ESP32-S3 and ESP32-P4 and its generic C (``*_ansi.c``/``*_opt.c``)
everywhere else (ESP32, the RISC-V ESP32-C3 and C6). The generic C is portable: tfgen compiles it with
the wrappers for the host and for the Cortex-M4F in QEMU and compares with the oracle. The assembly
cannot run here; for S3/P4 the generic path is verified and the report says which ops the chip runs
in assembly instead.

The esp-nn sources are found in this order: ``--esp-nn-dir``, ``TFGEN_ESP_NN_DIR``, tfgen's cache
(``esp-nn/<version>/``), else the pinned GitHub archive (or ``TFGEN_ESP_NN_URL``), accepted only when
the sha256 over the files tfgen uses matches (codegen/toolchain/fetch.py). In a project they go to
``lib/tflm/third_party/esp_nn/`` and the wrappers to ``lib/tflm/tensorflow/lite/micro/kernels/esp_nn/``;
the ESP-IDF build itself takes esp-nn as a component, pinned to the same version in
``src/idf_component.yml``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from codegen.errors import TfgenError
from codegen.toolchain import fetch

ENV_VAR = "TFGEN_ESP_NN_DIR"
PINNED_VERSION = "1.2.3"
COMPONENT = "espressif/esp-nn"
KERNELS_DIR = "tensorflow/lite/micro/kernels"
WRAPPERS_DIR = f"{KERNELS_DIR}/esp_nn"
# The reference kernel files esp-tflite-micro's CMakeLists.txt replaces by the esp_nn wrappers.
KERNEL_FILES = ("add.cc", "conv.cc", "depthwise_conv.cc", "fully_connected.cc", "mul.cc", "pooling.cc",
                "softmax.cc")
# The builtin ops of those files (what the chip runs in ESP-NN).
OPS = ("ADD", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MUL", "AVERAGE_POOL_2D", "MAX_POOL_2D", "SOFTMAX")
# esp-nn's CMakeLists.txt `c_srcs`: what every chip compiles (generic C; S3/P4 add assembly).
GENERIC_SOURCES = (
    "src/activation_functions/esp_nn_relu_ansi.c", "src/activation_functions/esp_nn_hard_swish_ansi.c",
    "src/common/esp_nn_mean_ansi.c", "src/basic_math/esp_nn_add_ansi.c", "src/basic_math/esp_nn_mul_ansi.c",
    "src/convolution/esp_nn_conv_ansi.c", "src/convolution/esp_nn_conv_opt.c",
    "src/convolution/esp_nn_depthwise_conv_ansi.c", "src/convolution/esp_nn_depthwise_conv_opt.c",
    "src/fully_connected/esp_nn_fully_connected_ansi.c", "src/softmax/esp_nn_softmax_ansi.c",
    "src/softmax/esp_nn_softmax_opt.c", "src/logistic/esp_nn_logistic_ansi.c",
    "src/pooling/esp_nn_avg_pool_ansi.c", "src/pooling/esp_nn_max_pool_ansi.c")
LIB_DEST = "third_party/esp_nn"                 # in lib/tflm/
SHIM_DIR = "tfgen_esp_shim"                     # in lib/tflm/: esp_timer.h for builds off the chip
INCLUDE_DIRS = (f"{LIB_DEST}/include", f"{LIB_DEST}/src/common", SHIM_DIR)
# Chips whose esp-nn path is assembly (esp_nn.h: ARCH_ESP32_S3 / ARCH_ESP32_P4), by ESP-IDF target.
ASSEMBLY_CHIPS = {"esp32s3": "ESP32-S3", "esp32p4": "ESP32-P4"}
# What esp-nn's assembly covers on those chips (esp_nn_esp32s3.h / esp_nn_esp32p4.h), by builtin op.
ASSEMBLY_OPS = {"esp32s3": ("ADD", "MUL", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D",
                            "MAX_POOL_2D", "SOFTMAX"),
                "esp32p4": ("ADD", "MUL", "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D",
                            "MAX_POOL_2D", "SOFTMAX")}
HINT = (f"pass --esp-nn-dir DIR or set {ENV_VAR}=DIR, DIR being an espressif/esp-nn v{PINNED_VERSION} checkout; "
        "or set TFGEN_ESP_NN_URL to its archive")
ARCHIVE = fetch.Pinned(f"esp-nn v{PINNED_VERSION}",
                       f"https://github.com/espressif/esp-nn/archive/refs/tags/v{PINNED_VERSION}.tar.gz",
                       "TFGEN_ESP_NN_URL", ("include", "src", "LICENSE", "Kconfig.projbuild", "idf_component.yml"),
                       "115779b551e5a3822e1a21962665ec709d7a3c285ef32d428f083ed768d34d20",
                       f"esp-nn/{PINNED_VERSION}", HINT)
DEFAULT_TIMEOUT_S = 15


@dataclass(frozen=True)
class EspNn:
    root: Path

    @property
    def version(self) -> str:
        return f"esp-nn {PINNED_VERSION}"

    def files(self) -> list[tuple[str, Path]]:
        """lib/tflm-relative destination -> source: the headers, the generic C and the licence."""
        out = [(f"{LIB_DEST}/{h.relative_to(self.root).as_posix()}", h)
               for top in ("include", "src") for h in sorted((self.root / top).rglob("*.h"))]
        out += [(f"{LIB_DEST}/{s}", self.root / s) for s in GENERIC_SOURCES]
        return out + [(f"{LIB_DEST}/LICENSE", self.root / "LICENSE")]


def defines(idf_target: str) -> tuple[str, ...]:
    """The flags of the ESP-IDF build that select esp-nn's code: ESP_NN for the wrappers,
    CONFIG_NN_OPTIMIZED (the Kconfig default) and the chip, except where the chip's path is assembly:
    there the generic C is verified (the same functions, esp_nn_generic_opt.h)."""
    chip = () if idf_target in ASSEMBLY_CHIPS else (f"-DCONFIG_IDF_TARGET_{idf_target.upper()}",)
    return ("-DESP_NN", "-DCONFIG_NN_OPTIMIZED", *chip)


def select(tree_root: Path, kernel_files: list[str]) -> tuple[list[str], list[tuple[str, Path]], list[str]]:
    """Split the reference selection as esp-tflite-micro's CMakeLists.txt does: (reference files kept,
    wrapper files to copy as (lib/tflm path, source), the wrapper names used)."""
    kept, copied, used = [], [], []
    for f in kernel_files:
        name = Path(f).name
        if f == f"{KERNELS_DIR}/{name}" and name in KERNEL_FILES:
            copied.append((f"{WRAPPERS_DIR}/{name}", Path(tree_root) / WRAPPERS_DIR / name))
            used.append(name)
        else:
            kept.append(f)
    return kept, copied, used


def resolve(option: Path | None = None, download: bool = True,
            timeout: float = fetch.DOWNLOAD_TIMEOUT_S) -> EspNn:
    chosen = option or (Path(os.environ[ENV_VAR]) if os.environ.get(ENV_VAR) else None)
    if chosen is not None:
        return open_dir(chosen)
    if fetch.cached(ARCHIVE) is None:
        if not download:
            raise TfgenError("no esp-nn sources: none were given and none are cached", HINT)
        fetch.download(ARCHIVE, timeout=timeout)
    return open_dir(ARCHIVE.dir)


def choose(option: Path | None = None, required: bool = False) -> tuple[EspNn | None, str | None]:
    """The esp-nn sources for an ESP board's off-chip builds, and a note when they are not to be had
    (offline): its `sim`/`qemu` environments then use TFLM's reference kernels. ``required``
    (verify): that is an error instead, since the board's own kernels are what verify is for."""
    try:
        return resolve(option, timeout=fetch.DOWNLOAD_TIMEOUT_S if required else DEFAULT_TIMEOUT_S), None
    except TfgenError as exc:
        if required:
            raise
        return None, (f"esp-nn not available ({exc.message}), so the `sim`/`qemu` environments use TFLM's "
                      f"reference kernels, not the ESP-NN kernels the chip runs; set {ENV_VAR}")


def open_dir(root: Path) -> EspNn:
    root = Path(root).expanduser().resolve()
    if not (root / "include" / "esp_nn.h").is_file() or not all((root / s).is_file() for s in GENERIC_SOURCES):
        raise TfgenError(f"{root}: not an esp-nn v{PINNED_VERSION} tree (no include/esp_nn.h or its generic C)",
                         HINT)
    return EspNn(root)


def device_notes(chip: str, optimized: tuple[str, ...]) -> tuple[str, ...]:
    """What a verify off the chip does not show: on S3/P4 the chip runs esp-nn's assembly for these ops."""
    if chip not in ASSEMBLY_CHIPS:
        return ()
    asm = [op for op in optimized if op in ASSEMBLY_OPS[chip]]
    if not asm:
        return ()
    return (f"the {ASSEMBLY_CHIPS[chip]} runs esp-nn's assembly for {', '.join(asm)}, which cannot run here: "
            "its generic C, the same functions, was built and verified instead",)
