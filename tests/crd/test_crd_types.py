"""Every card carries its CRD card type as `source.topic`, from the one kind -> type map."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from cds_service.cards import render_response
from cds_service.crd.coverage import demo_call
from cds_service.crd.types import CARD_TYPE_SYSTEM, CARD_TYPES, KIND_TYPES, card_type, topic
from tests.cards.builders import NOW, SETTINGS, uuid_counter
from tests.cards.cases import CASES

SCHEMA = Path(__file__).resolve().parents[2] / "cds_service" / "packs" / "cards.schema.json"
NOT_CARD_KINDS = {"format", "product", "actions", "coverage", "criteria"}
"""cards.yaml sections that are not a card: file format, names, suggestion labels, the
coverage-information system action texts, and the criteria's plain labels."""


def test_every_card_kind_of_the_pack_format_has_a_crd_type() -> None:
    kinds = set(json.loads(SCHEMA.read_text())["properties"]) - NOT_CARD_KINDS
    assert kinds <= set(KIND_TYPES), f"card kinds without a CRD type: {kinds - set(KIND_TYPES)}"


def test_every_mapped_type_is_a_crd_response_type() -> None:
    assert set(KIND_TYPES.values()) <= set(CARD_TYPES)


def test_unknown_kind_is_an_error_not_a_default() -> None:
    with pytest.raises(KeyError):
        card_type("no-such-kind")


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendered_cards_carry_a_crd_card_type_topic(name: str) -> None:
    hook, evaluations = CASES[name]()
    # Without coverage information, so that every kind, criteria-met included, has a card.
    response = render_response(
        hook,
        evaluations,
        settings=SETTINGS,
        uuid_factory=uuid_counter(),
        now=NOW,
        coverage=replace(demo_call(), enabled=False),
    )
    assert response["cards"]
    for card in response["cards"]:
        coding = card["source"]["topic"]
        assert coding["system"] == CARD_TYPE_SYSTEM
        assert coding == topic(coding["code"])
        assert coding["code"] in set(KIND_TYPES.values())
