"""Strings from outside (paths, file names, model metadata, a tree's version, a board file's
description) rendered for each language a generated project holds, in one place.

Every template writes such a string through one of these filters (``render`` registers them), so a
crafted file name can never become code, a section of platformio.ini or invalid JSON:

    c_comment     after ``//`` (or inside ``/* */``) in C/C++           naming.c_comment
    c_string      a C/C++ string literal                                naming.c_string_literal
    hash_comment  after ``#`` or ``;`` (INI, YAML, CMake, sdkconfig)    one printable line
    html_comment  inside ``<!-- -->``                                   one line, no ``--``
    md_code       a Markdown code span (the backticks added)            one line, fenced
    md_text       Markdown text (also in a table cell)                  one line, no HTML, links, cells
    json_string   a JSON string (the quotes added)                      json.dumps, ASCII only

``naming.one_line`` is the common part: line breaks become spaces; control and format characters (the
bidirectional overrides too) and lone surrogates (a file name that is not UTF-8) become visible
``\\xNN``/``\\uNNNN`` text, so every result is one line that encodes as UTF-8.
"""
from __future__ import annotations

import json
import re

from codegen.project.naming import c_comment, c_string_literal, one_line


def hash_comment(text: object) -> str:
    """After ``#`` or ``;``: one line. (A trailing backslash continues no comment in INI, YAML,
    CMake or sdkconfig; CMake's ``#[[`` bracket comments only open right after the ``#``, which the
    templates never leave bare.)"""
    return one_line(str(text))


def html_comment(text: object) -> str:
    """Inside ``<!-- -->``: one line, and no ``--`` (which may not appear in a comment, and ``-->``
    would end it)."""
    line = one_line(str(text))
    while "--" in line:
        line = line.replace("--", "- -")
    return line


def md_code(text: object) -> str:
    """A Markdown code span holding ``text`` as one line: a fence of more backticks than any run
    inside, padded with a space where the text starts or ends with a backtick."""
    line = one_line(str(text))
    longest = max((len(m) for m in re.findall(r"`+", line)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if line.startswith("`") or line.endswith("`") or not line else ""
    return f"{fence}{pad}{line}{pad}{fence}"


_MD_SPECIAL = re.compile(r"([\\`\[\]|])")


def md_text(text: object) -> str:
    """Markdown (and a table cell): one line; ``<`` and ``&`` as entities (no raw HTML), and the
    backslash, backticks, brackets (no links or images) and ``|`` (no new table cell) escaped."""
    line = one_line(str(text)).replace("&", "&amp;").replace("<", "&lt;")
    return _MD_SPECIAL.sub(r"\\\1", line)


def json_string(text: object) -> str:
    return json.dumps(str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"),
                      ensure_ascii=True)


FILTERS = {"c_comment": lambda t: c_comment(str(t)), "c_string": lambda t: c_string_literal(str(t)),
           "hash_comment": hash_comment, "html_comment": html_comment, "md_code": md_code,
           "md_text": md_text, "json_string": json_string}
