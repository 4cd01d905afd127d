"""Condition history (any clinical status, onset and abatement, encounter diagnoses,
findings charted as observations) and the laboratory results of IL1.RIL.01 (SAA,
tuberculin skin test, IGRA), read from FHIR resources in the shapes EHRs and labs send."""

from __future__ import annotations

from datetime import date
from typing import Any

from fhir_mappings import build_record
from tests.mappings.mapping_builders import (
    ICD,
    LOINC,
    PATIENT,
    PATIENT_RES,
    SCT,
    UCUM,
    cc,
    condition,
    context,
    observation,
    qty,
)

COVID = cc(ICD, "U07.1", "COVID-19")
V3 = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"


def record(*resources: dict[str, Any]):
    return build_record(context(), [PATIENT_RES, *resources], as_of=date(2026, 3, 1))


def test_resolved_condition_is_history_not_a_diagnosis():
    past = condition("c1", COVID, clinical="resolved")
    past["onsetDateTime"] = "2025-01-10"
    past["abatementDateTime"] = "2025-02-01T00:00:00Z"
    rec = record(past)
    assert rec.diagnoses == ()
    (hist,) = rec.condition_history
    assert hist.valuesets == {"covid-19"}
    assert (hist.onset, hist.abatement, hist.abated) == (date(2025, 1, 10), date(2025, 2, 1), True)
    assert (hist.clinical_status, hist.source, hist.standing) == ("resolved", "problem-list", False)


def test_partial_onset_and_abatement_give_ranges():
    past = condition("c1", COVID, clinical="inactive")
    past["onsetDateTime"] = "2024-03"
    past["abatementPeriod"] = {"start": "2024-04-02", "end": "2024-05"}
    (hist,) = record(past).condition_history
    assert (hist.onset, hist.onset_latest) == (date(2024, 3, 1), date(2024, 3, 31))
    assert (hist.abatement_earliest, hist.abatement) == (date(2024, 5, 1), date(2024, 5, 31))


def test_abatement_in_words_is_abated_without_a_day():
    past = condition("c1", COVID, clinical=None)
    past["onsetDateTime"] = "2024-03-05"
    past["abatementString"] = "resolved after treatment"
    (hist,) = record(past).condition_history
    assert hist.abated
    assert hist.abatement is None
    assert not hist.standing


def test_refuted_and_entered_in_error_conditions_are_not_history():
    refuted = condition("c1", COVID, verification="refuted")
    wrong = condition("c2", COVID, verification="entered-in-error")
    provisional = condition("c3", COVID, verification="provisional")
    (hist,) = record(refuted, wrong, provisional).condition_history
    assert (hist.ref, hist.verification) == ("Condition/c3", "provisional")


def test_encounter_diagnosis_takes_the_encounter_day_as_onset():
    diagnosis = condition("c1", COVID, clinical="resolved")
    diagnosis["category"] = [
        cc("http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis")
    ]
    named = condition("c2", COVID, clinical="resolved")
    named.pop("category")
    named["recordedDate"] = "2025-09-30"
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
        "subject": {"reference": PATIENT},
        "period": {"start": "2025-09-28T22:10:00Z", "end": "2025-09-29T03:00:00Z"},
        "diagnosis": [{"condition": {"reference": "Condition/c2"}}],
    }
    diagnosis["recordedDate"] = "2025-06-01"
    first, second = record(diagnosis, named, encounter).condition_history
    assert (first.source, first.onset) == ("encounter-diagnosis", date(2025, 6, 1))
    assert (second.source, second.onset) == ("encounter-diagnosis", date(2025, 9, 28))


def test_finding_charted_as_an_observation_is_history_unless_absent():
    problem = cc(LOINC, "75326-9", "Problem")
    present = observation(
        "o1",
        problem,
        when="2025-11-02",
        valueCodeableConcept=cc(SCT, "403834004", "Muckle-Wells syndrome"),
    )
    coded = observation(
        "o2",
        cc(SCT, "403834004", "Muckle-Wells syndrome"),
        when="2025-11-03",
        valueCodeableConcept=cc(SCT, "260385009", "Negative"),
    )
    history = record(present, coded).condition_history
    assert [(h.ref, h.source, h.onset) for h in history] == [
        ("Observation/o1", "observation", date(2025, 11, 2))
    ]


