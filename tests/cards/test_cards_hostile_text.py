"""Hostile record text through the real HTTP API: HTML, Markdown, bidi controls, newlines,
100 kB strings and lone surrogates in every text and id of the chart a card may quote.

Each request is a scenario file of both packs (NH.PHAR.244 and IL1.RIL.01) chosen so that
together they show every card kind that quotes the chart (combination, duplicate, switch,
hypersensitivity, care setting, dose, not covered, active condition, criteria not met,
documentation needed, criteria met, off-label, could not check). The same request is
posted with its benign chart and with hostile text appended to every display, text, note,
name and value string and to every resource id (references follow). Read as an EHR reads
card Markdown (`markdown_check`), the hostile answer must have exactly the blocks, links,
images and HTML of the benign one (the pack's own), summaries under 140 characters and
free of control and bidi characters, a 200 with valid UTF-8 JSON, and its audit record.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service import create_app
from cds_service.api import get_state
from tests.cards.markdown_check import active, invisible, structure
from tests.conftest import base_config, wait_for_audit

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
SIGN = "/cds-services/prior-auth-order-sign"
FHIR_BASE = "http://127.0.0.1:9999/fhir"

CASES = {
    "other/combo_jak_baricitinib": "NH.PHAR.244 combination",
    "other/combo_duplicate_anakinra_draft": "NH.PHAR.244 duplicate therapy",
    "other/allergy_anakinra_active": "NH.PHAR.244 hypersensitivity",
    "other/covid_outpatient_ambulatory": "NH.PHAR.244 care setting, outpatient",
    "other/covid_no_encounter": "NH.PHAR.244 care setting unknown, documentation needed",
    "other/covid_inpatient_200mg": "NH.PHAR.244 beyond the EUA regimen",
    "ehr/dose_and_rate_ordered_200mg_over_limit": "NH.PHAR.244 dose",
    "ehr/no_prefetch_no_fhir_server": "NH.PHAR.244 could not check",
    "rilonacept/dira_ib6_second_kineret_draft": "both packs: combination and switch",
    "rilonacept/nomid_not_covered": "IL1.RIL.01 not covered",
    "rilonacept/caps_iiic_sepsis_active": "IL1.RIL.01 active condition",
    "rilonacept/rp_ic5_igra_positive": "IL1.RIL.01 criteria not met",
    "rilonacept/caps_ia4_no_marker": "IL1.RIL.01 documentation needed",
    "rilonacept/caps_initial_met": "IL1.RIL.01 criteria met",
    "rilonacept/other_gout_off_label": "IL1.RIL.01 off-label",
    "rilonacept/caps_ia7_8_vials_per_28_days": "IL1.RIL.01 dispense over the limit",
}

MARKUP = (
    "<script>alert(1)</script> <img src=x onerror=alert(1)> [click](javascript:alert(1)) "
    "![img](https://evil.example/x.png) <https://evil.example/a> https://evil.example/b "
    "www.evil.example me@evil.example **bold** _it_ ~~gone~~ `code` &lt;b&gt; | a | b |"
    "\n\n# Heading\n\n- item\n1. item\n> quote\n```\nfenced\n```\n---\n[ref]: https://evil.example"
    "\n\u202egnp.exe\u202c \u2066isolate\u2069 zero\u200bwidth \ufeff\x00\x1b[31m\u2028next"
)
HUGE = "LONG" + "x" * 50_000 + " " + "y " * 25_000
SURROGATES = "lone \ud800 high \udfff low"
ID_SUFFIX = "-`<b>x</b>[l](javascript:1)`"

TEXT_KEYS = frozenset({"display", "text", "valueString", "family", "given", "comment", "name"})
"""Keys whose string values are words of the chart (codes, systems, units, dates and
statuses are left alone: they decide, and the decision is not what is tested here)."""
KEEP_IDS = frozenset({"Patient", "Practitioner", "PractitionerRole"})
"""Resources whose ids the context names (kept so the call still finds them)."""

Json = dict[str, Any]


CARDS_WITHOUT_COVERAGE = frozenset({"rilonacept/caps_initial_met"})
"""Criteria met: with coverage information the answer has no card (it would only repeat the
system action, CRD resp-12), so these go with coverage information switched off to quote
the chart in the criteria-met card."""


def load_case(name: str) -> Json:
    body: Json = json.loads((SCENARIOS / f"{name}.json").read_text("utf-8"))
    body.pop("_expect")
    if name in CARDS_WITHOUT_COVERAGE:
        body["extension"] = {"davinci-crd.configuration": {"coverage-info": False}}
    return body


def _resources(value: Any) -> Iterator[Json]:
    if isinstance(value, Mapping):
        if isinstance(value.get("resourceType"), str) and isinstance(value.get("id"), str):
            yield value  # type: ignore[misc]
        for item in value.values():
            yield from _resources(item)
    elif isinstance(value, list):
        for item in value:
            yield from _resources(item)


def with_text(value: Any, payload: str) -> Any:
    """`value` with `payload` appended to every chart word (see `TEXT_KEYS`)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key in TEXT_KEYS and isinstance(item, str):
                out[key] = f"{item} {payload}"
            elif key in TEXT_KEYS and isinstance(item, list):
                out[key] = [f"{i} {payload}" if isinstance(i, str) else i for i in item]
            else:
                out[key] = with_text(item, payload)
        return out
    if isinstance(value, list):
        return [with_text(item, payload) for item in value]
    return value


