"""Whole-word phrase matching (`fhir_mappings.words`): the fast search finds a phrase in
exactly the texts where the plain case-insensitive expression finds it, including text
with the characters outside ASCII that match ASCII letters without case, and it reads a
100 kB chart string once, not once per value-set name."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_mappings import valuesets
from fhir_mappings.words import FOLDS, Text, found, phrase, texts_of

PHRASES = ["rule out", "IL-1", "ACR 2010", "r/o", "Escherichia coli", "anti-CCP", "vs", "k"]

ALPHABET = st.sampled_from(
    [
        *"ruleoutILacrkscRULE01-/ .\t\n",
        "\u0130",  # capital I with a dot
        "\u0131",  # dotless i
        "\u017f",  # long s
        "\u212a",  # Kelvin sign
        "\u00e9",
        "\u00c9",
        "\u0307",
        "\u00a0",  # no-break space (white space to the expression)
        "\u2028",
    ]
)


def plain(text: str, p: str) -> bool:
    """The expression the value sets always used."""
    escaped = re.escape(p.strip()).replace(r"\ ", r"\s+")
    return re.search(rf"(?<![A-Za-z0-9]){escaped}(?![A-Za-z0-9])", text, re.IGNORECASE) is not None


@settings(max_examples=600, deadline=None)
@given(
    parts=st.lists(st.one_of(st.sampled_from(PHRASES), st.text(ALPHABET, max_size=6)), max_size=8),
    which=st.sampled_from(PHRASES),
)
def test_the_fast_search_agrees_with_the_expression(parts: list[str], which: str) -> None:
    text = "".join(parts)
    [folded] = texts_of([text]) or [Text("", "", frozenset())]
    assert found(phrase(which), folded) == plain(text, which), (text, which)


def test_only_the_listed_characters_outside_ascii_match_ascii_letters() -> None:
    # Every character a case-insensitive [A-Za-z0-9] accepts, beyond ASCII, is in FOLDS
    # with the letter it matches as; lower-casing (what `fold` does) turns no other
    # character into ASCII and does not change whether it is white space.
    word = re.compile("[A-Za-z0-9]", re.IGNORECASE)
    space = re.compile(r"\s+")
    letters = {a: re.compile(a, re.IGNORECASE) for a in "abcdefghijklmnopqrstuvwxyz"}
    accepted = {}
    for code in range(0x80, 0x110000):
        char = chr(code)
        if word.fullmatch(char):
            [letter] = [a for a, pattern in letters.items() if pattern.fullmatch(char)]
            accepted[char] = letter
            continue
        lower = char.lower()
        assert not any(c.isascii() for c in lower), hex(code)
        assert bool(space.fullmatch(char)) == bool(space.fullmatch(lower)), hex(code)
    assert accepted == FOLDS


def test_names_in_long_text_are_found_as_whole_words_only() -> None:
    filler = "x" * 50_000 + " " + "y " * 25_000
    assert valuesets.match_names(["Kineret"])
    assert valuesets.match_names([f"{filler} KINERET {filler}"]) == valuesets.match_names(
        ["Kineret"]
    )
    assert valuesets.match_names([f"{filler} Kineretx {filler}"]) == ()
    assert valuesets.match_names([f"{filler}yKineret {filler}"]) == ()
