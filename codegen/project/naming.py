"""Naming: the one owner of every C identifier and C string tfgen writes into generated source.

Everything a template places in C or C++ code that came from outside (a model's file name, its
description) passes through here first:

* `c_identifier` turns any text into a lowercase snake_case identifier that is valid in C11 and
  C++20, is no C11/C23/C++20 keyword, no reserved form (``_X...``, ``...__...``), none of the
  lowercase macro and type names of the standard C headers in `STANDARD_NAMES`, and is at most 48
  characters long.
* `model_symbol_names` derives every global name of one model (``g_<id>_model_data``, the header
  guard, ...) from that identifier, so all generated files agree on them.
* `c_string_literal` writes any text as a C string literal holding exactly its bytes.
* `c_comment` makes any text safe inside a ``/* ... */`` or ``//`` comment.

Identifiers are not unique by construction: ``my-model`` and ``my_model`` both become ``my_model``.
When sanitizing loses information that the result could not show otherwise (the name was cut to
length, had letters with no ASCII spelling, or left nothing usable) a short hash of the original
text is appended, so such names stay different and stable from run to run.

A bare identifier is safe as a local name, a parameter or a struct member. For anything at file
scope use the names from `model_symbol_names`, whose ``g_`` and ``TFGEN_`` prefixes keep them clear
of the C library's functions (``printf``, ``free``, ...), which this module does not list.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from types import MappingProxyType

MAX_IDENTIFIER_LEN = 48
MODEL_ID_MAX_LEN = 32          # leaves room for "g_" + id + "_model_data_len" within 49 characters
_HASH_LEN = 8                  # hex digits of sha256 appended when a name was cut or lost letters

# C11 (ISO/IEC 9899:2011 6.4.1) and the keywords C23 adds.
C_KEYWORDS = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if inline
    int long register restrict return short signed sizeof static struct switch typedef union unsigned
    void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary _Noreturn
    _Static_assert _Thread_local
    alignas alignof bool constexpr false nullptr static_assert thread_local true typeof typeof_unqual
    _BitInt _Decimal128 _Decimal32 _Decimal64
""".split())

# C++20 ([lex.key] and the alternative tokens of [lex.digraph]), plus the identifiers with special
# meaning (final, override, import, module) that are best not used as names either.
CXX_KEYWORDS = frozenset("""
    alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t
    char32_t class compl concept const consteval constexpr constinit const_cast continue co_await
    co_return co_yield decltype default delete do double dynamic_cast else enum explicit export
    extern false float for friend goto if inline int long mutable namespace new noexcept not not_eq
    nullptr operator or or_eq private protected public register reinterpret_cast requires return
    short signed sizeof static static_assert static_cast struct switch template this thread_local
    throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t while
    xor xor_eq
    final override import module
""".split())

# Lowercase object-like macros and types the standard C headers define (a variable named `errno`
# or `int8_t` does not compile once the header is included), and `main`.
STANDARD_NAMES = frozenset("""
    assert errno offsetof setjmp va_arg va_copy va_end va_start stdin stdout stderr complex
    imaginary noreturn math_errhandling main
    size_t ptrdiff_t max_align_t nullptr_t wchar_t wint_t char16_t char32_t mbstate_t
    int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t intptr_t uintptr_t intmax_t
    uintmax_t int_least8_t int_least16_t int_least32_t int_least64_t uint_least8_t uint_least16_t
    uint_least32_t uint_least64_t int_fast8_t int_fast16_t int_fast32_t int_fast64_t uint_fast8_t
    uint_fast16_t uint_fast32_t uint_fast64_t
    va_list jmp_buf fpos_t time_t clock_t div_t ldiv_t lldiv_t sig_atomic_t float_t double_t
    rsize_t errno_t
""".split())

AVOIDED_NAMES = C_KEYWORDS | CXX_KEYWORDS | STANDARD_NAMES

# Latin letters that Unicode decomposition does not reduce to ASCII.
_LATIN_SPELLINGS = MappingProxyType({
    ord("ß"): "ss", ord("ẞ"): "SS", ord("æ"): "ae", ord("Æ"): "AE", ord("œ"): "oe", ord("Œ"): "OE",
    ord("ø"): "o", ord("Ø"): "O", ord("ł"): "l", ord("Ł"): "L", ord("đ"): "d", ord("Đ"): "D",
    ord("þ"): "th", ord("Þ"): "TH", ord("ð"): "d", ord("Ð"): "D", ord("ı"): "i",
})

