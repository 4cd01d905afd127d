"""The indicator rule (docs/cards.md, `cds_service.cards.indicators`): critical only for a
clinical safety problem, coverage outcomes info or warning, the same situation always the
same indicator."""

from __future__ import annotations

import ast
from pathlib import Path

from cds_service.cards.indicators import INDICATORS, SAFETY, indicator_for
from cds_service.cards.render import render_response
from cds_service.crd.types import KIND_TYPES
from tests.cards.builders import NOW, SETTINGS, uuid_counter
from tests.cards.cases import CASES

RENDER = Path(__file__).resolve().parents[2] / "cds_service" / "cards"


def test_every_card_kind_has_an_indicator() -> None:
    assert set(INDICATORS) == set(KIND_TYPES)


def test_critical_is_kept_for_clinical_safety_problems() -> None:
    critical = {kind for kind, indicator in INDICATORS.items() if indicator == "critical"}
    assert (
        critical == SAFETY == {"combination", "duplicate", "hypersensitivity", "active_condition"}
    )


def test_coverage_limits_are_warnings_not_critical() -> None:
    # COVID-19 outpatient use, a use the plan excludes, an off-label use: reimbursement, not
    # a safety stop (Da Vinci CRD: critical is for serious clinical outcomes).
    for kind in ("care_setting", "not_covered", "off_label", "not_met", "dose"):
        assert indicator_for(kind) == "warning", kind
    assert indicator_for("criteria_met") == "info"


def test_the_renderer_writes_no_indicator_of_its_own() -> None:
    """Every card's indicator comes from the table: no string literal is passed as
    `indicator=` in the card modules (so one situation cannot get two indicators)."""
    literals = []
    for path in RENDER.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.keyword)
                and node.arg == "indicator"
                and isinstance(node.value, ast.Constant)
            ):
                literals.append(f"{path.name}:{node.value.lineno}")
    assert literals == []


def test_the_same_card_type_gets_the_same_indicator_in_every_case() -> None:
    seen: dict[tuple[str, str], set[str]] = {}
    for case in CASES.values():
        hook, evaluations = case()
        response = render_response(
            hook, evaluations, settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW
        )
        for card in response["cards"]:
            key = (card["source"]["topic"]["code"], card["summary"].split(":")[0])
            seen.setdefault(key, set()).add(card["indicator"])
    assert all(len(indicators) == 1 for indicators in seen.values()), seen