# --------------------------------------------------------------------------- labs


def _kinds(*observations: dict[str, Any]):
    return {m.ref: m for m in record(*observations).measurements}


def test_saa_in_mg_l_with_reference_range_unit():
    saa = observation(
        "o1",
        cc(LOINC, "48498-0", "Amyloid A [Mass/volume] in Serum or Plasma"),
        value=qty(24.0, "mg/L", "mg/L"),
        referenceRange=[
            {"high": {"value": 0.64, "unit": "mg/dL", "system": UCUM, "code": "mg/dL"}}
        ],
    )
    m = _kinds(saa)["Observation/o1"]
    assert (m.kind, m.value, m.unit, m.reference_high, m.reference_unit) == (
        "saa",
        24.0,
        "mg/L",
        0.64,
        "mg/dL",
    )


def test_saa_sent_with_a_local_code_is_read_by_its_name():
    saa = observation(
        "o1",
        cc("http://lab.example.org/codes", "SAA1", "Serum amyloid A"),
        value=qty(6, "mg/L", "mg/L"),
    )
    assert _kinds(saa)["Observation/o1"].kind == "saa"


def test_igra_coded_results_positive_negative_indeterminate():
    igra = cc(
        LOINC,
        "71773-6",
        "Mycobacterium tuberculosis stimulated gamma interferon [Presence] in Blood",
    )
    neg = observation("o1", igra, valueCodeableConcept=cc(SCT, "260385009", "Negative"))
    pos = observation("o2", igra, valueCodeableConcept=cc(SCT, "10828004", "Positive"))
    ind = observation("o3", igra, valueCodeableConcept=cc(SCT, "82334004", "Indeterminate"))
    ind_v3 = observation(
        "o4",
        cc(None, None, None, "QuantiFERON-TB Gold Plus"),
        interpretation=[cc(V3, "IND", "Indeterminate")],
    )
    ind_text = observation("o5", igra, valueString="Indeterminate - mitogen response low")
    found = _kinds(neg, pos, ind, ind_v3, ind_text)
    assert {ref: (m.kind, m.interpretation) for ref, m in found.items()} == {
        "Observation/o1": ("tb-igra", "negative"),
        "Observation/o2": ("tb-igra", "positive"),
        "Observation/o3": ("tb-igra", "indeterminate"),
        "Observation/o4": ("tb-igra", "indeterminate"),
        "Observation/o5": ("tb-igra", "indeterminate"),
    }


def test_tuberculin_skin_test_as_induration_or_interpretation():
    tst = cc(LOINC, "39263-9", "Tuberculin screen test status")
    mm = observation("o1", tst, value=qty(0, "mm", "mm"))
    read = observation(
        "o2", cc(None, None, None, "PPD skin test"), interpretation=[cc(V3, "NEG", "Negative")]
    )
    loinc_answer = observation("o3", tst, valueCodeableConcept=cc(LOINC, "LA6576-8", "Positive"))
    found = _kinds(mm, read, loinc_answer)
    assert (
        found["Observation/o1"].kind,
        found["Observation/o1"].value,
        found["Observation/o1"].unit,
    ) == ("tb-skin-test", 0, "mm")
    assert (found["Observation/o2"].kind, found["Observation/o2"].interpretation) == (
        "tb-skin-test",
        "negative",
    )
    assert (found["Observation/o3"].kind, found["Observation/o3"].interpretation) == (
        "tb-skin-test",
        "positive",
    )


def test_each_order_view_carries_the_condition_history():
    from tests.mappings.mapping_builders import med_request
    from tests.routed import build_facts

    past = condition("c1", COVID, clinical="resolved")
    past["onsetDateTime"] = "2025-01-10"
    result = build_facts(context(med_request()), [PATIENT_RES, past], as_of=date(2026, 3, 1))
    (facts,) = result.orders
    assert [h.ref for h in facts.condition_history] == ["Condition/c1"]
    assert facts.diagnoses == ()