_PREFIX_RE = re.compile(r"[a-z](?:_?[a-z0-9])*_?")
_SUFFIX_RE = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
_MACRO_SUFFIX_RE = re.compile(r"[A-Z0-9]+(?:_[A-Z0-9]+)*")


def c_identifier(text: str, *, prefix: str = "", max_len: int = MAX_IDENTIFIER_LEN) -> str:
    """Return ``text`` as a lowercase snake_case C/C++ identifier (``[a-z][a-z0-9_]*``).

    * Accented Latin letters lose their accents (``ünïcödé`` -> ``unicode``), camelCase is split
      (``MobileNetV2`` -> ``mobile_net_v2``), and every other run of characters becomes one ``_``;
      there is no leading, trailing or double underscore.
    * ``prefix`` (lowercase, e.g. ``"g_"``) is always put in front. A name that would start with a
      digit, or is a keyword or another name in `AVOIDED_NAMES`, gets ``m_`` in front
      (``2nd_model`` -> ``m_2nd_model``, ``int`` -> ``m_int``); a prefix starts with a letter, so
      with one this happens only if prefix and name together spell such a name.
    * Names longer than ``max_len`` are cut and end in ``_`` plus 8 hex digits of the text's sha256;
      so do names that dropped non-Latin letters or digits, and ``m_<hash>`` stands in for a text
      with nothing usable (``""``, ``___``, ``模型``).
    """
    if prefix and not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"prefix {prefix!r} is not lowercase snake_case starting with a letter")
    if max_len < len(prefix) + _HASH_LEN + 3 or max_len < 16:
        raise ValueError(f"max_len {max_len} leaves no room for a name and its hash")
    body, lost = _snake_case(text)
    ident = prefix + body
    if ident[:1].isdigit():
        ident = "m_" + ident
    if ident in AVOIDED_NAMES:
        ident = "m_" + ident
    if lost or not body or len(ident) > max_len:
        head = ident[:max_len - _HASH_LEN - 1].rstrip("_")
        ident = f"{head or 'm'}_{_short_hash(text)}"
    return ident


