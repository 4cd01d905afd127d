"""One card to act on per order (pure): the warning and critical cards of one order become a
single card, the most severe one first.

An order can trip several rules at once (a dose over the limit and a criterion not met; a
contraindicated combination and a dose). Two cards that each ask the prescriber to stop and
act is noise: the prescriber gets one card whose summary is the most severe problem, whose
detail ends with the others' summaries ("Also for this order"), and which carries every
suggestion (the prescriber takes at most one), link and override reason of the cards it
replaces.

Info cards stay cards of their own: the CRD response types "additional orders" and "alternate
request" (a companion order, a product to try first) and the switch reminder are separate CRD
card types that a client switches on and off one by one (the configuration options), and they
ask for nothing to be stopped. Merging runs after the client's configuration was applied
(`api`), so switching a card type off still removes exactly that type's card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cds_service.cards.codes import ASSOCIATED_RESOURCE_KEY
from cds_service.cards.safe_text import markdown

SEVERITY = {"info": 0, "warning": 1, "critical": 2}
ALSO = "Also for this order:"


def _order_of(card: Mapping[str, Any]) -> str | None:
    refs = card.get("extension", {}).get(ASSOCIATED_RESOURCE_KEY)
    if isinstance(refs, list) and refs and isinstance(refs[0], Mapping):
        ref = refs[0].get("reference")
        return ref if isinstance(ref, str) else None
    return None


def _unique(items: Sequence[Mapping[str, Any]], key: str) -> list[dict[str, Any]]:
    seen: set[Any] = set()
    out: list[dict[str, Any]] = []
    for item in items:
        marker = item.get(key)
        if marker in seen:
            continue
        seen.add(marker)
        out.append(dict(item))
    return out


def merge_cards(cards: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One card from the warning / critical cards of one order (at least one)."""
    ranked = sorted(cards, key=lambda c: -SEVERITY.get(str(c.get("indicator")), 0))
    first, others = ranked[0], ranked[1:]
    merged = dict(first)
    if not others:
        return merged
    also = "\n".join(f"- {markdown(str(c.get('summary', '')))}" for c in others)
    merged["detail"] = "\n\n".join(
        part for part in (str(first.get("detail", "")), f"{ALSO}\n\n{also}") if part
    )
    suggestions = _unique([s for c in ranked for s in c.get("suggestions", [])], "label")
    if suggestions:
        merged["suggestions"] = suggestions
        merged["selectionBehavior"] = "at-most-one"
    links = _unique([link for c in ranked for link in c.get("links", [])], "url")
    if links:
        merged["links"] = links
    reasons = _unique([r for c in ranked for r in c.get("overrideReasons", [])], "code")
    if reasons:
        merged["overrideReasons"] = reasons
    return merged


def one_card_per_order(response: Mapping[str, Any]) -> dict[str, Any]:
    """The response with the warning and critical cards of each order merged into one (at
    the place of the first of them); info cards and cards of no order unchanged."""
    cards = response.get("cards")
    if not isinstance(cards, list) or len(cards) < 2:
        return dict(response)
    acting: dict[str, list[Mapping[str, Any]]] = {}
    for card in cards:
        order = _order_of(card)
        if order is not None and card.get("indicator") in ("warning", "critical"):
            acting.setdefault(order, []).append(card)
    out: list[Any] = []
    done: set[str] = set()
    for card in cards:
        order = _order_of(card)
        group = acting.get(order) if order is not None else None
        if group is None or len(group) < 2 or not any(card is g for g in group):
            out.append(card)
            continue
        if order in done:
            continue
        done.add(str(order))
        out.append(merge_cards(group))
    return {**response, "cards": out}
