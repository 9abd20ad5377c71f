"""naming: identifiers, model symbol names, string literals and comments — from tables of awkward
names, then compiled as C11, C2x, C++17 and C++20 with warnings as errors and run."""
from __future__ import annotations

import hashlib
import re
import shlex
import subprocess
from pathlib import Path

import pytest

import needs

from codegen.project.naming import (AVOIDED_NAMES, C_KEYWORDS, CXX_KEYWORDS, MAX_IDENTIFIER_LEN,
                            c_comment, c_identifier, c_string_bytes, c_string_literal,
                            model_symbol_names)

NON_UTF8_FILE_NAME = b"caf\xe9 \xff\xfe.tflite".decode("utf-8", "surrogateescape")   # os.fsdecode
ALL_BYTES = bytes(range(256)).decode("utf-8", "surrogateescape")

# Names a user might hand us: file names, stems, descriptions, and names that collide with C.
AWKWARD = [
    "hello_world_int8", "kws_ref_model", "my-model (v2).tflite", "my-model (v2)", "2nd_model", "9",
    "0x1F", "ünïcödé", "café-crème", "Straße", "ﬁle²", "模型", "модель_v2", "emoji 🙂 model", "",
    "___", "-", ".tflite", "a__b", "a-_-b", "trailing_", "_leading", "__init__", "_Bool",
    "_Private", "__", "$dollar", "@at", "\\", "\\\\\\", "?", "??=trigraph??/", "*/ comment /*",
    "// slash", "/*", "*/", "with space", "tab\there", "new\nline", "cr\r\nlf", "quote\"d",
    "single'quote", "back\\slash", "ends with backslash\\", "ends with backslash and space\\  ",
    "\u202eevil\u202c", "unpaired \u2067override", "zero\u200bwidth", "null\x00byte", "bell\x07",
    "del\x7f", NON_UTF8_FILE_NAME, "lone \ud800 surrogate", "../../etc/passwd", "C:\\models\\kws.tflite",
    "Model.INT8.tflite", "model.tflite.bak", "MobileNetV2", "KWSModel", "conv2D", "UPPER_CASE", "x", "X",
    "int", "class", "INT", "Class", "main", "errno", "assert", "int8_t", "size_t", "uint32_t",
    "true", "false", "bool", "nullptr", "and", "not_eq", "xor", "co_await", "char8_t", "typeof",
    "import", "module", "final", "override", "complex", "noreturn", "alignas", "static_assert",
    "thread_local", "restrict", "register", "_Static_assert", "stdin", "offsetof", "va_list",
    "a" * 200, "b" * 200, "é" * 100, "1" * 100, "x" * 47, "x" * 48, "x" * 49,
    "é1234", "\xff0123", "?\\?\"'", ALL_BYTES,
]

IDENT_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")