def _snake_case(text: str) -> tuple[str, bool]:
    """ASCII snake_case words of ``text``, and whether letters or digits without ASCII form were lost."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LATIN_SPELLINGS))
    kept = "".join(ch for ch in decomposed if not unicodedata.category(ch).startswith("M"))
    lost = any(not ch.isascii() and ch.isalnum() for ch in kept)
    ascii_text = "".join(ch if ch.isascii() else " " for ch in kept)
    split = re.sub(r"([a-z])([A-Z])", r"\1_\2", ascii_text)
    split = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", split)
    return re.sub(r"[^a-z0-9]+", "_", split.lower()).strip("_"), lost


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_LEN]


@dataclass(frozen=True)
class ModelNames:
    """Every name generated code uses for one model; all derived from ``ident``.

    Plain strings, so ``dataclasses.asdict`` hands them straight to the templates.
    """

    model_name: str      # the name as given (typically the .tflite file's stem), for messages
    ident: str           # c_identifier(model_name): "hello_world_int8"
    data: str            # the flatbuffer array: "g_hello_world_int8_model_data"
    data_len: str        # its length in bytes: "g_hello_world_int8_model_data_len"
    header_file: str     # the file declaring both: "hello_world_int8_model_data.h"
    source_file: str     # the file defining both: "hello_world_int8_model_data.cc"
    header_guard: str    # "TFGEN_HELLO_WORLD_INT8_MODEL_DATA_H_"
    namespace: str       # C++ namespace for the generated wiring: "tfgen_hello_world_int8"
    macro_prefix: str    # for generated #defines: "TFGEN_HELLO_WORLD_INT8_"
    name_literal: str    # model_name as a C string literal: "\"hello_world_int8\""

    def symbol(self, what: str) -> str:
        """A further global for this model: ``symbol("tensor_arena")`` -> ``g_<id>_tensor_arena``."""
        if not _SUFFIX_RE.fullmatch(what):
            raise ValueError(f"symbol suffix {what!r} is not lowercase snake_case")
        return f"g_{self.ident}_{what}"

    def macro(self, what: str) -> str:
        """A further macro for this model: ``macro("ARENA_SIZE")`` -> ``TFGEN_<ID>_ARENA_SIZE``."""
        if not _MACRO_SUFFIX_RE.fullmatch(what):
            raise ValueError(f"macro suffix {what!r} is not UPPER_SNAKE_CASE")
        return self.macro_prefix + what


def model_symbol_names(model_name: str) -> ModelNames:
    """All C names for the model called ``model_name`` (pass the .tflite file's ``Path.stem``)."""
    ident = c_identifier(model_name, max_len=MODEL_ID_MAX_LEN)
    return ModelNames(
        model_name=model_name,
        ident=ident,
        data=f"g_{ident}_model_data",
        data_len=f"g_{ident}_model_data_len",
        header_file=f"{ident}_model_data.h",
        source_file=f"{ident}_model_data.cc",
        header_guard=f"TFGEN_{ident.upper()}_MODEL_DATA_H_",
        namespace=f"tfgen_{ident}",
        macro_prefix=f"TFGEN_{ident.upper()}_",
        name_literal=c_string_literal(model_name),
    )


def c_string_bytes(text: str) -> bytes:
    """The bytes `c_string_literal` stores for ``text``: its UTF-8 encoding.

    Surrogate escapes (``os.fsdecode`` of a file name that is not UTF-8) become the original bytes
    again; any other lone surrogate is encoded as its three UTF-8-style bytes.
    """
    out = bytearray()
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(code - 0xDC00)
        else:
            out += ch.encode("utf-8", "surrogatepass")
    return bytes(out)


_NAMED_ESCAPES = MappingProxyType({
    0x07: r"\a", 0x08: r"\b", 0x09: r"\t", 0x0A: r"\n", 0x0B: r"\v", 0x0C: r"\f", 0x0D: r"\r",
    0x22: r"\"", 0x5C: r"\\", 0x3F: r"\?",
})


def c_string_literal(text: str) -> str:
    """``text`` as a double-quoted C/C++ string literal holding exactly `c_string_bytes(text)`.

    The literal is printable ASCII only. Quote, backslash and ``?`` (no trigraphs) are escaped;
    control characters use ``\\n``-style escapes or 3-digit octal, as does every byte of non-ASCII
    text: an octal escape ends after three digits, so it cannot swallow a following digit the way
    ``\\x`` would. ``*`` is written as ``\\052``, so the literal holds no ``/*`` or ``*/`` and may
    itself be copied into a comment.
    """
    parts = []
    for byte in c_string_bytes(text):
        if byte in _NAMED_ESCAPES:
            parts.append(_NAMED_ESCAPES[byte])
        elif 0x20 <= byte < 0x7F and byte != 0x2A:
            parts.append(chr(byte))
        else:
            parts.append(f"\\{byte:03o}")
    return '"' + "".join(parts) + '"'


_LINE_BREAKS = frozenset("\n\r\t\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def one_line(text: str) -> str:
    """``text`` as one printable line: line breaks and tabs become spaces; other control and format
    characters (including the bidirectional overrides that ``-Wbidi-chars`` rejects) and lone
    surrogates become visible ``\\xNN``/``\\uNNNN`` text, so the result always encodes as UTF-8;
    surrounding whitespace is stripped."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in _LINE_BREAKS:
            out.append(" ")
        elif 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Cs"):
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out).strip()


def c_comment(text: str) -> str:
    """``text`` as one line that is safe inside ``/* ... */`` and after ``//``.

    `one_line`, then ``*/`` and ``/*`` get a space between their characters, ``??`` becomes ``? ?``
    (no trigraph), and a final backslash, which would continue a ``//`` comment onto the next line, is
    written as ``\\x5c``. Put spaces around it: ``/* {text} */``, ``// {text}``.
    """
    line = one_line(text)
    line = re.sub(r"\*(?=/)", "* ", line)
    line = re.sub(r"/(?=\*)", "/ ", line)
    line = re.sub(r"\?(?=\?)", "? ", line).strip()
    if line.endswith("\\"):
        line = line[:-1] + "\\x5c"
    return line
