"""Dose, dispense and EUA-regimen suggestions as a prescriber would see them, and
summaries that keep what to do when the names are many."""

from __future__ import annotations

from dataclasses import replace as dc_replace
from typing import Any

from cds_service.cards import Evaluation, render_response
from cds_service.policy.model import Outcome, Status
from tests.cards.builders import (
    NOW,
    RA_MET,
    SETTINGS,
    criterion,
    decision,
    facts,
    medication_request,
    replace,
    uuid_counter,
)


def _render(evaluation: Evaluation, hook: str = "order-sign") -> dict[str, Any]:
    return render_response(
        hook, [evaluation], settings=SETTINGS, uuid_factory=uuid_counter(), now=NOW
    )


def _dispensed(resource: dict[str, Any], syringes_per_day: float) -> Evaluation:
    """NOMID at 30 kg, 104.99 mg once daily (within 8 mg/kg), dispensed at 2 a day."""
    base = facts(resource, mg_per_day=104.99, administrations_per_day=1, weight_kg=30.0)
    dose = dc_replace(base.order.dose, dispense_syringes_per_day=syringes_per_day)
    ordered = dc_replace(base, order=dc_replace(base.order, dose=dose))
    criteria = (
        criterion("I.B.1", check="diagnosis", reason="NOMID is recorded"),
        criterion(
            "I.B.4",
            Status.NOT_MET,
            check="dose-limit",
            reason="Dispensing 2 syringes/day exceeds the Appendix E quantity of 1/day",
            details={
                "ordered_mg_per_day": 104.99,
                "limit_mg_per_kg_per_day": 8.0,
                "weight_kg": 30.0,
                "limit_mg_per_day": 240.0,
                "ordered_mg_per_kg_per_day": 3.4997,
                "ordered_syringes_per_day": 1.0,
                "limit_syringes_per_day": 1.0,
                "syringe_band_mg": 105.0,
            },
        ),
    )
    return Evaluation(
        ordered,
        decision(Outcome.CRITERIA_NOT_MET, criteria, section="I.B", indication="nomid"),
    )


def test_dispense_excess_keeps_the_dose_and_lowers_the_quantity() -> None:
    resource = medication_request(dose_mg=104.99, dispense=(56, 28))
    (card,) = _render(_dispensed(resource, 2.0))["cards"]
    assert "mg/kg/day is over" not in card["summary"]
    assert card["summary"].endswith("dispense 28 syringes for 28 days")
    (suggestion,) = card["suggestions"]
    new = suggestion["actions"][0]["resource"]
    assert new["dosageInstruction"] == resource["dosageInstruction"]
    assert new["dispenseRequest"]["quantity"]["value"] == 28


def test_dispense_in_ml_is_lowered_in_ml() -> None:
    resource = medication_request(dose_mg=104.99, dispense=(56, 28))
    resource["dispenseRequest"]["quantity"] = {"value": 37.52, "unit": "mL"}
    (card,) = _render(_dispensed(resource, 2.0))["cards"]
    new = card["suggestions"][0]["actions"][0]["resource"]
    assert new["dispenseRequest"]["quantity"] == {"value": 18.76, "unit": "mL"}


def test_a_dose_suggestion_never_raises_the_dose() -> None:
    # 30 mg twice daily: 60 mg/day but 2 syringes a day, over the RA limit of 1.
    resource = medication_request(dose_mg=30, frequency=2)
    criteria = replace(
        RA_MET,
        criterion(
            "I.A.8",
            Status.NOT_MET,
            check="dose-limit",
            reason="2 syringes/day ordered; the limit is 1 syringe a day",
            details={
                "ordered_mg_per_day": 60,
                "limit_mg_per_day": 100,
                "ordered_syringes_per_day": 2,
                "limit_syringes_per_day": 1,
            },
        ),
    )
    evaluation = Evaluation(
        facts(resource, mg_per_day=60, administrations_per_day=2),
        decision(Outcome.CRITERIA_NOT_MET, criteria),
    )
    (card,) = _render(evaluation)["cards"]
    assert card["summary"].startswith("Kineret 2 syringes a day is over the plan limit of 1")
    dose = card["suggestions"][0]["actions"][0]["resource"]["dosageInstruction"][0]
    assert dose["doseAndRate"][0]["doseQuantity"]["value"] == 60
    assert dose["timing"]["repeat"]["frequency"] == 1


def test_continued_dose_increase_over_limit_gets_the_dose_card() -> None:
    resource = medication_request(dose_mg=200)
    criteria = (
        criterion("II.A.1", check="currently-receiving", reason="On anakinra"),
        criterion(
            "II.A.4",
            Status.NOT_MET,
            check="dose-increase-limit",
            text="If request is for a dose increase, new dose does not exceed ... " * 4,
            reason="Dose increase from 80 mg/day to 200 mg/day exceeds 100 mg/day",
            details={"ordered_mg_per_day": 200.0, "limit_mg_per_day": 100.0},
        ),
    )
    evaluation = Evaluation(
        facts(resource, mg_per_day=200, administrations_per_day=1),
        decision(Outcome.CRITERIA_NOT_MET, criteria, section="II.A"),
    )
    response = _render(evaluation)
    (card,) = response["cards"]
    assert card["source"]["topic"]["code"] == "limits"
    assert card["suggestions"][0]["label"] == "Change the Kineret dose to 100 mg once daily"
    assert "new dose does not exceed" not in card["detail"]


