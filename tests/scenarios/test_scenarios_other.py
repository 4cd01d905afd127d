"""Clinical scenarios for NOMID / CAPS, DIRA, COVID-19, off-label use, combinations,
hypersensitivity and dose arithmetic, posted as an EHR would post them.

Each file in `other/` is one CDS Hooks request (order-sign or order-select, prefetch with
FHIR R4 resources, order date 2026-11-20) plus `_expect`, written from the policy text and
policy/INTERPRETATION.md, not from the code:

    "_expect": {
      "outcome": "criteria-met" | "criteria-not-met" | "documentation-needed" | "off-label-review",
      "section": "I.B" ...,              # the section the order is evaluated under
      "criteria": {"I.B.4": "met", ...}, # statuses that must be exactly these (others free)
      "cards": ["critical"],             # optional: indicators of the order's cards (sorted)
      "mentions": ["CP.PMN.53"],         # optional: text the order's cards must contain
      "order": "MedicationRequest/...",  # optional: the evaluated draft (default below)
      "why": "policy clause / INTERPRETATION line"
    }

`_expect` is removed before the request is sent. Where the service disagrees with the
documents the scenario keeps the documents' answer and is listed in `KNOWN_GAPS`
(strict xfail: it turns red as soon as the service is fixed, so the entry can be removed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.scenarios import harness

SCENARIO_FILES = harness.scenario_files("other")
DEFAULT_ORDER = "MedicationRequest/draft-anakinra-1"

KNOWN_GAPS: dict[str, str] = {}


def _differences(response: dict[str, Any], expect: dict[str, Any]) -> list[str]:
    order = expect.get("order", DEFAULT_ORDER)
    evaluation = harness.the_evaluation(response, order)
    diffs = harness.field_differences(evaluation, expect, ("outcome", "section"))
    return diffs + harness.order_differences(response, evaluation, order, expect)


def test_scenario_files_are_well_formed() -> None:
    """Every expectation uses known words, and every known gap names an existing file."""
    for path, body, expect in harness.well_formed(SCENARIO_FILES, KNOWN_GAPS):
        assert body["context"]["draftOrders"]["entry"], path.stem
        harness.assert_evaluated_expectation(path, body, expect)


@pytest.mark.parametrize("path", harness.scenario_params(SCENARIO_FILES, KNOWN_GAPS))
def test_scenario_matches_policy(client: FlaskClient, path: Path) -> None:
    harness.run_scenario(client, path, _differences)
