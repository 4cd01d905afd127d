"""The rules every card must keep, as a prescriber reads it (docs/cards.md), checked by one
function over any response: `problems(response)` lists every rule a card breaks.

- the summary: under 140 characters, about a dozen words (at most `SUMMARY_WORDS_MAX`);
- no policy clause id ("I.A.3"), no raw resource id ("MedicationRequest/x"), no machine
  word (a value set name such as "rheumatoid-arthritis", "syringe(s)", "indication: other")
  in anything a person reads: summary, detail, link and suggestion labels;
- the detail: short (at most `DETAIL_MAX` characters), without the criteria table;
- the indicator: critical only on a clinical safety card (topic contraindication or
  duplicate-therapy), as `cds_service.cards.indicators` says for the card types;
- links: every link and the card's source URL absolute http(s) (or a SMART launch URL), never
  empty or "#";
- one card to act on (warning or critical) per order; info cards (CRD additional orders,
  alternate request, the switch reminder) are CRD card types of their own
  (`cds_service/cards/merge.py`);
- nothing said twice in one place: no name listed twice in one list of a detail
  ("etanercept (status active), etanercept (status active)"), no list item whose text
  repeats its bold label ("**A baseline CDAI**: A baseline CDAI score.");
- the coverage information's texts a person may read (its reason) name no clause id either:
  each criterion's id is in the code of its own detail.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cds_service.cards.indicators import INDICATORS
from cds_service.crd.types import KIND_TYPES

SUMMARY_LIMIT = 140
SUMMARY_WORDS_MAX = 22
"""A dose card states ordered, allowed and the fix ("... 8 vials for 28 days is over the
plan limit of 4 vials; keep the dose, dispense 4 vials for 28 days"): 22 words at most."""
DETAIL_MAX = 1200

VALUESETS = Path(__file__).resolve().parents[2] / "fhir_mappings" / "valuesets"
MACHINE_WORDS = (
    *sorted(p.stem for p in VALUESETS.glob("*.json") if "-" in p.stem),
    "syringe(s)",
    "vial(s)",
    "indication: other",
    "not-met",
    "criteria-met",
)
"""Words of the machine-readable answer (value set names, statuses) that must not reach a
person: lower case as the machine writes them."""
CLAUSE_ID = re.compile(r"\b(?:I|II|III|IV|V|VI)\.[A-Z](?:\.\d+)*\b")
RAW_ID = re.compile(
    r"\b[A-Z][a-z]+[A-Z][A-Za-z]*/[A-Za-z0-9\-.]+|\b(?:Patient|Condition|Observation|Encounter|Coverage|Practitioner|Organization)/[A-Za-z0-9\-.]+"
)
SAFETY_TOPICS = frozenset({"contraindication", "duplicate-therapy"})
NAMED_TWICE = re.compile(r"(?<![\w-])([A-Za-z][\w-]*(?: [\w-]+)?) \([^()]*\), \1 \(")
"""One list naming the same thing twice: "etanercept (status active), etanercept (...)"."""
LABELLED_ITEM = re.compile(r"^- \*\*(?P<label>[^*]+)\*\*: (?P<text>.*)$", re.MULTILINE)
COVERAGE_INFORMATION_URL = (
    "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
)

Json = Mapping[str, Any]


def person_texts(card: Json) -> Iterator[tuple[str, str]]:
    """(where, text) of everything on a card a person reads."""
    yield "summary", str(card.get("summary", ""))
    yield "detail", str(card.get("detail", ""))
    for link in card.get("links", []):
        yield "link label", str(link.get("label", ""))
    for suggestion in card.get("suggestions", []):
        yield "suggestion label", str(suggestion.get("label", ""))
    for reason in card.get("overrideReasons", []):
        yield "override reason", str(reason.get("display", ""))


def _machine_word(text: str) -> str | None:
    for word in MACHINE_WORDS:
        if re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text):
            return word
    return None


