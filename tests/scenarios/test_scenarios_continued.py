"""Second round of clinical scenarios: continued therapy (section II) in depth.

Each file in `continued/` is one CDS Hooks request (order-sign or order-select, prefetch with
FHIR R4 resources, order date 2026-11-20) plus `_expect`, written from the policy text and
policy/INTERPRETATION.md, not from the service's answers. It covers the pathway switch
(MedicationRequest / MedicationStatement / MedicationDispense history, on-hold, ended 59 / 60 /
61 days ago, drafts, cancelled and entered-in-error records), II.A.2 baselines and Appendix G /
H bands, II.A.2.b responses, II.A.4 dose increases (RA, weight-based, Appendix E syringes),
II.B, II.C, several indications without a reason and order-select:

    "_expect": {
      "outcome": "criteria-met" | "criteria-not-met" | "documentation-needed" | "off-label-review",
      "pathway": "initial" | "continued",
      "section": "II.A" ...,
      "criteria": {"II.A.2": "met", ...},    # statuses that must be exactly these
      "details": {"II.A.2": {"baseline": 30}}, # optional: values in a criterion's details
      "approvalMonths": 12,                  # optional
      "indication": "nomid",                 # optional: the indication reported
      "considered": [["II.A", "criteria-met"], ...],  # optional: every indication evaluated
      "cards": ["info"],                     # optional: indicators of the order's cards
      "mentions": ["CP.PMN.53"],             # optional: text the order's cards must contain
      "why": "policy clause / INTERPRETATION line"
    }

The app's clock is pinned to the order date. Where the service disagrees with the documents
the scenario keeps the documents' answer and is listed in `KNOWN_GAPS` (strict xfail: it
turns red as soon as the service is fixed, so the entry can be removed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.scenarios import harness

SCENARIO_FILES = harness.scenario_files("continued")
ORDER = "MedicationRequest/draft-kineret"

KNOWN_GAPS: dict[str, str] = {}


def _considered_differences(evaluation: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    """Every indication evaluated, as [section, outcome] pairs, when `_expect` lists them."""
    if "considered" not in expect:
        return []
    got = sorted([c["section"], c["outcome"]] for c in evaluation.get("considered", []))
    if got != sorted(expect["considered"]):
        return [f"considered: got {got}, expected {sorted(expect['considered'])}"]
    return []


def _differences(response: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    evaluation = harness.the_evaluation(response, ORDER)
    diffs = harness.field_differences(
        evaluation,
        expect,
        ("outcome", "pathway", "section"),
        optional=("indication", "approvalMonths"),
    )
    diffs += harness.details_differences(evaluation, expect)
    diffs += _considered_differences(evaluation, expect)
    return diffs + harness.order_differences(response, evaluation, ORDER, expect)


@pytest.mark.parametrize("path", harness.scenario_params(SCENARIO_FILES, KNOWN_GAPS))
def test_continued_scenario_matches_policy(order_date_client: FlaskClient, path: Path) -> None:
    harness.run_scenario(order_date_client, path, _differences)


def test_continued_scenario_files_are_well_formed() -> None:
    """Every expectation uses known words, and every known gap names an existing file."""
    for path, body, expect in harness.well_formed(SCENARIO_FILES, KNOWN_GAPS):
        drafts = body["context"]["draftOrders"]["entry"]
        assert any(f"MedicationRequest/{d['resource']['id']}" == ORDER for d in drafts), path.stem
        if body["hook"] == "order-select":
            assert ORDER in body["context"]["selections"], path.stem
        assert expect["pathway"] in {"initial", "continued"}, path.stem
        harness.assert_evaluated_expectation(path, body, expect)
