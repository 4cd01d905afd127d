"""Rilonacept (Arcalyst, IL1.RIL.01) scenarios sent through the real service: the second data
path of the pack's cases.

Each JSON file here is an order-sign request an EHR could send (a FHIR R4 chart as prefetch,
under the keys of the order-sign service, and the Arcalyst draft order), with `_expect`
written from the policy text and the pack's INTERPRETATION.md (not from our answers). The
test strips `_expect`, posts the request to the Flask app with the clock pinned to the order
date, and compares the machine-readable evaluation of the Arcalyst order (outcome, pathway,
section, per-criterion statuses), the most severe card indicator and, where the file names
them (`proposed_orders`), the codes of the orders the cards offer to add. Where the service
disagrees with the documents the scenario keeps the documents' answer and is listed in
KNOWN_GAPS (strict xfail: it turns red as soon as the service is fixed).
Regenerate the files with `python -m tests.scenarios.rilonacept.make_scenarios`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.scenarios import harness

FOLDER = "rilonacept"
SCENARIO_FILES = harness.scenario_files(FOLDER)
ORDER = "MedicationRequest/draft-arcalyst"
POLICY_ID = "IL1.RIL.01"

# Scenario file name -> why the service is known to answer differently from the documents.
KNOWN_GAPS: dict[str, str] = {}


def _differences(response: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    """Outcome, pathway, section, criteria and details of the Arcalyst order's evaluation,
    the policy that decided it, the most severe card indicator and the cards' texts."""
    evaluation = harness.the_evaluation(response, ORDER)
    diffs = harness.field_differences(evaluation, expect, ("outcome", "pathway", "section"))
    policy = evaluation.get("policy", {})
    if policy.get("id") != POLICY_ID:
        diffs.append(f"decided by {policy}, expected {POLICY_ID}")
    diffs += harness.criteria_differences(evaluation, expect)
    diffs += harness.details_differences(evaluation, expect)
    cards = harness.cards_for(response, ORDER)
    diffs += harness.most_severe_differences(cards, evaluation, expect)
    diffs += harness.card_differences(cards, {"mentions": expect.get("mentions", [])})
    diffs += harness.proposed_order_differences(cards, expect)
    return diffs


def test_scenario_files_are_well_formed() -> None:
    """Enough scenarios, known words, dated drafts, the Arcalyst order in every request."""
    for path, body, expect in harness.well_formed(SCENARIO_FILES, KNOWN_GAPS, at_least=60):
        assert body["hook"] == "order-sign", path.stem
        drafts = body["context"]["draftOrders"]["entry"]
        assert any(f"MedicationRequest/{d['resource']['id']}" == ORDER for d in drafts)
        harness.assert_evaluated_expectation(path, body, expect)


@pytest.mark.parametrize("path", harness.scenario_params(SCENARIO_FILES, KNOWN_GAPS))
def test_rilonacept_scenario(path: Path, order_date_client: FlaskClient) -> None:
    harness.run_scenario(order_date_client, path, _differences)