def _sha8(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@pytest.mark.parametrize("text, expected", [
    ("hello_world_int8", "hello_world_int8"),
    ("my-model (v2).tflite", "my_model_v2_tflite"),
    ("my-model (v2)", "my_model_v2"),
    ("2nd_model", "m_2nd_model"),
    ("0x1F", "m_0x1f"),
    ("ünïcödé", "unicode"),
    ("café-crème", "cafe_creme"),
    ("Straße", "strasse"),
    ("ﬁle²", "file2"),
    ("zero\u200bwidth", "zero_width"),
    ("emoji🙂model", "emoji_model"),
    ("MobileNetV2", "mobile_net_v2"),
    ("KWSModel", "kws_model"),
    ("conv2D", "conv2d"),
    ("UPPER_CASE", "upper_case"),
    ("int", "m_int"),
    ("class", "m_class"),
    ("INT", "m_int"),
    ("_Bool", "m_bool"),
    ("main", "m_main"),
    ("errno", "m_errno"),
    ("int8_t", "m_int8_t"),
    ("__init__", "init"),
    ("a__b", "a_b"),
    ("a-_-b", "a_b"),
    ("C:\\models\\kws.tflite", "c_models_kws_tflite"),
    ("../../etc/passwd", "etc_passwd"),
    # nothing usable: m_ + the first 8 hex digits of sha256(text); stable across runs and versions
    ("", "m_e3b0c442"),
    ("___", "m_" + _sha8("___")),
    # letters without an ASCII spelling are dropped, and a hash keeps the names apart
    ("模型", "m_c98e118e"),
    ("модель_v2", "v2_" + _sha8("модель_v2")),
    ("x" * 48, "x" * 48),
    ("x" * 49, "x" * 39 + "_" + _sha8("x" * 49)),
])
def test_c_identifier(text, expected):
    assert c_identifier(text) == expected, f"input {text!r}"


@pytest.mark.parametrize("text", AWKWARD)
def test_c_identifier_is_always_valid(text):
    ident = c_identifier(text)
    assert IDENT_RE.fullmatch(ident), f"input {text!r} gave {ident!r}"
    assert len(ident) <= MAX_IDENTIFIER_LEN
    assert ident not in AVOIDED_NAMES and "__" not in ident and not ident.startswith("_")
    assert c_identifier(text) == ident                       # deterministic
    with_prefix = c_identifier(text, prefix="g_")
    assert with_prefix.startswith("g_") and IDENT_RE.fullmatch(with_prefix), with_prefix
    assert len(with_prefix) <= MAX_IDENTIFIER_LEN and "__" not in with_prefix
    short = c_identifier(text, max_len=16)
    assert IDENT_RE.fullmatch(short) and len(short) <= 16, short


def test_keyword_lists_are_complete():
    # spot checks from each standard's list: C11, C23, C++20 and its alternative tokens
    assert {"_Thread_local", "_Generic", "restrict", "inline"} <= C_KEYWORDS
    assert {"typeof", "constexpr", "nullptr", "_BitInt"} <= C_KEYWORDS
    assert {"co_await", "co_yield", "co_return", "consteval", "constinit", "concept", "requires",
            "char8_t", "xor_eq", "bitand", "compl", "reinterpret_cast", "export"} <= CXX_KEYWORDS
    # C11: 44; C23 adds 15. C++20: 81 keywords + 11 alternative tokens; plus 4 special identifiers
    assert len(C_KEYWORDS) == 44 + 15 and len(CXX_KEYWORDS) == 81 + 11 + 4


def test_different_long_names_stay_different():
    a = c_identifier("model_" + "a" * 100 + "_first")
    b = c_identifier("model_" + "a" * 100 + "_second")
    assert a != b and len(a) == len(b) == MAX_IDENTIFIER_LEN and a.startswith("model_aaa")
    assert c_identifier("模型") != c_identifier("モデル")


def test_prefix_is_always_applied_and_must_be_snake_case():
    assert c_identifier("model", prefix="g_") == "g_model"
    assert c_identifier("2nd", prefix="g_") == "g_2nd"
    assert c_identifier("t", prefix="in") == "m_int"               # prefix + body is re-checked
    for bad in ("G_", "_g", "2g", "g__", "g-", "g__x"):
        with pytest.raises(ValueError, match="prefix"):
            c_identifier("model", prefix=bad)
    with pytest.raises(ValueError, match="max_len"):
        c_identifier("model", max_len=8)


def test_model_symbol_names():
    names = model_symbol_names("my-model (v2)")
    assert names.model_name == "my-model (v2)"
    assert names.ident == "my_model_v2"
    assert names.data == "g_my_model_v2_model_data"
    assert names.data_len == "g_my_model_v2_model_data_len"
    assert names.header_file == "my_model_v2_model_data.h"
    assert names.source_file == "my_model_v2_model_data.cc"
    assert names.header_guard == "TFGEN_MY_MODEL_V2_MODEL_DATA_H_"
    assert names.namespace == "tfgen_my_model_v2"
    assert names.macro_prefix == "TFGEN_MY_MODEL_V2_"
    assert names.name_literal == '"my-model (v2)"'
    assert names.symbol("tensor_arena") == "g_my_model_v2_tensor_arena"
    assert names.macro("ARENA_SIZE") == "TFGEN_MY_MODEL_V2_ARENA_SIZE"
    for bad in ("Arena", "_arena", "arena_", "a__b", ""):
        with pytest.raises(ValueError):
            names.symbol(bad)
    for bad in ("arena", "_A", "A__B", ""):
        with pytest.raises(ValueError):
            names.macro(bad)
    with pytest.raises(AttributeError):
        names.ident = "x"                                       # frozen


@pytest.mark.parametrize("text", AWKWARD)
def test_model_symbol_names_are_valid(text):
    names = model_symbol_names(text)
    assert len(names.ident) <= 32
    for ident in (names.data, names.data_len, names.namespace, names.symbol("tensor_arena")):
        assert IDENT_RE.fullmatch(ident) and len(ident) <= 63, ident
    for macro in (names.header_guard, names.macro("ARENA_SIZE")):
        assert re.fullmatch(r"TFGEN_[A-Z0-9_]+", macro) and "__" not in macro, macro
    assert names.header_file == names.ident + "_model_data.h"
    assert names.source_file == names.ident + "_model_data.cc"


@pytest.mark.parametrize("text, expected", [
    ("model.tflite", '"model.tflite"'),
    ("my-model (v2)", '"my-model (v2)"'),
    ('say "hi"', r'"say \"hi\""'),
    ("back\\slash", r'"back\\slash"'),
    ("??=", r'"\?\?="'),
    ("a*/b/*c", r'"a\052/b/\052c"'),
    ("tab\tnew\nline\r", r'"tab\tnew\nline\r"'),
    ("\x00\x01\x1b\x7f", r'"\000\001\033\177"'),
    ("ü", r'"\303\274"'),
    ("é1234", r'"\303\2511234"'),         # octal escapes stop after 3 digits: no swallowing
    (NON_UTF8_FILE_NAME, r'"caf\351 \377\376.tflite"'),
    ("", '""'),
])
def test_c_string_literal(text, expected):
    assert c_string_literal(text) == expected


@pytest.mark.parametrize("text", AWKWARD)
def test_c_string_literal_is_plain_ascii_and_comment_safe(text):
    literal = c_string_literal(text)
    assert re.fullmatch(r'"[\x20-\x7e]*"', literal), literal
    for bad in ("*/", "/*", "??", "\\x"):
        assert bad not in literal, f"{bad!r} in {literal!r}"


def test_c_string_bytes():
    assert c_string_bytes("ü") == b"\xc3\xbc"
    assert c_string_bytes(ALL_BYTES) == bytes(range(256))
    assert c_string_bytes(NON_UTF8_FILE_NAME) == b"caf\xe9 \xff\xfe.tflite"
    assert c_string_bytes("\ud800") == b"\xed\xa0\x80"


@pytest.mark.parametrize("text, expected", [
    ("plain text", "plain text"),
    ("a */ b", "a * / b"),
    ("a /* b", "a / * b"),
    ("*/*/", "* / * /"),
    ("line one\nline two\r\n", "line one line two"),
    ("ends with \\", "ends with \\x5c"),
    ("ends with \\  \n", "ends with \\x5c"),
    ("trigraph ??/", "trigraph ? ?/"),
    ("???", "? ? ?"),
    ("bidi \u202eevil\u202c", "bidi \\u202eevil\\u202c"),
    ("nul\x00 esc\x1b", "nul\\x00 esc\\x1b"),
    (NON_UTF8_FILE_NAME, "caf\\xe9 \\xff\\xfe.tflite"),
    ("ünïcödé ✓", "ünïcödé ✓"),
    ("  padded  ", "padded"),
])
def test_c_comment(text, expected):
    assert c_comment(text) == expected


@pytest.mark.parametrize("text", AWKWARD)
def test_c_comment_is_one_safe_line(text):
    comment = c_comment(text)
    comment.encode("utf-8")                                    # no lone surrogates
    assert comment == comment.strip()
    for bad in ("*/", "/*", "??"):
        assert bad not in comment, f"{bad!r} in {comment!r}"
    assert not comment.endswith("\\")
    assert len(comment.splitlines()) <= 1
    assert not any(ch in comment for ch in "\t\v\f\x85\u2028\u2029\u202e\u2066")


# --- compile and run ---------------------------------------------------------------------------

C_ONLY_HEADERS = ("stdalign.h", "stdnoreturn.h", "complex.h", "threads.h")
HEADERS = ("assert.h", "errno.h", "iso646.h", "math.h", "setjmp.h", "signal.h", "stdarg.h",
           "stdbool.h", "stddef.h", "stdint.h", "stdio.h", "stdlib.h", "string.h", "time.h",
           "wchar.h")


def _program(texts: list[str]) -> str:
    """A C/C++ program that declares every identifier (global, local, member), has every comment in
    both comment styles, and writes each string literal as `<length>\\n<bytes>\\n`."""
    idents = sorted({f(t) for t in texts for f in (c_identifier,
                                                   lambda t: c_identifier(t, prefix="g_"),
                                                   lambda t: c_identifier(t, max_len=16))})
    models = [model_symbol_names(t) for t in texts]
    model_globals = sorted({n for m in models
                            for n in (m.data, m.data_len, m.symbol("tensor_arena"))})
    lines = [f"#include <{h}>" for h in HEADERS]
    lines += ["#ifndef __cplusplus"] + [f"#include <{h}>" for h in C_ONLY_HEADERS] + ["#endif"]
    lines += [f"int {ident} = {i};" for i, ident in enumerate(idents)]
    lines += [f"const unsigned char {name}[] = {{{i % 256}}};" for i, name in enumerate(model_globals)]
    lines += [f"#define {m} 1" for m in sorted({m.header_guard for m in models}
                                                | {m.macro('ARENA_SIZE') for m in models})]
    lines += ["#ifdef __cplusplus"]
    lines += [f"namespace {ns} {{ int n = 0; }}" for ns in sorted({m.namespace for m in models})]
    lines += ["#endif"]
    lines += ["struct members {"] + [f"    int {ident};" for ident in idents] + ["};"]
    for i, text in enumerate(texts):
        # a swallowed line (comment continued by a trailing backslash) fails as undeclared
        lines += [f"/* {c_comment(text)} */", f"// {c_comment(text)}", f"int after_comment_{i} = 1;"]
    lines += ["static const char *const strings[] = {"]
    lines += [f"    {c_string_literal(t)}," for t in texts] + ["};"]
    lines += ["static const size_t lengths[] = {"]
    lines += [f"    sizeof({c_string_literal(t)}) - 1," for t in texts] + ["};"]
    lines += ["int main(void) {", "    long sum = 0;", "    struct members m;",
              "    memset(&m, 0, sizeof m);"]
    lines += [f"    {{ int {ident} = m.{ident}; sum += {ident}; }}" for ident in idents]
    lines += [f"    sum += after_comment_{i};" for i in range(len(texts))]
    lines += ["    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; ++i) {",
              '        printf("%zu\\n", lengths[i]);',
              "        fwrite(strings[i], 1, lengths[i], stdout);",
              '        printf("\\n");',
              "    }",
              '    printf("%ld\\n", sum);',
              "    return 0;",
              "}"]
    return "\n".join(lines) + "\n"


def _parse_output(out: bytes) -> tuple[list[bytes], int]:
    strings, pos = [], 0
    while True:
        end = out.index(b"\n", pos)
        number = int(out[pos:end])
        pos = end + 1
        if pos == len(out):
            return strings, number                              # the last number is the sum
        strings.append(out[pos:pos + number])
        assert out[pos + number:pos + number + 1] == b"\n"
        pos += number + 1


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, timeout=120, **kwargs)
    if result.returncode != 0:
        pytest.fail(f"command: {shlex.join(cmd)}\nexit status {result.returncode}\n"
                    f"{result.stderr.decode(errors='replace')[-4000:]}")
    return result


@pytest.mark.parametrize("compiler, std", [
    ("gcc", "c11"), ("gcc", "c2x"), ("g++", "c++17"), ("g++", "c++20"),
])
def test_names_compile_and_strings_round_trip(tmp_path: Path, compiler, std):
    needs.tools(compiler)
    texts = AWKWARD
    source = tmp_path / ("names.cc" if "+" in compiler else "names.c")
    source.write_text(_program(texts), encoding="utf-8")
    exe = tmp_path / "names"
    _run([compiler, f"-std={std}", "-Wall", "-Wextra", "-Werror", "-pedantic", "-o", str(exe),
          str(source)])
    got, total = _parse_output(_run([str(exe)]).stdout)
    assert len(got) == len(texts)
    for text, printed in zip(texts, got):
        assert printed == c_string_bytes(text), (f"input {text!r}\nliteral {c_string_literal(text)}"
                                                 f"\nexpected {c_string_bytes(text)!r}\ngot {printed!r}")
    assert total == len(texts)                                 # every after_comment_i line survived
