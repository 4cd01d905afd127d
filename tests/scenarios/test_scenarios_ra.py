"""Rheumatoid arthritis scenarios (I.A initial, II.A continued) sent through the real service.

Each file under `ra/` is an order-sign request an EHR could send, with `_expect` written from
the policy text and INTERPRETATION.md (not from our answers). The test strips `_expect`, posts
the request to the Flask app with the clock pinned to the order date, and compares the
machine-readable evaluation of the Kineret draft order, the cards' indicator and, where the
file names them (`proposed_orders`), the codes of the orders the cards offer instead.
Where the service disagrees with the documents the scenario keeps the correct expectation
and is listed in KNOWN_GAPS (strict xfail: the test turns red once the service is fixed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.scenarios import harness

SCENARIO_FILES = harness.scenario_files("ra")
ORDER_REF = "MedicationRequest/draft-kineret"

# Scenario file name -> why the service is known to answer differently from the documents.
KNOWN_GAPS: dict[str, str] = {}


def _differences(response: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    """Criteria, pathway, section, outcome and details of the Kineret order's evaluation, and
    the most severe indicator among the response's cards (there must be one, unless criteria
    met and the coverage-information system action says so)."""
    evaluation = harness.the_evaluation(response, ORDER_REF)
    diffs = harness.criteria_differences(evaluation, expect)
    diffs += harness.field_differences(evaluation, expect, ("pathway", "section", "outcome"))
    diffs += harness.details_differences(evaluation, expect)
    diffs += harness.proposed_order_differences(harness.cards_for(response, ORDER_REF), expect)
    diffs += harness.most_severe_differences(response["cards"], evaluation, expect)
    return diffs


def test_there_are_enough_scenarios() -> None:
    assert len(SCENARIO_FILES) >= 30


def test_known_gaps_name_existing_scenarios() -> None:
    harness.assert_known_gaps_exist(KNOWN_GAPS, SCENARIO_FILES)


@pytest.mark.parametrize("path", harness.scenario_params(SCENARIO_FILES, KNOWN_GAPS))
def test_ra_scenario(path: Path, order_date_client: FlaskClient) -> None:
    body, expect = harness.load(path)
    assert body["hook"] == "order-sign", path.stem
    response = harness.post_scenario(order_date_client, body)
    harness.assert_no_differences(path, expect, _differences(response, expect))