def _indicators_for_topic(topic: str) -> set[str]:
    return {INDICATORS[kind] for kind, code in KIND_TYPES.items() if code == topic}


def _url_ok(url: object) -> bool:
    return isinstance(url, str) and bool(re.match(r"https?://[^\s#]+", url)) and url != "#"


def card_problems(card: Json) -> list[str]:
    found: list[str] = []
    summary = str(card.get("summary", ""))
    if len(summary) >= SUMMARY_LIMIT:
        found.append(f"summary has {len(summary)} characters: {summary}")
    if len(summary.split()) > SUMMARY_WORDS_MAX:
        found.append(f"summary has {len(summary.split())} words: {summary}")
    for where, text in person_texts(card):
        clause = CLAUSE_ID.search(text)
        if clause:
            found.append(f"{where} names the clause {clause.group(0)}: {text[:120]}")
        raw = RAW_ID.search(text)
        if raw:
            found.append(f"{where} names the record id {raw.group(0)}: {text[:120]}")
        machine = _machine_word(text)
        if machine:
            found.append(f"{where} has the machine word {machine!r}: {text[:120]}")
    detail = str(card.get("detail", ""))
    twice = NAMED_TWICE.search(detail)
    if twice:
        found.append(f"detail names {twice.group(1)!r} twice in one list: {twice.group(0)}")
    for item in LABELLED_ITEM.finditer(detail):
        label, text = item.group("label").strip(), item.group("text")
        if text.lower().startswith(label.lower()):
            found.append(f"detail item repeats its label {label!r}: {item.group(0)[:120]}")
    if len(detail) > DETAIL_MAX:
        found.append(f"detail has {len(detail)} characters (at most {DETAIL_MAX})")
    if "| Criterion | Status |" in detail:
        found.append("detail carries the criteria table")
    topic = card.get("source", {}).get("topic", {}).get("code", "")
    indicator = card.get("indicator")
    if indicator == "critical" and topic not in SAFETY_TOPICS:
        found.append(f"critical card of topic {topic} (critical is for safety problems only)")
    if indicator not in _indicators_for_topic(topic):
        found.append(f"indicator {indicator} is not the indicator rule's for topic {topic}")
    for link in card.get("links", []):
        if link.get("type") == "smart":
            ok = isinstance(link.get("url"), str) and link["url"] not in ("", "#")
        else:
            ok = _url_ok(link.get("url"))
        if not ok:
            found.append(f"link {link.get('label')!r} has no working URL: {link.get('url')!r}")
    if "url" in card.get("source", {}) and not _url_ok(card["source"]["url"]):
        found.append(f"source URL {card['source']['url']!r} does not work")
    return found


def coverage_reasons(response: Json) -> Iterator[str]:
    """The reason texts of the coverage information the response's system actions attach."""
    for action in response.get("systemActions", []):
        for ext in action.get("resource", {}).get("extension", []):
            if ext.get("url") != COVERAGE_INFORMATION_URL:
                continue
            for part in ext.get("extension", []):
                if part.get("url") == "reason":
                    yield str(part.get("valueCodeableConcept", {}).get("text", ""))


def problems(response: Json, *, one_card_per_order: bool = True) -> list[str]:
    """Every rule the response's cards break (empty: none)."""
    found = [p for card in response.get("cards", []) for p in card_problems(card)]
    for reason in coverage_reasons(response):
        clause = CLAUSE_ID.search(reason)
        if clause:
            found.append(f"coverage reason names the clause {clause.group(0)}: {reason[:120]}")
    per_order = Counter(
        card.get("extension", {}).get("davinci-crd.associated-resource", [{}])[0].get("reference")
        for card in response.get("cards", [])
        if card.get("indicator") in ("warning", "critical")
    )
    if one_card_per_order:
        found += [f"{n} cards for {order}" for order, n in per_order.items() if n > 1]
    return found
