"""How a test reads the service's answer to an order the way an EHR does: the cards about the
order and the Da Vinci CRD coverage information attached to it by a system action.

An order that meets the plan's criteria at order-sign is answered by the coverage-information
system action alone (CRD resp-12: no card repeats it), so "the order got an answer" means a
card or coverage information for it, never an empty response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds_service.store import COVERAGE_INFORMATION_URL

Json = Mapping[str, Any]


def card_orders(answer: Json) -> list[str]:
    """The order each card is about (its CRD associated-resource extension)."""
    return [
        ref["reference"]
        for card in answer.get("cards", [])
        for ref in card.get("extension", {}).get("davinci-crd.associated-resource", [])
    ]


def coverage_information(answer: Json) -> dict[str, Json]:
    """Order reference -> the coverage-information extension a system action attaches to it."""
    found: dict[str, Json] = {}
    for action in answer.get("systemActions", []):
        resource = action.get("resource", {})
        for ext in resource.get("extension", []):
            if ext.get("url") == COVERAGE_INFORMATION_URL:
                found[f"{resource.get('resourceType')}/{resource.get('id')}"] = ext
    return found


def covered(answer: Json, order: str) -> str | None:
    """The `covered` code of the coverage information attached to `order`, if any."""
    ext = coverage_information(answer).get(order)
    if ext is None:
        return None
    return next(
        (part.get("valueCode") for part in ext["extension"] if part["url"] == "covered"), None
    )


def answered_orders(answer: Json) -> set[str]:
    """Every order the answer says something about, by card or by coverage information."""
    return set(card_orders(answer)) | set(coverage_information(answer))


def is_answered(answer: Json) -> bool:
    """The answer tells the prescriber something: a card or coverage information."""
    return bool(answer.get("cards")) or bool(coverage_information(answer))