def with_ids(body: Json, suffix: str) -> Json:
    """`body` with `suffix` appended to every resource id but the patient's and the
    user's, and to every reference to them."""
    renamed = {
        f"{r['resourceType']}/{r['id']}": f"{r['resourceType']}/{r['id']}{suffix}"
        for r in _resources(body)
        if r["resourceType"] not in KEEP_IDS
    }

    def walk(value: Any) -> Any:
        if isinstance(value, Mapping):
            out = {k: walk(v) for k, v in value.items()}
            ref = f"{out.get('resourceType')}/{out.get('id')}"
            if ref in renamed:
                out["id"] = renamed[ref].split("/", 1)[1]
            if isinstance(out.get("reference"), str) and out["reference"] in renamed:
                out["reference"] = renamed[out["reference"]]
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    return walk(body)  # type: ignore[no-any-return]


def hostile(body: Json, payload: str) -> Json:
    changed = with_text(body, payload)
    return {**body, "context": changed["context"], "prefetch": changed.get("prefetch", {})}


# --- reading the answer -------------------------------------------------------------------


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def answer(app: Flask, body: Json) -> Json:
    """Post `body`; the answer must be a 200 of valid UTF-8 JSON without lone surrogates,
    and its audit record must be written."""
    body = {**body, "hookInstance": f"hostile-{time.monotonic_ns()}"}
    response = app.test_client().post(SIGN, data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.get_data()[:300]
    data: Json = json.loads(response.get_data().decode("utf-8"))
    for text in strings(data):
        text.encode("utf-8")  # raises on a lone surrogate
    assert_audited(app, body["hookInstance"])
    return data


def assert_audited(app: Flask, hook_instance: str) -> None:
    """The call's audit record is there (waiting a little, for a store that writes after
    the reply)."""
    wait_for_audit(app)  # the writer may be far behind on a busy machine
    store = get_state(app).store
    for _ in range(200):
        if any(row.hook_instance == hook_instance for row in store.recent_decisions(50)):
            return
        time.sleep(0.05)
    raise AssertionError(f"no audit record for {hook_instance}")


def labels(card: Json) -> list[str]:
    return [
        *(s.get("label", "") for s in card.get("suggestions", [])),
        *(a.get("description", "") for s in card.get("suggestions", []) for a in s["actions"]),
        *(link.get("label", "") for link in card.get("links", [])),
        *(r.get("display", "") for r in card.get("overrideReasons", [])),
        card.get("source", {}).get("label", ""),
    ]


def assert_safe(hostile_answer: Json, benign_answer: Json) -> None:
    """The hostile answer's cards: the same cards as the benign answer, each detail with
    exactly its blocks, links, images and HTML; plain texts clean; summaries < 140."""
    cards, benign = hostile_answer["cards"], benign_answer["cards"]
    assert [(c["indicator"], c["source"]["topic"]["code"]) for c in cards] == [
        (c["indicator"], c["source"]["topic"]["code"]) for c in benign
    ]
    for card, plain_card in zip(cards, benign, strict=True):
        detail, benign_detail = card.get("detail", ""), plain_card.get("detail", "")
        assert active(detail) == active(benign_detail), card["summary"]
        assert structure(detail) == structure(benign_detail), card["summary"]
        assert len(card["summary"]) < 140
        assert invisible(card["summary"]) == [], card["summary"]
        for label in labels(card):
            assert invisible(label) == [], label
            assert len(label) <= 300


def quoted(answer_body: Json) -> str:
    """Every text of the answer's cards, for checking that the chart text got there."""
    return json.dumps(
        [[c.get("summary"), c.get("detail"), labels(c)] for c in answer_body["cards"]],
        ensure_ascii=False,
    )


# --- the suite ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app() -> Flask:
    return create_app(base_config(CLOCK=lambda: NOW))


@pytest.fixture(scope="module")
def benign(app: Flask) -> dict[str, Json]:
    return {name: answer(app, load_case(name)) for name in CASES}


QUOTE_CHART_WORDS = frozenset({"rilonacept/caps_iiic_sepsis_active"})
"""Cases whose cards quote the chart's words (here: the infection's recorded name); the
others quote numbers and the pack's words only (the criteria table, which quoted every
check's reason, is no longer on the cards: it stays in the evaluation extension)."""


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES.values()))
@pytest.mark.parametrize("payload", [MARKUP, HUGE], ids=["markup-bidi-newlines", "100kB"])
def test_hostile_chart_text_is_quoted_never_rendered(
    app: Flask, benign: dict[str, Json], name: str, payload: str
) -> None:
    got = answer(app, hostile(load_case(name), payload))
    assert_safe(got, benign[name])
    # The chart text does reach the cards (quoted), so the test is not vacuous.
    marker = "javascript" if payload == MARKUP else "LONGxxx"
    assert marker in quoted(got) or name not in QUOTE_CHART_WORDS