def test_inpatient_covid_beyond_ten_days_suggests_the_eua_course() -> None:
    resource = medication_request(dose_mg=100, dispense=(14, 14))
    resource["dosageInstruction"][0]["timing"]["repeat"]["boundsDuration"]["value"] = 14
    criteria = (
        criterion(
            "I.D.1",
            Status.NOT_MET,
            check="care-setting",
            reason="Inpatient use: 14 days exceeds the EUA 10 days",
            details={
                "setting": "inpatient",
                "regimen_mg_per_day": 100.0,
                "regimen_max_days": 10,
                "ordered_mg_per_day": 100.0,
                "ordered_days": 14,
            },
        ),
    )
    evaluation = Evaluation(
        facts(resource),
        decision(Outcome.CRITERIA_NOT_MET, criteria, section="I.D", indication="covid-19"),
    )
    (card,) = _render(evaluation)["cards"]
    assert card["indicator"] == "warning"
    new = card["suggestions"][0]["actions"][0]["resource"]
    repeat = new["dosageInstruction"][0]["timing"]["repeat"]
    assert repeat["boundsDuration"]["value"] == 10
    assert new["dispenseRequest"]["quantity"]["value"] == 10
    assert new["dispenseRequest"]["expectedSupplyDuration"]["value"] == 10
    assert new["id"] == resource["id"]


def test_many_conflicting_drugs_shorten_the_list_not_the_action() -> None:
    drugs = ["abatacept", "adalimumab-adaz", "certolizumab pegol", "golimumab", "ustekinumab"]
    conflicts = {
        "conflicts": [{"drug": d, "ref": f"MedicationRequest/{i}"} for i, d in enumerate(drugs)]
    }
    criteria = replace(
        RA_MET,
        criterion(
            "III.B",
            Status.NOT_MET,
            check="no-concurrent-therapy",
            reason="Other biologics are active",
            details=conflicts,
        ),
    )
    evaluation = Evaluation(facts(), decision(Outcome.CRITERIA_NOT_MET, criteria))
    (card,) = _render(evaluation)["cards"]
    assert len(card["summary"]) < 140
    assert "…" not in card["summary"]
    assert card["summary"].endswith("Remove one of the therapies")
    assert "more:" in card["summary"]


def _ra_over(dose_quantity: dict[str, Any]) -> dict[str, Any]:
    """RA 2 syringes (200 mg) once daily, the limit 100 mg and 1 syringe a day, the order's
    dose written as `dose_quantity`."""
    resource = medication_request(dose_mg=200, dispense=(56, 28))
    resource["dosageInstruction"][0]["doseAndRate"] = [{"doseQuantity": dose_quantity}]
    over = criterion(
        "I.A.8",
        Status.NOT_MET,
        check="dose-limit",
        reason="200 mg/day ordered; the limit is 100 mg and 1 syringe a day",
        details={"ordered_mg_per_day": 200, "limit_mg_per_day": 100, "limit_syringes_per_day": 1},
    )
    evaluation = Evaluation(
        facts(resource, mg_per_day=200, administrations_per_day=1),
        decision(Outcome.CRITERIA_NOT_MET, replace(RA_MET, over)),
    )
    cards: list[dict[str, Any]] = _render(evaluation)["cards"]
    (card,) = cards
    return card


def _new_dose(card: dict[str, Any]) -> dict[str, Any]:
    action = card["suggestions"][0]["actions"][0]
    dose: dict[str, Any] = action["resource"]["dosageInstruction"][0]["doseAndRate"][0][
        "doseQuantity"
    ]
    return dose


def test_a_dose_fix_keeps_the_orders_own_unit_and_says_it_in_words() -> None:
    syringes = {
        "value": 2,
        "unit": "syringe",
        "system": "http://unitsofmeasure.org",
        "code": "{syringe}",
    }
    card = _ra_over(syringes)
    assert _new_dose(card) == {**syringes, "value": 1}  # the unit stays the order's
    # The words state the fix for a client that cannot apply the suggestion.
    assert "change to 1 syringe (100 mg) once daily" in card["summary"]
    assert (
        card["suggestions"][0]["label"]
        == "Change the Kineret dose to 1 syringe (100 mg) once daily"
    )


def test_a_dose_fix_in_ml_stays_in_ml() -> None:
    card = _ra_over(
        {"value": 1.34, "unit": "mL", "system": "http://unitsofmeasure.org", "code": "mL"}
    )
    assert _new_dose(card)["code"] == "mL"
    assert _new_dose(card)["value"] == 0.67
    assert "0.67 mL (100 mg)" in card["summary"]


def test_a_dose_in_pills_stays_in_pills() -> None:
    """The official sandbox writes a dose as UCUM {pill}: one unit of the product."""
    card = _ra_over({"value": 2, "unit": "{pill}", "code": "{pill}"})
    assert _new_dose(card) == {"value": 1, "unit": "{pill}", "code": "{pill}"}
    assert "1 syringe (100 mg) once daily" in card["summary"]


def test_a_dose_in_an_unknown_unit_is_converted_to_mg() -> None:
    card = _ra_over({"value": 2, "unit": "{puff}", "code": "{puff}"})
    assert _new_dose(card)["code"] == "mg"
    assert "change to 100 mg once daily" in card["summary"]
