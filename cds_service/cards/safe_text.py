"""Text from the patient's record, made safe to quote on a card.

A card mixes two kinds of text. The words of a pack's `cards.yaml` and the Markdown the
renderer writes around them (the criteria table, bold criterion ids, code spans) are ours
and trusted. Everything read from the chart is not: drug, condition and substance names,
notes, ids, and the criteria's reasons, which quote them. A drug display such as
`[Brand](javascript:...)` or `<img src=x onerror=...>` must reach the prescriber as
those characters, never as a link, an image or HTML in the EHR.

Where a value goes decides what it needs:

- `plain(value)`: a card `summary`, a suggestion or link label, a coverage-information
  text. CDS Hooks shows these as plain text, not Markdown, so no Markdown escaping (a
  backslash would show); they still get the cleaning below, and a summary keeps its
  140-character limit because the renderer tries shorter wordings after filling values in
  (`render._fit`), and a quoted value longer than the summary itself is cut here first.
- `markdown(value)`: running text of a card `detail` (CommonMark, and the GitHub
  extensions EHRs use: tables, strikethrough, bare-URL autolinks). Each character that can
  start a Markdown construct gets a backslash, and only those, so ordinary clinical text
  stays byte for byte as it was:
  - anywhere: `\\` `` ` `` `*` `_` `~` (emphasis, code, strikethrough, escapes), `[` `]`
    (links, images, footnotes), `<` `&` (HTML, autolinks, entity references), `|` (table
    cells), `@` (e-mail autolinks), the `:` of `://` and the `.` of `www.` (bare-URL
    autolinks);
  - at its start, where a template might put it at the start of a line: `#` headings,
    `>` quotes, `-` / `+` list items, `1.` / `1)` ordered items, `=` / `-` underlines.
- `code(value)`: a record id inside a code span; backslashes do not work there, so the
  span's fence is made longer than any run of backticks in the value instead.

All three first clean the value: a lone surrogate (which no UTF-8 encoder accepts)
becomes U+FFFD; control characters, line and paragraph separators and every run of
whitespace become one space, so a value cannot start a new line or block; invisible
format characters (bidi embeddings and overrides such as U+202E, isolates, zero-width
characters, the byte-order mark, tag characters) are removed; and the value is cut to a
length with an ellipsis ("…").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import orjson

PLAIN_LIMIT = 140
"""Longest value quoted in a summary or label (a summary is shorter than this anyway)."""
MARKDOWN_LIMIT = 2000
"""Longest value quoted in a detail or a coverage-information text."""
CODE_LIMIT = 200
"""Longest record id shown in a code span (FHIR ids are at most 64 characters)."""
ELLIPSIS = "\u2026"

_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")
_INLINE = re.compile(r"[\\`*_~\[\]<&|@]|:(?=//)|(?<=/)/|(?<=\bwww)\.", re.IGNORECASE)
_LIST_OR_HEADING = re.compile(r"(#{1,6}|[-+]|\d{1,9}[.)])(?= |$)")
_UNDERLINE = re.compile(r"(=+|-+)$")
_BACKTICKS = re.compile(r"`+")


def _character(match: re.Match[str]) -> str:
    char = match.group()
    category = unicodedata.category(char)
    if category == "Cs":
        return "\ufffd"
    if category == "Cf":
        return ""
    if category in ("Cc", "Zl", "Zp", "Zs"):
        return " "
    return char


def clean(value: object, limit: int) -> str:
    """`value` as one line of visible text at most `limit` characters long (see the
    module's docstring)."""
    text = str(value)[: limit * 4]
    if not text.isascii() or not text.isprintable():
        text = _NOT_PRINTABLE_ASCII.sub(_character, text)
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + ELLIPSIS
    return text


def plain(value: object, limit: int = PLAIN_LIMIT) -> str:
    """A value for a summary, a label or a coverage text: cleaned, not escaped."""
    return clean(value, limit)


def markdown(value: object, limit: int = MARKDOWN_LIMIT) -> str:
    """A value for the running text of a detail (or a table cell): cleaned, and each
    character that could start a Markdown construct backslash-escaped."""
    text = _INLINE.sub(lambda m: "\\" + m.group(), clean(value, limit))
    if text[:1] == ">" or _UNDERLINE.match(text):
        return "\\" + text
    start = _LIST_OR_HEADING.match(text)
    if start:
        marker = start.group()
        return marker[:-1] + "\\" + marker[-1] + text[len(marker) :]
    return text


def code(value: object, limit: int = CODE_LIMIT) -> str:
    """A value as a Markdown code span (a record id): cleaned, between backtick fences
    longer than any run of backticks in it."""
    text = clean(value, limit)
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    if text.startswith("`") or text.endswith("`"):
        text = f" {text} "
    return f"{fence}{text}{fence}"


_SURROGATE = re.compile(r"[\ud800-\udfff]")


def holds_no_lone_surrogate(value: Any) -> bool:
    """True when `value` (a JSON value) certainly holds no lone surrogate: orjson, which
    refuses to encode one, encodes it (a C-speed check; False also for anything orjson
    cannot encode, so the caller then walks the value with `without_lone_surrogates`)."""
    try:
        orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        return False
    return True


def without_lone_surrogates(value: Any) -> Any:
    """A JSON value with every lone surrogate in its strings (keys too) replaced by U+FFFD.

    A surrogate code point in a Python string can only be a lone one (the JSON parser
    joins escaped pairs); no UTF-8 encoder accepts it, so a response or an audit record
    holding one could not be written. Chart text arrives this way from a FHIR server's
    `"\\ud800"` escape. Values without any are returned as they are (the same objects)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, Mapping):
        items = [(without_lone_surrogates(k), without_lone_surrogates(v)) for k, v in value.items()]
        if all(k is k0 and v is v0 for (k, v), (k0, v0) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, list | tuple):
        cleaned = [without_lone_surrogates(item) for item in value]
        if all(a is b for a, b in zip(cleaned, value, strict=True)):
            return value
        return cleaned
    return value
