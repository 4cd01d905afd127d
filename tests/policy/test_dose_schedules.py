"""`dose-limit` per administration and schedule: weekly doses, a single loading dose, mg/kg
limits with caps, age bands, quantity limits in units of the product (vials), and the
dose card's suggestion for those schedules.

The orders here are coded as the first policy's drug only because that is the drug the
mapping routes today; the product's unit is a test vial (220 mg powder, 80 mg/mL, at most
160 mg a vial), passed as data as a pack's drug.json gives it."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import yaml

from cds_service.cards import render
from cds_service.cards.dose import ScheduleSuggestion, suggest_schedule
from cds_service.policy.checks import EvalContext, run_check
from cds_service.policy.definition import DEFAULT_POLICY_PATH, PolicyFileError, parse_policy
from cds_service.policy.model import Pathway, Status
from fhir_mappings import build_facts
from fhir_mappings.dosing import compute_dose
from fhir_mappings.facts import PolicyFacts
from fhir_mappings.product_unit import ProductUnit
from tests.mappings.mapping_builders import PATIENT_RES, context, dosage, every, med_request, qty
from tests.mappings.mapping_builders import weight as weight_obs

Res = dict[str, Any]
ORDER_DATE = date(2026, 3, 1)
VIAL = ProductUnit.from_json(
    {
        "name": "vial",
        "plural": "vials",
        "ucum": "{vial}",
        "aliases": ["VIAL"],
        "content_mg": 220,
        "content_ml": 2.75,
        "deliverable_mg": 160,
    }
)
WEEKLY = every(1, 1, "wk")
ONCE = {"repeat": {"count": 1}}

CAPS_PARAMS: Res = {
    "interval_days": 7,
    "bands": [
        {"min_age": 18, "loading": {"mg": 320}, "maintenance": {"mg": 160}},
        {
            "min_age": 12,
            "max_age": 17,
            "loading": {"mg_per_kg": 4.4, "max_mg": 320},
            "maintenance": {"mg_per_kg": 2.2, "max_mg": 160},
        },
    ],
    "quantity": {"units_per_28_days": 4, "first_week_units": 2},
}
DIRA_PARAMS: Res = {
    "interval_days": 7,
    "bands": [
        {"min_age": 18, "maintenance": {"mg": 320}},
        {"max_age": 17, "maintenance": {"mg_per_kg": 4.4, "max_mg": 320}},
    ],
    "quantity": {"units_per_28_days": 8},
}
CONTINUED_PARAMS: Res = {**CAPS_PARAMS, "loading_allowed": False}


def supply(units: float, days: int = 28) -> Res:
    return {
        "quantity": qty(units, "vial", "{vial}"),
        "expectedSupplyDuration": {"value": days, "unit": "days", "code": "d"},
    }


def facts_for(
    dosages: list[Res],
    *,
    birth: str = "1980-01-15",
    kg: float | None = None,
    dispense: Res | None = None,
) -> PolicyFacts:
    extra: Res = {"dispenseRequest": dispense} if dispense else {}
    order = med_request(dosages=dosages, **extra)
    resources: list[Res] = [{**PATIENT_RES, "birthDate": birth}]
    if kg is not None:
        resources.append(weight_obs("w", kg, "kg", "kg", "2026-02-20"))
    mapped = build_facts(context(order), resources, drugs={"anakinra"}, units={"anakinra": VIAL})
    return mapped.orders[0]


def ctx() -> EvalContext:
    return EvalContext(
        order_date=ORDER_DATE,
        pathway=Pathway.INITIAL,
        section="I.A",
        indication="caps",
        claim=(),
        drug_valueset="anakinra",
        current_drug_records=(),
        first_drug_date=None,
    )


def check(params: Res, facts: PolicyFacts) -> tuple[Status, str, Any]:
    verdict = run_check("dose-limit", params, facts, ctx())
    return verdict.status, verdict.reason, verdict.details


def test_weekly_weight_based_dose_of_a_teenager_is_over_the_mg_per_kg_cap():
    facts = facts_for([dosage(160, timing=WEEKLY)], birth="2011-06-01", kg=40)
    status, reason, details = check(CAPS_PARAMS, facts)
    assert facts.order.dose.interval_days == 7
    assert status is Status.NOT_MET
    assert "2.2 mg/kg (88 mg at 40 kg)" in reason
    assert details["suggested_maintenance_mg"] == 88


def test_loading_dose_then_weekly_maintenance_for_an_adult_is_within_the_limit():
    facts = facts_for([dosage(320, timing=ONCE), dosage(160, timing=WEEKLY)], dispense=supply(5))
    dose = facts.order.dose
    assert (dose.loading_mg, dose.maintenance_mg, dose.interval_days) == (320, 160, 7)
    status, reason, details = check(CAPS_PARAMS, facts)
    assert status is Status.MET, reason
    assert details["loading_units"] == 2  # ceil(320 / 160)
    assert details["limit_dispense_units"] == 5  # 2 in the loading week, then 4 per 28 days


def test_a_second_loading_dose_on_continued_therapy_is_not_met():
    facts = facts_for([dosage(320, timing=ONCE), dosage(160, timing=WEEKLY)])
    status, reason, details = check(CONTINUED_PARAMS, facts)
    assert status is Status.NOT_MET
    assert "no new loading dose" in reason
    assert details["loading_not_allowed"] is True


def test_320_mg_weekly_is_within_the_dira_limit_for_an_adult_but_not_the_caps_limit():
    facts = facts_for([dosage(320, timing=WEEKLY)], dispense=supply(8))
    assert check(DIRA_PARAMS, facts)[0] is Status.MET
    assert check(CAPS_PARAMS, facts)[0] is Status.NOT_MET


def test_eight_vials_in_28_days_meet_the_dira_quantity_but_not_the_caps_quantity():
    facts = facts_for([dosage(160, timing=WEEKLY)], dispense=supply(8))
    caps_status, caps_reason, caps = check(CAPS_PARAMS, facts)
    assert caps_status is Status.NOT_MET
    assert "8 vials for 28 days exceeds the limit of 4 vials" in caps_reason
    assert caps["excess"] == ["quantity"]
    assert caps["suggested_dispense_units"] == 4
    assert check(DIRA_PARAMS, facts)[0] is Status.MET
    four = facts_for([dosage(160, timing=WEEKLY)], dispense=supply(4))
    assert check(CAPS_PARAMS, four)[0] is Status.MET


def test_a_dose_twice_a_week_is_more_often_than_weekly():
    facts = facts_for([dosage(160, timing=every(2, 1, "wk"))])
    status, reason, details = check(CAPS_PARAMS, facts)
    assert status is Status.NOT_MET
    assert "more often than once weekly" in reason
    assert "interval" in details["excess"]


def test_a_dose_in_vials_or_ml_is_read_through_the_product_unit():
    in_vials = compute_dose([dosage(2, "vials", "{vial}", timing=WEEKLY)], None, product=VIAL)
    in_ml = compute_dose([dosage(2, "mL", "mL", timing=WEEKLY)], None, product=VIAL)
    assert in_vials.maintenance_mg == 320
    assert in_ml.maintenance_mg == 160  # 2 mL at 80 mg/mL
    unknown = compute_dose([dosage(2, "vials", "{vial}", timing=WEEKLY)], None)
    assert unknown.maintenance_mg is None  # no unit given: never a guess


def test_a_text_sig_once_weekly_is_read_as_weekly():
    line = {"text": "160 mg subcutaneously once weekly"}
    dose = compute_dose([line], None, product=VIAL)
    assert (dose.maintenance_mg, dose.interval_days) == (160, 7)


def test_no_age_band_for_the_age_is_not_met_and_no_weight_is_unknown():
    child = facts_for([dosage(100, timing=WEEKLY)], birth="2018-01-01", kg=25)
    assert check(CAPS_PARAMS, child)[0] is Status.NOT_MET
    teen = facts_for([dosage(80, timing=WEEKLY)], birth="2011-06-01")
    assert check(CAPS_PARAMS, teen)[0] is Status.UNKNOWN


def suggestion(facts: PolicyFacts, params: Res) -> ScheduleSuggestion:
    details = run_check("dose-limit", params, facts, ctx()).details
    proposal = suggest_schedule(facts.order.resource, details, VIAL)
    assert proposal is not None
    return proposal


def test_the_suggestion_sets_the_weekly_dose_at_the_weight_limit_and_keeps_the_schedule():
    facts = facts_for([dosage(160, timing=WEEKLY)], birth="2011-06-01", kg=40)
    proposal = suggestion(facts, CAPS_PARAMS)
    assert proposal.label == "88 mg once weekly"
    line = proposal.resource["dosageInstruction"][0]
    assert line["doseAndRate"][0]["doseQuantity"]["value"] == 88
    assert line["timing"] == WEEKLY
    assert (
        facts.order.resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"]
        == 160
    )  # the draft order itself is never changed


def test_the_suggestion_keeps_the_orders_unit_when_the_new_dose_is_whole_vials():
    facts = facts_for([dosage(2, "vials", "{vial}", timing=WEEKLY)])
    proposal = suggestion(facts, CAPS_PARAMS)
    quantity = proposal.resource["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]
    assert (quantity["value"], quantity["code"]) == (1, "{vial}")
    assert proposal.label == "160 mg once weekly"


def test_a_second_loading_dose_is_dropped_and_a_too_frequent_dose_made_weekly():
    facts = facts_for([dosage(320, timing=ONCE), dosage(160, timing=every(2, 1, "wk"))])
    proposal = suggestion(facts, CONTINUED_PARAMS)
    lines = proposal.resource["dosageInstruction"]
    assert len(lines) == 1
    assert lines[0]["timing"]["repeat"] == {"frequency": 1, "period": 1, "periodUnit": "wk"}
    assert proposal.label == "160 mg once weekly"


def test_only_the_quantity_over_the_limit_gives_a_quantity_suggestion_in_vials():
    facts = facts_for([dosage(160, timing=WEEKLY)], dispense=supply(8))
    proposal = suggestion(facts, CAPS_PARAMS)
    assert proposal.label == ""
    assert proposal.quantity_words == "4 vials for 28 days"
    assert proposal.resource["dispenseRequest"]["quantity"]["value"] == 4
    assert proposal.resource["dosageInstruction"] == facts.order.resource["dosageInstruction"]


def test_the_dose_table_names_the_unit_and_the_schedule():
    facts = facts_for([dosage(160, timing=every(2, 1, "wk"))], dispense=supply(8))
    details = run_check("dose-limit", CAPS_PARAMS, facts, ctx()).details
    table = render._schedule_table(details, VIAL)
    assert "| How often | every 3.5 days | at most once weekly |" in table
    assert "| Dispensed for 28 days | 8 vials | 4 vials |" in table


def _policy_with_dose_params(params: Res) -> Res:
    data: Res = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    for section in data["sections"]:
        for criterion in section.get("criteria", []):
            if criterion.get("check") == "dose-limit" and "params" in criterion:
                criterion["params"] = params
                return data
    raise AssertionError("no dose-limit criterion")


def test_schedule_parameters_load_and_a_malformed_one_names_its_place():
    parse_policy(_policy_with_dose_params(CAPS_PARAMS), "good.yaml")
    bad = {**CAPS_PARAMS, "quantity": {"vials_per_month": 4}}
    with pytest.raises(PolicyFileError, match=r"params\.quantity: expected"):
        parse_policy(_policy_with_dose_params(bad), "bad.yaml")
    bad_band = {"bands": [{"min_age": 18, "loading": {"mg": 320}}]}
    with pytest.raises(PolicyFileError, match="maintenance is required"):
        parse_policy(_policy_with_dose_params(bad_band), "bad.yaml")
