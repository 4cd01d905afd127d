"""Chart text quoted on a card: shown as the characters it is, never as Markdown or HTML."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.cards.safe_text import (
    MARKDOWN_LIMIT,
    PLAIN_LIMIT,
    clean,
    code,
    markdown,
    plain,
    without_lone_surrogates,
)
from cds_service.cards.texts import texts_for
from tests.cards.markdown_check import active, invisible, shown_text, structure, tokens

HOSTILE = [
    "[click](javascript:alert(1))",
    "![x](https://evil.example/x.png)",
    "<https://evil.example>",
    "<1@evil.example>",
    "https://evil.example/p and www.evil.example and me@evil.example",
    "//evil.example/p and //+.0",  # protocol-relative: a link to a linkifying client
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "# Heading",
    "> quoted",
    "- item",
    "1. item",
    "===",
    "---",
    "| a | b |",
    "**bold** _it_ ~~gone~~ `code`",
    "```\nfenced\n```",
    "[ref]: https://evil.example",
    "&lt;b&gt; &#106;avascript",
    "line one\n\n# Heading\n- item\n> quote",
    "trailing backslash \\",
    "\\[escaped\\]",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_value_is_shown_as_its_characters(value: str) -> None:
    paragraph = f"Recorded: {markdown(value)} (chart)"
    assert active(paragraph) == []
    assert structure(paragraph) == {"paragraph_open": 1}
    assert shown_text(paragraph) == f"Recorded: {clean(value, MARKDOWN_LIMIT)} (chart)"


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_value_at_the_start_of_a_line_starts_no_block(value: str) -> None:
    text = f"Intro paragraph.\n{markdown(value)}\n\n- a list item: {markdown(value)}"
    assert active(text) == []
    assert structure(text) == {
        "paragraph_open": 2,
        "bullet_list_open": 1,
        "list_item_open": 1,
        "softbreak": 1,
    }


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_value_stays_inside_its_table_cell(value: str) -> None:
    table = f"| Criterion | Reason |\n|---|---|\n| I.A.1 | {markdown(value)} |"
    assert active(table) == []
    assert structure(table)["td_open"] == 2


def test_ordinary_clinical_text_is_unchanged() -> None:
    ordinary = [
        "anakinra 100 MG in 0.67 ML Prefilled Syringe",
        "0.67 ML anakinra 149 MG/ML Prefilled Syringe",
        "Sepsis, unspecified organism",
        "C-reactive protein 12.5 mg/L (high); ESR 40 mm/h",
        "Rheumatoid arthritis of multiple sites, seropositive",
        "MedicationRequest/draft-kineret: dose 200 mg/day is over 100 mg/day",
    ]
    for value in ordinary:
        assert markdown(value) == value
        assert plain(value) == value
    assert code("MedicationRequest/draft-kineret") == "`MedicationRequest/draft-kineret`"


def test_bidi_controls_invisible_characters_and_newlines_are_removed() -> None:
    value = "abc\u202etxt.exe\u2066x\u2069\u200b\ufeff\u00ad tail\r\nnext\u2028line\x00\x1b[31m"
    assert invisible(plain(value)) == []
    assert invisible(markdown(value)) == []
    assert plain(value) == "abctxt.exex tail next line [31m"


def test_lone_surrogates_become_the_replacement_character() -> None:
    assert plain("a\ud800b\udfffc") == "a\ufffdb\ufffdc"
    assert markdown("x\udc00").encode("utf-8") == "x\ufffd".encode()
    body = {"cards": [{"summary": "s\ud800", "x": ["\udfff", 1, None]}], "k\ud801": "ok"}
    assert without_lone_surrogates(body) == {
        "cards": [{"summary": "s\ufffd", "x": ["\ufffd", 1, None]}],
        "k\ufffd": "ok",
    }
    clean_body = {"cards": [{"summary": "fine"}]}
    assert without_lone_surrogates(clean_body) is clean_body


def test_long_values_are_cut_with_an_ellipsis() -> None:
    long = "word " * 20_000
    assert len(plain(long)) == PLAIN_LIMIT
    assert plain(long).endswith("\u2026")
    assert len(markdown("a" * 100_000)) == MARKDOWN_LIMIT
    assert len(code("b" * 100_000)) <= 202


def test_code_span_holds_backticks_without_breaking_out() -> None:
    for value in ("a`b", "`start", "end`", "``double``<b>[x](y)"):
        span = f"Recorded in: {code(value)}."
        kinds = [t.type for t in tokens(span) if t.type != "inline"]
        assert kinds.count("code_inline") == 1
        (inline,) = [t for t in tokens(span) if t.type == "code_inline"]
        assert inline.content == value


def test_template_values_are_quoted_by_where_the_text_goes() -> None:
    texts = texts_for("NH.PHAR.244")
    drug = "[x](javascript:1) **b**\u202e"
    summary = texts.text("combination", "summary", drugs=drug)
    detail = texts.text("combination", "detail", drugs=drug, criteria="I.A.6")
    label = texts.text("combination", "remove_draft", drug=drug)
    assert "[x](javascript:1) **b**" in summary  # plain text: shown as is, no backslash
    assert invisible(summary) == invisible(label) == []
    assert "\\[x\\](javascript:1) \\*\\*b\\*\\*" in detail
    assert active(detail) == []


MARKDOWN_ALPHABET = st.sampled_from([*"[]()<>!*_`~#|-+=.:/@&;\\ \n\t1aw", "www.", "http://"])
ANY_CHARACTER = st.characters(blacklist_categories=())  # surrogates and controls too


@settings(max_examples=300)
@given(st.lists(MARKDOWN_ALPHABET | ANY_CHARACTER, max_size=80).map("".join))
def test_any_text_is_shown_as_its_cleaned_characters(value: str) -> None:
    paragraph = f"Recorded: {markdown(value)}."
    assert active(paragraph) == []
    assert set(structure(paragraph)) <= {"paragraph_open"}
    assert shown_text(paragraph) == f"Recorded: {clean(value, MARKDOWN_LIMIT)}."
    assert invisible(plain(value)) == []
    assert "\n" not in plain(value)
