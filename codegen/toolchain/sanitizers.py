"""AddressSanitizer and UBSan for tfgen's host builds (`tfgen verify --sanitize`).

A memory error or undefined behaviour in any kernel then stops the firmware, and ``sanitizer_report``
turns the sanitizer's report into one line that names the source and function.
"""
from __future__ import annotations

import dataclasses
import re

from codegen.toolchain.builder import HOST_OPT, Target

# --sanitize: AddressSanitizer and UBSan on every file (TFLM's kernels are what they are for), the
# host's optimization level kept so the numbers are the same build's; the first error ends the run
# with an exit status of its own. Objects are cached apart (the flags are part of the key). Not
# shift-base: a left shift of a negative value, which fixed-point kernels do on purpose, is defined in
# C++20 and by GCC for C ("GCC does not use the latitude given in C99 and C11 ... to treat certain
# aspects of signed '<<' as undefined", the GCC manual's Integers implementation).
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize=shift-base", "-fno-sanitize-recover=all",
                  "-fno-omit-frame-pointer", "-g")
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0:exitcode=86:abort_on_error=0",
                 "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=87"}
_SANITIZER_ERROR = re.compile(r"(ERROR: AddressSanitizer: [\w-]+|runtime error: [^\n]+)")
_FRAME = re.compile(r"#\d+ 0x[0-9a-f]+ in (.+) (\S+?):(\d+)(?::\d+)?\s*$", re.M)


def sanitized(target: Target) -> Target:
    """The host target built with the sanitizers."""
    return dataclasses.replace(target, name=f"{target.name}-sanitized",
                               arch_flags=(HOST_OPT, *target.arch_flags, *SANITIZE_FLAGS),
                               link_flags=(*target.link_flags, *SANITIZE_FLAGS),
                               output=target.output.replace("/host/", "/host-sanitized/"))


def sanitizer_report(stderr: str) -> str | None:
    """One line about the first sanitizer error in a program's stderr: what, and where (the first
    frame in a kernel, TFLM or tfgen source), so a memory error names the op that made it."""
    m = _SANITIZER_ERROR.search(stderr)
    if not m:
        return None
    where = ""
    for fn, path, line in _FRAME.findall(stderr[m.start():]):
        if "lib/tflm/" in path or path.startswith("src/") or "/src/" in path:
            rel = ("lib/tflm/" + path.split("lib/tflm/")[-1]) if "lib/tflm/" in path else "src/" + path.split("src/")[-1]
            where = f" in {rel}:{line} ({fn})"
            break
    if not where:
        ub = re.search(r"(\S*(?:lib/tflm|src)/\S+?):(\d+):\d+: runtime error", stderr)
        where = f" in lib/tflm/{ub.group(1).split('lib/tflm/')[-1]}:{ub.group(2)}" if ub else ""
    return f"the sanitizers stopped the firmware: {m.group(1).removeprefix('ERROR: ')}{where}"
