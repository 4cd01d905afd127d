"""Whole-word, case-insensitive phrase matching in time linear in the text.

A phrase ("rule out", "IL-1", "ACR 2010") is found in a text where it appears as whole
words: not preceded or followed by a letter or digit, its spaces matching any run of
white space, letters compared without case. That is the regular expression
`(?<![A-Za-z0-9])rule\\s+out(?![A-Za-z0-9])` with `re.IGNORECASE` (`Phrase.pattern`).

Python's regular expressions try such an expression at every position of the text, and
a case-insensitive one gets no fast scan for its first letters: searching a 100 kB chart
string for the few hundred value-set names took seconds per call. Here the text is
folded to lower case once (`fold`), and each phrase is searched with an equivalent
case-sensitive expression that starts with its first word (`Phrase.folded`), which the
regular expression engine finds by a fast scan: the same answers, in milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

FOLDS: Final = {"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"}
"""The characters outside ASCII that a case-insensitive `[A-Za-z0-9]` accepts (capital I
with a dot, dotless i, long s, the Kelvin sign), each with the letter it matches as
(tests/mappings/test_mappings_words.py checks that the list is complete)."""


def fold(text: str) -> str:
    """`text` in lower case, with the characters of `FOLDS` as their ASCII letters: a
    letter of a phrase matches a character of the text without case exactly when it
    equals that character of the folded text."""
    if text.isascii():
        return text.lower()
    for special, letter in FOLDS.items():
        text = text.replace(special, letter)
    return text.lower()


@dataclass(frozen=True)
class Phrase:
    text: str
    pattern: re.Pattern[str]
    """The phrase as a case-insensitive expression over the text as it is."""
    folded: re.Pattern[str] | None
    """The same phrase as a case-sensitive expression over the folded text; None for a
    phrase with letters outside ASCII (searched with `pattern`)."""
    first: str
    """Its first word, folded ("" when it does not start with a letter or digit)."""


def phrase(text: str) -> Phrase:
    stripped = text.strip()
    escaped = re.escape(stripped).replace(r"\ ", r"\s+")
    pattern = re.compile(rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])", re.IGNORECASE)
    if not stripped.isascii():
        return Phrase(stripped, pattern, None, "")
    lower = re.escape(stripped.lower()).replace(r"\ ", r"\s+")
    head, sep, rest = lower.partition(r"\s+")
    # The first word, then "not preceded by a letter or digit" as a look back over it:
    # the expression starts with plain characters, which the engine scans for quickly.
    folded = re.compile(rf"{head}(?<![a-z0-9]{head}){sep}{rest}(?![a-z0-9])")
    first = _WORD.match(stripped.lower())
    return Phrase(stripped, pattern, folded, first.group() if first else "")


_WORD: Final = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Text:
    """One text as it is, folded, and the words of the folded text."""

    text: str
    folded: str
    words: frozenset[str]


_NOT_WORD: Final = str.maketrans(
    {chr(c): " " for c in range(128) if not re.fullmatch("[a-z0-9]", chr(c))}
)


def text_of(text: str) -> Text:
    folded = fold(text)
    if folded.isascii():  # the same words as below, a few times faster
        return Text(text, folded, frozenset(folded.translate(_NOT_WORD).split()))
    return Text(text, folded, frozenset(_WORD.findall(folded)))


_short_memo = lru_cache(maxsize=4096)(text_of)
_long_memo = lru_cache(maxsize=8)(text_of)
"""A call asks about the same texts many times (one concept for several value sets).
Short texts are many and repeat across calls; long ones are few (a handful of a call's,
at most a few MiB kept)."""


def forget_texts() -> None:
    """Empty the memos of texts split into words (the benchmark's first-sight figures)."""
    _short_memo.cache_clear()
    _long_memo.cache_clear()


def texts_of(texts: Iterable[str]) -> tuple[Text, ...]:
    """Each non-empty text, folded and split into words once, to be searched for many
    phrases."""
    return tuple(_short_memo(t) if len(t) <= 4096 else _long_memo(t) for t in texts if t)


def found(p: Phrase, text: Text) -> bool:
    """Whether phrase `p` appears, as whole words, in `text`."""
    if p.folded is None:
        return p.pattern.search(text.text) is not None
    # A phrase that starts with a word starts where that whole word is in the text: most
    # phrases are ruled out without reading the text again.
    if p.first and p.first not in text.words:
        return False
    return p.folded.search(text.folded) is not None


def found_in(p: Phrase, texts: Iterable[Text]) -> bool:
    return any(found(p, t) for t in texts)
