"""AddressSanitizer and UBSan for tfgen's host builds (`tfgen verify --sanitize`).

A memory error or undefined behaviour in any kernel then stops the firmware, and ``sanitizer_report``
turns the sanitizer's report into one line that names the source and function.
"""
from __future__ import annotations

import dataclasses
import re

from codegen.toolchain.builder import HOST_OPT, Target

# --sanitize: AddressSanitizer and UBSan on every file (TFLM's kernels are what they are for), the
# host's optimization level kept so the numbers are the same build's. A memory error or any undefined
# behaviour but signed integer overflow ends the run with an exit status of its own. A signed overflow
# is reported and the run goes on (it wraps, as GCC compiles it here and on the chips), so verify still
# compares the outputs and reports the overflow beside them. Objects are cached apart (the flags are
# part of the key). Not shift-base: a left shift of a negative value, which fixed-point kernels do on
# purpose, is defined in C++20 and by GCC for C ("GCC does not use the latitude given in C99 and C11
# ... to treat certain aspects of signed '<<' as undefined", the GCC manual's Integers implementation).
SANITIZE_FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize=shift-base", "-fno-sanitize-recover=all",
                  "-fsanitize-recover=signed-integer-overflow", "-fno-omit-frame-pointer", "-g")
SANITIZER_ENV = {"ASAN_OPTIONS": "detect_leaks=0:exitcode=86:abort_on_error=0",
                 "UBSAN_OPTIONS": "halt_on_error=0:print_stacktrace=1:exitcode=87"}
_SANITIZER_ERROR = re.compile(r"(ERROR: AddressSanitizer: [\w-]+|runtime error: [^\n]+)")
_FRAME = re.compile(r"#\d+ 0x[0-9a-f]+ in (.+) (\S+?):(\d+)(?::\d+)?\s*$", re.M)
_UB_AT = re.compile(r"(\S*(?:lib/tflm|src)/\S+?):(\d+):\d+: runtime error")


def sanitized(target: Target) -> Target:
    """The host target built with the sanitizers."""
    return dataclasses.replace(target, name=f"{target.name}-sanitized",
                               arch_flags=(HOST_OPT, *target.arch_flags, *SANITIZE_FLAGS),
                               link_flags=(*target.link_flags, *SANITIZE_FLAGS),
                               output=target.output.replace("/host/", "/host-sanitized/"))


def findings(stderr: str) -> list[str]:
    """Each sanitizer report in a program's stderr as one line: what, and where (the first frame in
    a kernel, TFLM or tfgen source), so a memory error names the op that made it."""
    matches = list(_SANITIZER_ERROR.finditer(stderr))
    out = []
    for k, m in enumerate(matches):
        block = stderr[m.start():matches[k + 1].start() if k + 1 < len(matches) else len(stderr)]
        out.append(m.group(1).removeprefix("ERROR: ") + _where(block, stderr[max(0, m.start() - 300):m.end()]))
    return list(dict.fromkeys(out))


def _where(block: str, before: str) -> str:
    for fn, path, line in _FRAME.findall(block):
        if "lib/tflm/" in path or path.startswith("src/") or "/src/" in path:
            rel = ("lib/tflm/" + path.split("lib/tflm/")[-1]) if "lib/tflm/" in path else "src/" + path.split("src/")[-1]
            return f" in {rel}:{line} ({re.sub(r'[(].*$', '', fn).split()[-1]})"
    ub = _UB_AT.search(before)
    return f" in lib/tflm/{ub.group(1).split('lib/tflm/')[-1]}:{ub.group(2)}" if ub else ""


def sanitizer_report(stderr: str) -> str | None:
    """The first finding, as the reason a run stopped; None if the sanitizers reported nothing."""
    found = findings(stderr)
    return f"the sanitizers stopped the firmware: {found[0]}" if found else None
