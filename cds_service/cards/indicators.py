"""The indicator of every card, by the situation it is about (one rule, one table).

Da Vinci CRD (cards page): the indicator is chosen from the point of view of the clinician
deciding, not of the payer; `critical` is reserved for life-or-death or serious clinical
outcomes; a course of action that will hurt reimbursement is generally a `warning`; most
coverage requirements are `info`. So:

- critical: a clinical safety problem the policy names: a contraindicated combination
  (another biologic / JAK inhibitor, or a second order of the same drug), a recorded
  hypersensitivity, an active serious infection at the start of therapy.
- warning: signing as written will not be reimbursed: a use or setting the plan does not
  cover (including COVID-19 outpatient use, a coverage limit, not a safety stop), an
  off-label use that needs a review, a dose over the plan's limit, criteria not met,
  documentation the prior authorization needs and the chart does not show, a check that
  could not be completed.
- info: nothing to change in the order: the criteria are met (sent only without
  coverage information), a switch to remember, an order to add or a product to try.

The same situation always gets the same indicator: the renderer asks this table, never
writes an indicator of its own (tests/cards/test_cards_indicators.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, Literal

Indicator = Literal["info", "warning", "critical"]

SAFETY: Final = frozenset({"combination", "duplicate", "hypersensitivity", "active_condition"})
"""Card kinds about a clinical safety problem: the only critical ones."""

INDICATORS: Final[Mapping[str, Indicator]] = MappingProxyType(
    {
        "combination": "critical",
        "duplicate": "critical",
        "hypersensitivity": "critical",
        "active_condition": "critical",
        "care_setting": "warning",
        "not_covered": "warning",
        "off_label": "warning",
        "dose": "warning",
        "not_met": "warning",
        "step_therapy": "warning",
        "documentation_needed": "warning",
        "could_not_check": "warning",
        "criteria_met": "info",
        "switch": "info",
        "companion": "info",
        "alternate": "info",
    }
)
"""Card kind (as in `cds_service.crd.types.KIND_TYPES`) -> indicator."""


def indicator_for(kind: str) -> Indicator:
    """The indicator of a card kind; KeyError for a kind not in the table (a bug)."""
    return INDICATORS[kind]
