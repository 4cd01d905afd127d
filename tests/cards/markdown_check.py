"""Reading card Markdown the way an EHR would: CommonMark with the GitHub extensions EHRs
use (tables, strikethrough, bare-URL autolinks), by markdown-it-py."""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Iterator

from markdown_it import MarkdownIt
from markdown_it.token import Token

ACTIVE = frozenset({"link_open", "image", "html_inline", "html_block"})
"""Tokens that would make chart text clickable or live HTML."""
STRUCTURE = frozenset(
    {
        "heading_open",
        "blockquote_open",
        "fence",
        "code_block",
        "hr",
        "paragraph_open",
        "bullet_list_open",
        "ordered_list_open",
        "list_item_open",
        "table_open",
        "tr_open",
        "th_open",
        "td_open",
        "em_open",
        "strong_open",
        "s_open",
        "code_inline",
        "softbreak",
        "hardbreak",
    }
)
"""Blocks and inline markup: chart text must not add any."""


def parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"linkify": True}).enable(["table", "strikethrough", "linkify"])
    assert md.linkify is not None  # linkify-it-py is installed
    md.linkify.set({"fuzzy_link": False})  # GitHub links bare URLs with a scheme or www. only
    return md


_MD = parser()


def tokens(text: str) -> Iterator[Token]:
    """Every token of `text`, inline children included."""

    def walk(items: list[Token]) -> Iterator[Token]:
        for token in items:
            yield token
            if token.children:
                yield from walk(token.children)

    return walk(_MD.parse(text))


def active(text: str) -> list[str]:
    """The links, images and HTML of `text`: their kind and target / content."""
    found = []
    for token in tokens(text):
        if token.type in ACTIVE:
            target = token.attrGet("href") or token.attrGet("src") or token.content
            found.append(f"{token.type} {target!s:.80}")
    return found


def structure(text: str) -> Counter[str]:
    """How many of each block and markup token `text` has."""
    return Counter(token.type for token in tokens(text) if token.type in STRUCTURE)


def shown_text(text: str) -> str:
    """The characters a reader sees of one paragraph of inline text."""
    return "".join(
        token.content for token in tokens(text) if token.type in ("text", "text_special")
    )


def invisible(text: str) -> list[str]:
    """Control, format (bidi, zero-width) and surrogate characters in `text`, and any
    line or paragraph separator: what a plain-text card field must not hold."""
    return [
        f"U+{ord(ch):04X}"
        for ch in text
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp")
    ]
