"""Measurements, body weight and IL1RN genetic results."""

from __future__ import annotations

from datetime import date

import pytest

from fhir_mappings.dosing import banded_units_per_day
from fhir_mappings.facts import PolicyFacts
from tests.mappings.mapping_builders import (
    LOINC,
    PATIENT_RES,
    cc,
    context,
    dosage,
    med_request,
    observation,
    qty,
    timing_code,
    weight,
)
from tests.routed import build_facts

HGNC = "http://www.genenames.org/geneId"


def facts_for(*resources, order=None) -> PolicyFacts:
    result = build_facts(context(order or med_request()), [PATIENT_RES, *resources])
    return result.orders[0]


@pytest.mark.parametrize(
    ("value", "unit", "code", "kg"),
    [
        (70, "kg", "kg", 70.0),
        (44.1, "lb", "[lb_av]", 20.003),
        (44.1, "lbs", None, 20.003),
        (20000, "g", "g", 20.0),
    ],
)
def test_body_weight_is_converted_to_kg(value, unit, code, kg):
    facts = facts_for(weight("w", value, unit, code, "2026-02-01"))
    assert facts.order.dose.weight is not None
    assert facts.order.dose.weight.kg == pytest.approx(kg, abs=0.001)


def test_weight_window_is_90_days_before_the_order():
    within = weight("in", 20, "kg", "kg", "2025-12-01")  # 90 days before 2026-03-01
    too_old = weight("old", 30, "kg", "kg", "2025-11-30")
    after = weight("after", 40, "kg", "kg", "2026-03-02")
    facts = facts_for(within, too_old, after)
    assert facts.order.dose.weight is not None
    assert facts.order.dose.weight.ref == "Observation/in"
    assert facts_for(too_old).order.dose.weight is None


def test_weight_based_order_uses_the_latest_weight():
    order = med_request(dosageInstruction=[dosage(4, "mg/kg", "mg/kg", timing=timing_code("BID"))])
    facts = facts_for(
        weight("a", 10, "kg", "kg", "2026-01-01"),
        weight("b", 44.1, "lb", "[lb_av]", "2026-02-20"),
        order=order,
    )
    dose = facts.order.dose
    assert dose.weight is not None
    assert dose.weight.ref == "Observation/b"
    assert dose.mg_per_kg_per_day == pytest.approx(8, rel=1e-3)
    assert banded_units_per_day(dose, 105) == 2  # Appendix E band of NH.PHAR.244


def test_weight_with_unknown_unit_is_a_problem_not_a_weight():
    result = build_facts(context(med_request()), [weight("w", 10, "stone", None, "2026-02-01")])
    assert result.orders[0].order.dose.weight is None
    assert "Observation/w: body weight unit not recognised" in result.problems


def test_preliminary_observations_are_ignored():
    cdai = observation("c", cc(LOINC, "88982-4"), value=qty(25, "{score}"), status="preliminary")
    assert facts_for(cdai).measurements == ()


def test_scores_and_labs_with_reference_range_and_interpretation():
    rf = observation(
        "rf",
        cc(LOINC, "11572-5"),
        value=qty(60, "[IU]/mL"),
        referenceRange=[{"high": qty(14, "[IU]/mL")}],
        interpretation=[
            cc("http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "H")
        ],
    )
    ccp = observation("ccp", cc(LOINC, "53028-7"), valueCodeableConcept=cc(text="Positive"))
    cdai = observation("cdai", cc(LOINC, "88982-4"), valueInteger=24)
    facts = facts_for(rf, ccp, cdai)
    got = {m.kind: m for m in facts.measurements}
    assert got["rheumatoid-factor"].value == 60
    assert got["rheumatoid-factor"].reference_high == 14
    assert got["rheumatoid-factor"].interpretation == "high"
    assert got["acpa"].interpretation == "positive"
    assert got["acpa"].value is None
    assert got["cdai"].value == 24
    assert got["cdai"].effective == date(2026, 2, 1)


@pytest.mark.parametrize(
    ("text", "high", "unit"),
    [
        ("<=5.0 mg/L", 5.0, "mg/L"),
        ("< 0.9 mg/dL", 0.9, "mg/dL"),
        ("0.0-0.9 mg/dL", 0.9, "mg/dL"),
        ("0 - 10", 10.0, "mg/L"),
        ("≤6.4", 6.4, "mg/L"),
    ],
)
def test_reference_range_sent_only_as_text_gives_the_upper_limit(text, high, unit):
    """Many laboratory interfaces send the printed range only (referenceRange.text); its
    upper limit is the result's reference range (a range without a unit is in the
    result's unit)."""
    crp = observation(
        "crp", cc(LOINC, "1988-5"), value=qty(8, "mg/L", "mg/L"), referenceRange=[{"text": text}]
    )
    (m,) = facts_for(crp).measurements
    assert (m.reference_high, m.reference_unit) == (high, unit)


@pytest.mark.parametrize("text", [">60", "Negative", "see comment", "5-", "10-2 mg/L"])
def test_range_text_without_an_upper_limit_gives_none(text):
    crp = observation(
        "crp", cc(LOINC, "1988-5"), value=qty(8, "mg/L", "mg/L"), referenceRange=[{"text": text}]
    )
    (m,) = facts_for(crp).measurements
    assert m.reference_high is None


def test_acr_panel_components():
    panel = observation(
        "acr",
        cc(text="ACR 2010 classification score"),
        value=qty(7, "{score}"),
        component=[
            {"code": cc(text="Number of small joints involved"), "valueInteger": 5},
            {"code": cc(text="Duration of symptoms"), "valueQuantity": qty(3, "mo", "mo")},
        ],
    )
    got = {m.kind: m.value for m in facts_for(panel).measurements}
    assert got == {
        "acr-2010-score": 7,
        "acr-joints-small": 5,
        "symptom-duration-weeks": pytest.approx(12.857, abs=0.001),
    }


def genetic(rid: str, gene_text: str | None, significance: str | None, **extra):
    components = []
    if gene_text is not None:
        components.append(
            {
                "code": cc(LOINC, "48018-6", "Gene studied [ID]"),
                "valueCodeableConcept": cc(HGNC, "HGNC:6000", gene_text),
            }
        )
    if significance is not None:
        components.append(
            {"code": cc(LOINC, "53037-8"), "valueCodeableConcept": cc(LOINC, significance)}
        )
    return observation(
        rid,
        cc(LOINC, "69548-6", "Genetic variant assessment"),
        valueCodeableConcept=cc(LOINC, "LA9633-4", "Present"),
        component=components,
        **extra,
    )


@pytest.mark.parametrize(
    ("answer", "finding"),
    [("LA6668-3", "pathogenic"), ("LA6669-1", "likely-pathogenic"), ("LA6682-4", "uncertain")],
)
def test_il1rn_variant_findings(answer, finding):
    facts = facts_for(genetic("g", "IL1RN", answer))
    assert [(g.gene, g.finding) for g in facts.genetic_results] == [("IL1RN", finding)]


def test_other_genes_are_not_il1rn():
    other = genetic("g", None, "LA6668-3")
    other["component"].append(
        {"code": cc(LOINC, "48018-6"), "valueCodeableConcept": cc(HGNC, "HGNC:1100", "BRCA1")}
    )
    assert facts_for(other).genetic_results == ()


def test_no_variant_detected_in_text_report():
    report = observation(
        "g", cc(text="IL1RN gene sequencing"), valueString="No pathogenic variant detected in IL1RN"
    )
    facts = facts_for(report)
    assert [g.finding for g in facts.genetic_results] == ["no-variant"]