def test_benign_details_have_no_links_images_or_html(benign: dict[str, Json]) -> None:
    """So the hostile answers' "same as benign" is "none at all" for these packs."""
    assert [active(c.get("detail", "")) for a in benign.values() for c in a["cards"]] == [
        [] for a in benign.values() for c in a["cards"]
    ]


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES.values()))
def test_hostile_ids_are_never_rendered(app: Flask, name: str) -> None:
    """Ids are checked against the FHIR id format: a resource with a hostile id is left
    out (and a draft order with one cannot be checked); nothing of it becomes Markdown."""
    got = answer(app, with_ids(hostile(load_case(name), MARKUP), ID_SUFFIX))
    for card in got["cards"]:
        detail = card.get("detail", "")
        assert active(detail) == []
        assert not {"heading_open", "blockquote_open", "fence", "code_block", "hr"} & set(
            structure(detail)
        )
        assert len(card["summary"]) < 140
        assert invisible(card["summary"]) == []
        assert all(invisible(label) == [] for label in labels(card))


class ChartServer:
    """A FHIR server serving a scenario's chart over HTTP (as JSON text: a lone surrogate is
    sent as the `"\\ud800"` escape, the way a server would send it)."""

    def __init__(self, resources: list[Json]) -> None:
        self.resources = resources

    def __call__(self, request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        path = str(request.url).removeprefix(FHIR_BASE + "/")
        headers = {"Content-Type": "application/fhir+json"}
        if "?" in path:
            kind = path.split("?", 1)[0]
            matches = [r for r in self.resources if r["resourceType"] == kind]
            bundle = {
                "resourceType": "Bundle",
                "type": "searchset",
                "entry": [{"resource": r, "search": {"mode": "match"}} for r in matches],
            }
            return 200, headers, json.dumps(bundle)
        kind, _, rid = path.partition("/")
        for resource in self.resources:
            if resource["resourceType"] == kind and resource["id"] == rid:
                return 200, headers, json.dumps(resource)
        return 404, headers, json.dumps({"resourceType": "OperationOutcome"})


def from_server(app: Flask, body: Json, payload: str) -> Json:
    """The answer to `body` sent without prefetch, the chart read from a FHIR server whose
    chart words carry `payload` (the request itself stays clean)."""
    chart = with_text(body.get("prefetch", {}), payload)
    resources = list({(r["resourceType"], r["id"]): r for r in _resources(chart)}.values())
    request = {k: v for k, v in body.items() if k != "prefetch"}
    request["fhirServer"] = FHIR_BASE
    request["fhirAuthorization"] = {
        "access_token": "token-for-the-chart-server",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/*.read",
        "subject": "cds",
    }
    with responses.RequestsMock(assert_all_requests_are_fired=False) as server:
        server.add_callback(
            responses.GET, re.compile(re.escape(FHIR_BASE) + "/.*"), callback=ChartServer(resources)
        )
        got = answer(app, request)
        assert server.calls, "the chart was read from the FHIR server"
    return got


@pytest.mark.parametrize("name", list(CASES), ids=list(CASES.values()))
def test_lone_surrogates_from_the_fhir_server_become_replacement_characters(
    app: Flask, name: str
) -> None:
    got = from_server(app, load_case(name), SURROGATES)
    assert_safe(got, from_server(app, load_case(name), "no surrogate"))
    if name in QUOTE_CHART_WORDS:
        assert "lone \ufffd high \ufffd low" in quoted(got)


CONDITION_CASE = "rilonacept/caps_iiic_sepsis_active"
DRUG_CASE = "other/combo_duplicate_anakinra_draft"


@settings(
    max_examples=25,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(text=st.text(st.characters(blacklist_categories=["Cs"]), max_size=200))
def test_any_unicode_in_condition_and_drug_names_is_quoted(
    app: Flask, benign: dict[str, Json], text: str
) -> None:
    for name in (CONDITION_CASE, DRUG_CASE):
        got = answer(app, hostile(load_case(name), text))
        assert_safe(got, benign[name])
