"""Format the model's bytes as C++ source: the one place the flatbuffer array is written.

`model_source` returns the text of ``<id>_model_data.h`` and ``<id>_model_data.cc``; templates only
place them. The output depends on nothing but the arguments (no dates, no paths), so generating
twice gives byte-identical files.

Linkage: TFLM is C++, so the definitions live in a ``.cc`` file. The header wraps its declarations
in ``extern "C"`` (under ``#ifdef __cplusplus``), so the same header also serves C code, the symbols
carry their plain, unmangled names on every compiler, and the ``.cc`` includes the header first,
which gives its ``const`` definitions external linkage (a namespace-scope ``const`` in C++ is
otherwise internal).

Placement: the array is ``const`` with a constant initializer, so it lands in ``.rodata`` (flash on a
microcontroller, never copied to RAM), and ``alignas(16)`` because TFLM reads the flatbuffer in place
and its tensors' data must be aligned.
"""
from __future__ import annotations

import hashlib

from codegen.errors import TfgenError
from codegen.project.naming import ModelNames, c_comment

_HEX = tuple(f"0x{b:02x}" for b in range(256))
_INDENT = "    "


def byte_array(data: bytes, *, per_line: int = 12) -> str:
    """The initializer body for ``data``: lines of ``0x1c, 0x00, ...``, each byte followed by a comma.

    Lines are indented by four spaces and joined by newlines, with no newline after the last
    (empty ``data`` gives ``""``).
    """
    if per_line < 1:
        raise ValueError(f"per_line must be at least 1, not {per_line}")
    return "\n".join(_INDENT + " ".join(_HEX[b] + "," for b in data[i:i + per_line])
                     for i in range(0, len(data), per_line))


def comment_block(banner: str) -> str:
    """``banner`` as ``//`` comment lines, each line made safe by `c_comment`."""
    return "\n".join(f"// {c_comment(line)}".rstrip() for line in banner.splitlines())


def model_source(names: ModelNames, data: bytes, banner: str) -> tuple[str, str]:
    """The header and source text that define the model as ``names.data`` and ``names.data_len``.

    ``banner`` (tfgen version, source file name and sha256, ...) opens both files as ``//`` lines.
    """
    if not data:
        raise TfgenError(f"model {names.model_name!r} has no bytes to embed",
                         "pass the .tflite file's contents; the file is empty")
    what = f"The .tflite flatbuffer of model {names.model_name!r}"
    return blob_source(names.data, names.data_len, names.header_file, names.header_guard, data, banner,
                       what, "TFLM reads it in place")


def blob_source(symbol: str, symbol_len: str, header_file: str, header_guard: str, data: bytes,
                banner: str, what: str, why: str) -> tuple[str, str]:
    """Header and source defining ``symbol`` (16-byte aligned const bytes) and ``symbol_len``.

    ``what`` describes the bytes and ``why`` says who reads them, in the comment above the array.
    """
    if len(data) > 0xFFFFFFFF:
        raise TfgenError(f"{what} is {len(data)} bytes; the array length must fit in an unsigned int (4 GiB)",
                         "use a smaller model or fewer test vectors")
    size = len(data)
    digest = hashlib.sha256(data).hexdigest()
    about = f"// {c_comment(f'{what}: {size} bytes,')}\n// sha256 {digest}.\n"
    top = comment_block(banner) + "\n\n" if banner.strip() else ""
    header = (
        f"{top}"
        f"#ifndef {header_guard}\n"
        f"#define {header_guard}\n"
        "\n"
        "#ifdef __cplusplus\n"
        'extern "C" {\n'
        "#endif\n"
        "\n"
        f"{about}"
        f"// 16-byte aligned and const, so it stays in flash; {c_comment(why)}.\n"
        f"extern const unsigned char {symbol}[];\n"
        f"extern const unsigned int {symbol_len};\n"
        "\n"
        "#ifdef __cplusplus\n"
        '}  // extern "C"\n'
        "#endif\n"
        "\n"
        f"#endif  // {header_guard}\n"
    )
    source = (
        f"{top}"
        f'#include "{header_file}"\n'
        "\n"
        f"{about}"
        f"alignas(16) const unsigned char {symbol}[] = {{\n"
        f"{byte_array(data)}\n"
        "};\n"
        "\n"
        f"const unsigned int {symbol_len} = {size};\n"
        "\n"
        f'static_assert(sizeof({symbol}) == {size}, "array and length disagree");\n'
    )
    return header, source
