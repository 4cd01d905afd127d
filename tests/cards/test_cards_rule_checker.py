"""The card rules catch what the official CDS Hooks sandbox showed (docs/cards.md): each rule
added for a text fix finds the old text, and lets the fixed one pass."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cards.card_rules import COVERAGE_INFORMATION_URL, card_problems, problems


def card(detail: str) -> dict[str, Any]:
    return {
        "summary": "Kineret with etanercept: combination not covered. Remove one of the therapies",
        "indicator": "critical",
        "detail": detail,
        "source": {"topic": {"code": "contraindication"}},
    }


@pytest.mark.parametrize(
    ("detail", "found"),
    [
        (
            "- Combination with etanercept (status active), etanercept (status active): risk.",
            "names 'etanercept' twice",
        ),
        ("- **A baseline CDAI or RAPID3**: A baseline CDAI or RAPID3 score.", "repeats its label"),
        (
            "- **The IL1RN genetic test report**: the IL1RN genetic test report.",
            "repeats its label",
        ),
    ],
)
def test_the_old_sandbox_texts_break_a_rule(detail: str, found: str) -> None:
    assert any(found in p for p in card_problems(card(detail)))


@pytest.mark.parametrize(
    "detail",
    [
        "- Combination with etanercept (status active): additive immunosuppression.",
        "- Combination with adalimumab (status active), etanercept (draft order): risk.",
        "- **A baseline CDAI or RAPID3** score.",
        "- **Methotrexate trial dates**: Dates and doses of a methotrexate trial.",
    ],
)
def test_the_fixed_texts_keep_the_rules(detail: str) -> None:
    assert card_problems(card(detail)) == []


def test_a_coverage_reason_naming_a_section_breaks_a_rule() -> None:
    def response(reason: str) -> dict[str, Any]:
        extension = {
            "url": COVERAGE_INFORMATION_URL,
            "extension": [{"url": "reason", "valueCodeableConcept": {"text": reason}}],
        }
        action = {"type": "update", "resource": {"extension": [extension]}}
        return {"cards": [], "systemActions": [action]}

    old = "Not covered as ordered under NH.PHAR.244 section I.A: I.A.3: age 16."
    assert any("names the clause I.A" in p for p in problems(response(old)))
    assert problems(response("Not covered as ordered under NH.PHAR.244: age 16.")) == []
