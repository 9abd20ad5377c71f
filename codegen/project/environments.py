"""The PlatformIO environments of a generated project, decided once (``plan`` calls ``environments``).

``platformio.ini``, the project's README and the `generate` report all list these; none of them works
the list out again. The `sim` and `qemu` environments take their flags from the board's target
(``targets``), the same flags tfgen's own builder compiles with.
"""
from __future__ import annotations

from dataclasses import dataclass

from codegen.project.boards import Board
from codegen.project.targets import BoardTarget
from codegen.toolchain import builder

STD = "-std=gnu++17"
UNFLAGS = ("build_unflags", "-std=gnu++11 -std=gnu++14")
# ststm32's GCC 12.3, which it uses for its Arduino core: without a framework it would pick GCC 7.2
# (2017), which tfgen has never built TFLM or CMSIS-NN with.
ARM_TOOLCHAIN = "platformio/toolchain-gccarmnoneeabi@~1.120301.0"
ESP_COMPONENT = "espressif/esp-tflite-micro"


@dataclass(frozen=True)
class Environment:
    name: str                            # [env:NAME]
    role: str                            # "board", "validate", "sim" or "qemu"
    purpose: str                         # "builds for the board", for the list of environments
    comment: tuple[str, ...]             # comment lines under [env:NAME]
    options: tuple[tuple[str, str], ...]  # `key = value` lines before build_flags
    build_flags: tuple[str, ...]
    after: tuple[tuple[str, str], ...] = ()   # `key = value` lines after build_flags


def environments(kind: str, emulated: BoardTarget | None, with_tflm: bool, defines: tuple[str, ...],
                 include_dirs: tuple[str, ...], board: Board) -> tuple[Environment, ...]:
    """The board's own environment (ESP-IDF and Arduino boards), then `sim` and `qemu` where the
    project carries TFLM's sources (and, for `qemu`, there is an ``emulated`` board to run it on:
    ``targets.emulated``)."""
    extra = (*defines, *(f"-I {d}" for d in include_dirs))
    envs = []
    if kind in ("espidf", "arduino"):
        envs.append(_board_env(kind, board, extra))
        envs.append(_validate_env(envs[-1]))
    if with_tflm:
        envs.append(_sim_env(extra))
        if emulated is not None:
            envs.append(_qemu_env(emulated, extra))
    return tuple(envs)


def default_env(kind: str, envs: tuple[Environment, ...]) -> str:
    wanted = {"host": "sim", "baremetal": "qemu"}.get(kind, "board")
    return next((e.name for e in envs if e.role == wanted or e.name == wanted), envs[0].name if envs else "")


def _board_env(kind: str, board: Board, extra: tuple[str, ...]) -> Environment:
    pio = board.platformio
    common = (("platform", pio.platform), ("board", pio.board))
    if kind == "espidf":
        return Environment(board.name, "board", "builds for the board",
                           (f"TFLM comes as the {ESP_COMPONENT} ESP-IDF component (src/idf_component.yml), "
                            "with ESP-NN.",),
                           (*common, ("framework", "espidf"), ("monitor_speed", str(MONITOR_SPEED)),
                            ("lib_ignore", "tflm")), ())
    return Environment(board.name, "board", "builds for the board", (),
                       (*common, ("framework", pio.framework), ("monitor_speed", str(MONITOR_SPEED)),
                        ("build_src_filter", "+<*> -<qemu/>"), UNFLAGS),
                       (STD, builder.STATIC_MEMORY, *extra))


VALIDATE_FLAGS = ("-DTFGEN_VALIDATE", "-DTFGEN_PROFILE")


def _validate_env(board_env: Environment) -> Environment:
    """The board's image in validation mode (firmware/tfgen_validate.h), for `tfgen verify --port`."""
    return Environment("validate", "validate", "is the validation firmware `tfgen verify --port` talks to",
                       ("The board's image in validation mode: it answers `tfgen verify MODEL --board "
                        f"{board_env.name} --port PORT`",
                        "over the serial port with every output and the cycles of each inference and op "
                        "(firmware/tfgen_validate.h).",
                        "Not for deployment: it waits for the host's vectors instead of reading a sensor."),
                       (("extends", f"env:{board_env.name}"),),
                       (*board_env.build_flags, *VALIDATE_FLAGS))


def _sim_env(extra: tuple[str, ...]) -> Environment:
    return Environment("sim", "sim", "runs the model on this computer",
                       ("The host's own g++ (PlatformIO's native platform adds no flags of its own). "
                        "-fno-exceptions as TFLM is",
                        "built everywhere: its TF_LITE_STATIC_MEMORY classes make operator delete private, "
                        "which only compiles",
                        "without exceptions."),
                       (("platform", "native"), ("build_src_filter", "+<*> -<qemu/>"), UNFLAGS),
                       (STD, builder.HOST_OPT, builder.NO_EXCEPTIONS, builder.STATIC_MEMORY,
                        *builder.TEST_MODE_FLAGS, *extra))


def _qemu_env(target: BoardTarget, extra: tuple[str, ...]) -> Environment:
    board = target.board
    machine = board.qemu.machine
    return Environment(
        "qemu", "qemu", f"runs it on an emulated {target.core_name} ({target.machine_name})",
        (f"Bare metal on QEMU's {machine} ({target.core_name}); output through semihosting. The ststm32 "
         "platform only",
         "brings arm-none-eabi-gcc and its bare-metal flags; src/qemu/ has the start-up code, the linker "
         "script",
         "and the link flags (platformio_link.py: PlatformIO passes build_flags to the compiler only). "
         "GCC 12.3,",
         "which ststm32 uses for its Arduino core: without a framework it would pick GCC 7.2 (2017), which",
         "tfgen has never built TFLM or CMSIS-NN with."),
        (("platform", board.platformio.platform), ("platform_packages", ARM_TOOLCHAIN), ("board", f"tfgen_{board.name}"),
         ("board_build.ldscript", target.build.link_flags[target.build.link_flags.index("-T") + 1]),
         ("extra_scripts", "pre:src/qemu/platformio_link.py"), UNFLAGS),
        (STD, builder.EMBEDDED_OPT, builder.STATIC_MEMORY, *builder.TEST_MODE_FLAGS, *builder.SEMIHOSTING_FLAGS,
         *builder.systick_flags(board.cpu_mhz * 1_000_000), *extra),
        (("upload_protocol", "custom"), ("upload_command", " ".join(target.emulator) + " $SOURCE")))


MONITOR_SPEED = 115200
