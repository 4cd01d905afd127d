"""Run one check on facts described like a case (see `case_builder`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from cds_service.policy.checks import CHECKS, EvalContext, Verdict
from cds_service.policy.model import Pathway, Status
from tests.policy.case_builder import build_facts


def run(
    check: str,
    params: Mapping[str, Any],
    facts: Mapping[str, Any] | None = None,
    *,
    first_drug_day: int | None = None,
) -> Verdict:
    """The verdict of `check` with `params` on the facts of `facts` (a case's `facts`);
    `first_drug_day`: the drug's first date, in days from the order date (-200)."""
    built, today = build_facts(dict(facts or {}))
    ctx = EvalContext(
        order_date=today,
        pathway=Pathway.INITIAL if first_drug_day is None else Pathway.CONTINUED,
        section="I.A",
        indication="any",
        claim=(),
        drug_valueset="rilonacept",
        current_drug_records=(),
        first_drug_date=None if first_drug_day is None else today + timedelta(days=first_drug_day),
    )
    verdict = CHECKS[check].fn(params, built, ctx)
    assert verdict.status in CHECKS[check].statuses_for(params), (check, verdict)
    return verdict


def status(*args: Any, **kwargs: Any) -> Status:
    return run(*args, **kwargs).status
