"""One deadline bounds the whole call, processing included (`CDS_CALL_DEADLINE`).

100 kB strings in every chart text a card may quote (every display, text, note, name and
value string of the context and the prefetch, as in the hostile-text suite): with a call
deadline that has passed before the record is read, every order of a pack's drug gets the
answer the README documents for an order that could not be checked (200, a could-not-check
card naming the order's drug, `"outcome": "not-evaluated"` with the reason "could not be
completed in time", the coverage-information system action) and the call is audited.
That the same calls are evaluated in full under the default deadline is the hostile-text
suite (tests/cards/test_cards_hostile_text.py, its `100kB` cases).

Then the deadline passing at every point of a call (a clock that jumps past it after its
n-th reading): each order is either decided as without a deadline or answered "could not
be completed in time", never an error, and the record's mapping itself stops (it checks
the time as it reads the chart, not only between stages).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from cds_service.api import get_state
from cds_service.pipeline import OUT_OF_TIME
from fhir_mappings.record import forget_records
from tests.cards.test_cards_hostile_text import CASES, HUGE, NOW, hostile, load_case
from tests.conftest import wait_for_audit

SIGN = "/cds-services/prior-auth-order-sign"
IN_TIME = "could not be completed in time"
PAST = 1e-6
"""A call deadline (seconds) that has passed before the record is read."""

BRANDS = {"NH.PHAR.244": "Kineret", "IL1.RIL.01": "Arcalyst"}

Json = dict[str, Any]


def post(app: Flask, body: Json, instance: str) -> Json:
    sent = json.dumps({**body, "hookInstance": instance})
    response = app.test_client().post(SIGN, data=sent, content_type="application/json")
    assert response.status_code == 200, response.get_data()[:300]
    answer: Json = response.get_json()
    return answer


def evaluations(answer: Json) -> dict[str, Json]:
    entries = answer.get("extension", {}).get("com.anakinra-cds.evaluation", [])
    return {e["order"]: e for e in entries}


def order_of(item: Json) -> str:
    """The order a card or system action is about."""
    text = json.dumps(item)
    found = re.findall(r"MedicationRequest/[^\"\s)#]+", text)
    assert found, text[:300]
    return str(found[0])


def updated(action: Json) -> str:
    """The order a coverage-information system action updates."""
    resource = action["resource"]
    return f"{resource['resourceType']}/{resource['id']}"


@pytest.fixture(scope="module")
def benign() -> Callable[[str], Json]:
    """The answer to a case with its plain chart and no deadline pressure."""
    from cds_service import create_app
    from tests.conftest import base_config

    app = create_app(base_config(CLOCK=lambda: NOW))
    answers: dict[str, Json] = {}

    def answer(name: str) -> Json:
        if name not in answers:
            answers[name] = post(app, load_case(name), f"benign-{len(answers)}")
        return answers[name]

    return answer


READ_CHART = {k: v for k, v in CASES.items() if k != "ehr/no_prefetch_no_fhir_server"}
"""The cases whose record can be read (the other one is answered "record not read"
before any processing)."""


@pytest.mark.parametrize("name", list(READ_CHART), ids=list(READ_CHART.values()))
def test_100_kb_chart_text_past_the_deadline_is_answered_could_not_check_in_time(
    make_app: Callable[..., Flask], benign: Callable[[str], Json], name: str
) -> None:
    app = make_app(CLOCK=lambda: NOW, CDS_CALL_DEADLINE=PAST)
    instance = f"deadline-{abs(hash(name))}"
    answer = post(app, hostile(load_case(name), HUGE), instance)

    expected = evaluations(benign(name))
    got = evaluations(answer)
    assert set(got) == set(expected), "every order the service answers for is answered"
    for entry in got.values():
        assert entry["outcome"] == "not-evaluated"
        assert IN_TIME in entry["reason"]
    cards = answer["cards"]
    assert sorted(order_of(c) for c in cards) == sorted(got), "one card per order"
    for card in cards:
        assert card["indicator"] == "warning"
        assert card["summary"].startswith("Could not complete the ")
        assert IN_TIME in card["detail"]
    # The card names the drug of its own order's pack (two packs in one call included).
    for card in cards:
        policy = next(
            e["policy"]["id"]
            for e in evaluations(benign(name)).values()
            if e["order"] == order_of(card) and "policy" in e
        )
        assert BRANDS[policy] in card["summary"]
    actions = answer.get("systemActions", [])
    assert sorted(updated(a) for a in actions) == sorted(
        updated(a) for a in benign(name).get("systemActions", [])
    ), "the coverage information is still recorded on each order"
    wait_for_audit(app)
    audited = [r.hook_instance for r in get_state(app).store.recent_decisions(50)]
    assert instance in audited


class JumpingClock:
    """A monotonic clock that reads 0 until its n-th reading since `restart`, then far
    past any deadline."""

    def __init__(self) -> None:
        self.readings = 10**9
        self.read = 0

    def restart(self, readings: int) -> None:
        self.readings, self.read = readings, 0

    def __call__(self) -> float:
        self.read += 1
        return 0.0 if self.read <= self.readings else 1e9


def test_the_deadline_passing_anywhere_gives_decided_or_in_time_answers(
    make_app: Callable[..., Flask],
    benign: Callable[[str], Json],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="cds_service.pipeline")
    name = "rilonacept/dira_ib6_second_kineret_draft"  # two orders, two packs
    plain = evaluations(benign(name))
    body = load_case(name)
    clock = JumpingClock()
    app = make_app(CLOCK=lambda: NOW, MONOTONIC=clock, CDS_CALL_DEADLINE=5)
    # Each call reads the chart anew (as a chart never sent before): a chart sent again
    # gets the record read the first time and reads the clock less often.
    forget_records()
    post(app, body, "count")  # how often a whole call reads the clock
    stages: set[str] = set()
    for readings in range(1, clock.read + 1):
        caplog.clear()
        clock.restart(readings)
        forget_records()
        got = evaluations(post(app, body, f"jump-{readings}"))
        assert set(got) == set(plain)
        for order, entry in got.items():
            if entry["outcome"] == "not-evaluated":
                assert entry["reason"] == OUT_OF_TIME, (readings, entry)
            else:
                assert entry["outcome"] == plain[order]["outcome"], (readings, order)
                assert entry["criteria"] == plain[order]["criteria"], (readings, order)
        stages |= {
            str(getattr(r, "stage", ""))
            for r in caplog.records
            if getattr(r, "event", None) == "call-out-of-time"
        }
    # The time ran out before the record was read, while it was read (the mapping
    # stopped itself), and between the orders' decisions.
    assert {"before-mapping", "mapping", "evaluation"} <= stages, stages
