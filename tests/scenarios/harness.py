"""What the scenario test modules share: loading a request file, posting it, finding the
evaluation and cards of one order, and comparing them with the file's `_expect`.

Each scenario folder (`ra/`, `other/`, `ehr/`, `continued/`) holds CDS Hooks requests with an
`_expect` object written from the policy text and INTERPRETATION.md. The comparisons here
return lists of readable differences (empty when the answer is the documented one), so a
failing scenario names every criterion it got wrong at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

SCENARIOS_DIR = Path(__file__).resolve().parent
ORDER_NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
"""The clock of `order_date_client` (ra/, continued/): the scenarios' order date. The other
folders post with the shared `client`, whose clock is `tests.conftest.PINNED_NOW`."""
ORDER_DATE = "2026-11-20"
"""The date every scenario's draft orders carry (or none)."""

EVALUATION_KEY = "com.anakinra-cds.evaluation"
ASSOCIATED_KEY = "davinci-crd.associated-resource"
SERVICES = {"order-sign": "anakinra-order-sign", "order-select": "anakinra-order-select"}
OUTCOMES = frozenset(
    {"criteria-met", "criteria-not-met", "documentation-needed", "off-label-review"}
)
STATUSES = frozenset({"met", "not-met", "unknown"})
INDICATORS = frozenset({"info", "warning", "critical"})
SEVERITY = {"info": 0, "warning": 1, "critical": 2}

Json = dict[str, Any]


# --- scenario files -------------------------------------------------------------------------


def scenario_files(folder: str) -> list[Path]:
    """The request files of one scenario folder, in name order."""
    return sorted((SCENARIOS_DIR / folder).glob("*.json"))


def load(path: Path) -> tuple[Json, Json]:
    """The request body as an EHR would send it, and the `_expect` taken out of it."""
    body: Json = json.loads(path.read_text("utf-8"))
    expect: Json = body.pop("_expect")
    return body, expect


def scenario_params(files: Sequence[Path], known_gaps: Mapping[str, str]) -> list[Any]:
    """One pytest param per file, id'd by its name; a known gap is a strict xfail (it turns
    red as soon as the service is fixed, so the entry can be removed)."""
    params = []
    for path in files:
        marks = []
        if path.stem in known_gaps:
            marks.append(pytest.mark.xfail(strict=True, reason=known_gaps[path.stem]))
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


def assert_known_gaps_exist(known_gaps: Mapping[str, str], files: Sequence[Path]) -> None:
    assert set(known_gaps) <= {p.stem for p in files}


def assert_expectation_words(path: Path, body: Json, expect: Json) -> None:
    """The hook is one we serve, the expectation says why, and its statuses and card
    indicators are known words."""
    assert body["hook"] in SERVICES, path.stem
    assert expect["why"], path.stem
    assert set(expect.get("criteria", {}).values()) <= STATUSES, path.stem
    assert set(expect.get("cards", [])) <= INDICATORS, path.stem


def assert_drafts_dated(path: Path, drafts: Iterable[Json]) -> None:
    """Every draft order is authored on the order date (or carries no date)."""
    for draft in drafts:
        assert draft["resource"].get("authoredOn", ORDER_DATE) == ORDER_DATE, path.stem


def assert_evaluated_expectation(path: Path, body: Json, expect: Json) -> None:
    """An expectation of one evaluated order: a known outcome, a section, dated drafts."""
    assert expect["outcome"] in OUTCOMES, path.stem
    assert expect["section"], path.stem
    assert_drafts_dated(path, body["context"]["draftOrders"]["entry"])


def well_formed(
    files: Sequence[Path],
    known_gaps: Mapping[str, str],
    *,
    at_least: int = 30,
    at_most: int | None = None,
) -> Iterator[tuple[Path, Json, Json]]:
    """Each file's path, body and `_expect`, once the checks every folder shares passed: there
    are `at_least` (to `at_most`) files, every known gap names one of them, and each file's
    expectation uses known words."""
    assert len(files) >= at_least, f"only {len(files)} scenario files"
    assert at_most is None or len(files) <= at_most, f"{len(files)} scenario files"
    assert_known_gaps_exist(known_gaps, files)
    for path in files:
        body, expect = load(path)
        assert_expectation_words(path, body, expect)
        yield path, body, expect


# --- the call ---------------------------------------------------------------------------------


