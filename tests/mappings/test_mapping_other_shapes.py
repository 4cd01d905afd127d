"""Values in other shapes (issue 12): scores sent as valueString and text-only sigs are read
where they can mean one thing only, and left unknown with the reason otherwise."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cds_service.policy.engine import evaluate, load_policy
from cds_service.policy.model import Decision, Status
from cds_service.policy.packs import default_registry
from fhir_mappings import dosing
from fhir_mappings.dosing import read_sig_text
from fhir_mappings.facts import DoseFacts, PolicyFacts
from tests.mappings.mapping_builders import (
    ICD,
    LOINC,
    PATIENT_RES,
    cc,
    condition,
    context,
    dosage,
    every,
    med_request,
    observation,
)
from tests.routed import build_facts

Res = dict[str, Any]
CDAI = cc(LOINC, "88982-4", "Rheumatoid arthritis disease activity level [CDAI]", text="CDAI")
RA = condition("ra", cc(ICD, "M06.9", "Rheumatoid arthritis, unspecified"))


def score(value_string: str, code: Res | None = None) -> Res:
    obs = observation("s1", code or CDAI, when="2026-02-20")
    obs["valueString"] = value_string
    return obs


def compute_dose(dosages: list[Res], weight: None) -> DoseFacts:
    """The dose arithmetic with the product's unit (a syringe) from its pack's drug.json."""
    return dosing.compute_dose(dosages, weight, product=default_registry().units["anakinra"])


def facts_for(*resources: Res, order: Res | None = None) -> PolicyFacts:
    return build_facts(context(order or med_request()), [PATIENT_RES, RA, *resources]).orders[0]


def decide(facts: PolicyFacts) -> Decision:
    return evaluate(load_policy(), facts, date(2026, 3, 1))


def criterion(decision: Decision, cid: str) -> Any:
    return next(r for r in decision.criteria if r.id == cid)


@pytest.mark.parametrize(("text", "value"), [("12.5", 12.5), ("12.5 points", 12.5), (" 12 ", 12.0)])
def test_a_cdai_sent_as_text_is_read_as_its_number(text: str, value: float):
    facts = facts_for(score(text))
    assert [m.value for m in facts.measurements if m.kind == "cdai"] == [value]
    result = criterion(decide(facts), "I.A.6")
    assert result.status is Status.MET
    assert result.evidence == ("Observation/s1",)


@pytest.mark.parametrize(
    ("text", "why"),
    [(">20", "inequality"), ("high", "words"), ("10-12", "range"), ("12 or 14", "more than one")],
)
def test_a_cdai_text_that_is_not_one_number_is_unknown_and_says_why(text: str, why: str):
    facts = facts_for(score(text))
    assert [m.value for m in facts.measurements if m.kind == "cdai"] == [None]
    assert any(p.startswith("Observation/s1: valueString is") and why in p for p in facts.problems)
    assert text not in " ".join(facts.problems)  # problems never quote the value
    result = criterion(decide(facts), "I.A.6")
    assert result.status is Status.UNKNOWN
    assert why in result.reason
    assert result.evidence == ("Observation/s1",)


def sig(text: str, **extra: Any) -> Res:
    return {"text": text, **extra}


@pytest.mark.parametrize(
    ("text", "mg_per_day"),
    [
        ("inject 100 mg under the skin once daily", 100),
        ("100 mg subcutaneously daily", 100),
        ("Inject 100mg SC q24h", 100),
        ("100 mg every other day", 50),
        ("inject 1 syringe (100 mg) daily", 100),
        ("Inject 0.67 mL (100 mg) subcutaneously twice daily", 200),
        ("100 mg SC daily x 10 days", 100),  # the COVID-19 EUA course: x N days is a length
    ],
)
def test_a_text_only_sig_is_read_when_unambiguous(text: str, mg_per_day: float):
    dose = compute_dose([sig(text)], None)
    assert dose.mg_per_day == pytest.approx(mg_per_day)
    assert dose.from_text
    assert dose.unknown_reasons == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("inject as directed", "as directed"),
        ("100 mg in the morning and 50 mg at night daily", "more than one dose amount"),
        ("100-200 mg daily", "dose range"),
        ("100 mg daily for 3 days then 100 mg every other day", "changing dose"),
        ("taper: 100 mg daily", "changing dose"),
        ("100 mg", "no frequency"),
        ("100 mg daily x2", "frequency words"),
        ("inject daily", "no dose"),
        ("100 mg as needed", "as needed"),
    ],
)
def test_an_ambiguous_text_sig_is_unknown_with_the_reason(text: str, reason: str):
    dose = compute_dose([sig(text)], None)
    assert dose.mg_per_day is None
    assert any(reason in r for r in dose.unknown_reasons), dose.unknown_reasons


def test_structured_fields_win_over_the_text():
    line = dosage(100, "mg", "mg", timing=every(2))
    line["text"] = "inject 100 mg once daily"
    dose = compute_dose([line], None)
    assert dose.mg_per_day == 200
    assert not dose.from_text


def test_the_text_fills_a_missing_frequency_only_when_it_states_the_same_dose():
    agrees = dosage(100, "mg", "mg")
    agrees["text"] = "100 mg subcutaneously daily"
    assert compute_dose([agrees], None).mg_per_day == 100
    differs = dosage(100, "mg", "mg")
    differs["text"] = "200 mg subcutaneously daily"
    dose = compute_dose([differs], None)
    assert dose.mg_per_day is None
    assert any("differs from the coded dose" in r for r in dose.unknown_reasons)


def test_a_text_sig_over_the_limit_is_not_met_on_the_order():
    order = med_request(dosageInstruction=[sig("Inject 100mg SC q12h")])
    result = criterion(decide(facts_for(order=order)), "I.A.8")
    assert result.status is Status.NOT_MET


units = st.sampled_from(["mg", "mg", "syringe", "mL"])
amounts = st.integers(min_value=1, max_value=400)
frequencies = st.sampled_from(["daily", "once daily", "twice daily", "every other day", "q24h"])


def _mg(value: int, unit: str) -> float:
    return {"mg": 1.0, "syringe": 100.0, "mL": 100 / 0.67}[unit] * value


@given(amounts, units, amounts, units, frequencies, st.booleans())
def test_two_different_amounts_never_give_a_dose(
    a: int, unit_a: str, b: int, unit_b: str, frequency: str, joined: bool
):
    if abs(_mg(a, unit_a) - _mg(b, unit_b)) < 0.01:
        return
    glue = " and " if joined else " ("
    text = f"inject {a} {unit_a}{glue}{b} {unit_b} subcutaneously {frequency}"
    assert read_sig_text(text).amount is None
    assert compute_dose([sig(text)], None).mg_per_day is None


@given(amounts, frequencies)
def test_one_amount_and_one_frequency_are_read(amount: int, frequency: str):
    per_day = {"daily": 1, "once daily": 1, "twice daily": 2, "every other day": 0.5, "q24h": 1}
    dose = compute_dose([sig(f"Inject {amount} mg under the skin {frequency}")], None)
    assert dose.mg_per_day == pytest.approx(amount * per_day[frequency])
