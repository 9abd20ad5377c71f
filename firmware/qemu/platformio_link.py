# PlatformIO extra script of the `qemu` environment (platformio.ini: extra_scripts), run by PlatformIO's
# SCons, never compiled. PlatformIO puts build_flags and the board's extra_flags on the compile lines
# only (SCons' ParseFlags), so the link flags that tfgen's own builder uses (codegen/toolchain/builder.py,
# QEMU_M4F) are added here: the hard-float ABI, whose multilib the C library must come from; newlib-nano
# with semihosting (librdimon) for stdout and exit; and no start files, as src/qemu/startup.c is the
# start-up code. The platform's bare-metal defaults add -mcpu, -mthumb, --gc-sections and the libraries.
Import("env")  # noqa: F821 (SCons)

env.Append(LINKFLAGS=["-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "--specs=nano.specs", "--specs=rdimon.specs",
                      "-nostartfiles"])