def post_scenario(client: FlaskClient, body: Json) -> Json:
    """Posts the request to the service of its hook; the answer must be a 200 JSON object."""
    response = client.post(f"/cds-services/{SERVICES[body['hook']]}", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    data = response.get_json()
    assert isinstance(data, dict)
    return data


def assert_no_differences(path: Path, expect: Json, diffs: Sequence[str]) -> None:
    assert not diffs, f"{path.stem} ({expect['why']}):\n" + "\n".join(diffs)


Differences = Callable[[Json, Json], list[str]]
"""(response, expect) -> what the response gets wrong."""


def run_scenario(client: FlaskClient, path: Path, differences: Differences) -> None:
    """Posts the file's request and fails with every difference from its `_expect`."""
    body, expect = load(path)
    response = post_scenario(client, body)
    assert_no_differences(path, expect, differences(response, expect))


# --- reading the answer -----------------------------------------------------------------------


def evaluations_of(response: Json, order: str) -> list[Json]:
    """The evaluations the response's extension reports for `order`."""
    found: list[Json] = [
        e for e in response.get("extension", {}).get(EVALUATION_KEY, []) if e.get("order") == order
    ]
    return found


def the_evaluation(response: Json, order: str) -> Json:
    """The one evaluation of `order`: an order evaluated twice, or dropped, fails the test."""
    found = evaluations_of(response, order)
    assert len(found) == 1, f"expected one evaluation of {order}, got {len(found)}: {found}"
    return found[0]


def cards_for(response: Json, order: str) -> list[Json]:
    """The cards whose CRD associated-resource extension names `order`."""
    cards: list[Json] = response.get("cards", [])
    return [
        card
        for card in cards
        if {"reference": order} in card.get("extension", {}).get(ASSOCIATED_KEY, [])
    ]


# --- comparisons ------------------------------------------------------------------------------


def field_differences(
    evaluation: Json, expect: Json, keys: Iterable[str] = (), *, optional: Iterable[str] = ()
) -> list[str]:
    """The evaluation has exactly `_expect`'s value for each of `keys` (which `_expect` must
    name) and for each of `optional` that `_expect` names."""
    wanted = [*keys, *(key for key in optional if key in expect)]
    return [
        f"{key}: got {evaluation.get(key)!r}, expected {expect[key]!r}"
        for key in wanted
        if evaluation.get(key) != expect[key]
    ]


def criteria_differences(evaluation: Json, expect: Json) -> list[str]:
    """Every criterion `_expect` names has exactly that status (the others are free)."""
    found = {c["id"]: c for c in evaluation.get("criteria", [])}
    diffs: list[str] = []
    for criterion, status in expect.get("criteria", {}).items():
        got = found.get(criterion)
        if got is None or got["status"] != status:
            actual = "absent" if got is None else f"{got['status']} ({got.get('reason')})"
            diffs.append(f"{criterion}: got {actual}, expected {status}")
    return diffs


def details_differences(evaluation: Json, expect: Json) -> list[str]:
    """Every value `_expect["details"]` names is in that criterion's details."""
    found = {c["id"]: c for c in evaluation.get("criteria", [])}
    diffs: list[str] = []
    for criterion, wanted in expect.get("details", {}).items():
        details = found.get(criterion, {}).get("details", {})
        diffs.extend(
            f"{criterion}.{key}: got {details.get(key)!r}, expected {value!r}"
            for key, value in wanted.items()
            if details.get(key) != value
        )
    return diffs


def card_differences(cards: Sequence[Json], expect: Json) -> list[str]:
    """The order's card indicators (sorted) are `_expect["cards"]` when it names them, and
    the cards contain every text in `_expect["mentions"]`."""
    diffs: list[str] = []
    if "cards" in expect:
        indicators = sorted(card["indicator"] for card in cards)
        if indicators != sorted(expect["cards"]):
            diffs.append(f"cards: got {indicators}, expected {sorted(expect['cards'])}")
    text = json.dumps(cards)
    diffs.extend(f"cards do not mention {m}" for m in expect.get("mentions", []) if m not in text)
    return diffs


def proposed_orders(cards: Sequence[Json]) -> list[str]:
    """The first code of every order the cards' suggestions would create (the pack's
    companions and alternates), in card and suggestion order. A Task (the documentation
    form to complete) is not an order."""
    codes = []
    for card in cards:
        for suggestion in card.get("suggestions", []):
            for action in suggestion.get("actions", []):
                resource = action.get("resource") or {}
                if resource.get("resourceType") == "Task":
                    continue
                concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
                if action.get("type") == "create" and concept.get("coding"):
                    codes.append(str(concept["coding"][0]["code"]))
    return codes


def proposed_order_differences(cards: Sequence[Json], expect: Json) -> list[str]:
    """The orders the cards propose are `_expect["proposed_orders"]` when it names them."""
    if "proposed_orders" not in expect:
        return []
    got = proposed_orders(cards)
    if got != expect["proposed_orders"]:
        return [f"proposed orders: got {got}, expected {expect['proposed_orders']}"]
    return []


def order_differences(response: Json, evaluation: Json, order: str, expect: Json) -> list[str]:
    """The criteria statuses of the order's evaluation, and its cards' indicators and text."""
    diffs = criteria_differences(evaluation, expect)
    diffs += card_differences(cards_for(response, order), expect)
    return diffs


def most_severe_differences(cards: Sequence[Json], evaluation: Json, expect: Json) -> list[str]:
    """The most severe indicator among `cards` is `_expect["indicator"]`. There must be a card,
    unless the order meets the criteria and the coverage-information system action says so:
    a card would only repeat it (CRD resp-12); the action is informational, like the card it
    replaces."""
    indicators = [card["indicator"] for card in cards]
    informed = (evaluation.get("coverageInformation") or {}).get("status") == "sent"
    if not indicators and evaluation.get("outcome") == "criteria-met" and informed:
        if expect["indicator"] != "info":
            return [f"no card, expected {expect['indicator']} at most"]
        return []
    if not indicators:
        return ["no card and no coverage information for the order"]
    if max(indicators, key=SEVERITY.__getitem__) != expect["indicator"]:
        return [f"indicators: got {indicators}, expected {expect['indicator']} at most"]
    return []
