"""Builders for FHIR R4 resources shaped the way EHRs send them (US Core style)."""

from __future__ import annotations

from typing import Any

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
NUCC = "http://nucc.org/provider-taxonomy"
GTS = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
PATIENT = "Patient/p1"

Res = dict[str, Any]


def cc(
    system: str | None = None,
    code: str | None = None,
    display: str | None = None,
    text: str | None = None,
) -> Res:
    out: Res = {}
    if code is not None:
        coding: Res = {"code": code}
        if system:
            coding["system"] = system
        if display:
            coding["display"] = display
        out["coding"] = [coding]
    if text is not None:
        out["text"] = text
    return out


def qty(value: Any, unit: str | None = None, code: str | None = None) -> Res:
    out: Res = {"value": value}
    if unit is not None:
        out["unit"] = unit
    if code is not None:
        out["system"] = UCUM
        out["code"] = code
    return out


def dosage(
    value: Any = 100,
    unit: str = "mg",
    code: str | None = "mg",
    *,
    timing: Res | None = None,
    sequence: int | None = None,
) -> Res:
    out: Res = {"doseAndRate": [{"doseQuantity": qty(value, unit, code)}]}
    if timing is not None:
        out["timing"] = timing
    if sequence is not None:
        out["sequence"] = sequence
    return out


def every(frequency: int = 1, period: float = 1, unit: str = "d") -> Res:
    return {"repeat": {"frequency": frequency, "period": period, "periodUnit": unit}}


def timing_code(code: str) -> Res:
    return {"code": {"coding": [{"system": GTS, "code": code}]}}


def med_request(
    rid: str = "mr1",
    *,
    medication: Res | None = None,
    status: str = "draft",
    authored: str | None = "2026-03-01",
    dosages: list[Res] | None = None,
    **extra: Any,
) -> Res:
    out: Res = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "subject": {"reference": PATIENT},
        "medicationCodeableConcept": medication
        if medication is not None
        else cc(RXNORM, "727714", "0.67 ML anakinra 149 MG/ML Prefilled Syringe [Kineret]"),
    }
    if authored is not None:
        out["authoredOn"] = authored
    if dosages is not None:
        out["dosageInstruction"] = dosages
    out.update(extra)
    return out


def statement(
    rid: str,
    medication: Res,
    *,
    status: str = "completed",
    start: str | None = None,
    end: str | None = None,
    when: str | None = None,
) -> Res:
    out: Res = {
        "resourceType": "MedicationStatement",
        "id": rid,
        "status": status,
        "subject": {"reference": PATIENT},
        "medicationCodeableConcept": medication,
    }
    if start is not None or end is not None:
        period: Res = {}
        if start:
            period["start"] = start
        if end:
            period["end"] = end
        out["effectivePeriod"] = period
    if when is not None:
        out["effectiveDateTime"] = when
    return out


def dispense(
    rid: str,
    medication: Res,
    handed: str,
    days: int,
    *,
    status: str = "completed",
    prescription: str | None = None,
) -> Res:
    out: Res = {
        "resourceType": "MedicationDispense",
        "id": rid,
        "status": status,
        "subject": {"reference": PATIENT},
        "medicationCodeableConcept": medication,
        "whenHandedOver": handed,
        "daysSupply": {"value": days, "unit": "day", "system": UCUM, "code": "d"},
    }
    if prescription:
        out["authorizingPrescription"] = [{"reference": prescription}]
    return out


def observation(
    rid: str,
    code: Res,
    *,
    value: Res | None = None,
    when: str = "2026-02-01",
    status: str = "final",
    **extra: Any,
) -> Res:
    out: Res = {
        "resourceType": "Observation",
        "id": rid,
        "status": status,
        "code": code,
        "subject": {"reference": PATIENT},
        "effectiveDateTime": when,
    }
    if value is not None:
        out["valueQuantity"] = value
    out.update(extra)
    return out


def condition(
    rid: str, code: Res, *, clinical: str | None = "active", verification: str | None = "confirmed"
) -> Res:
    out: Res = {
        "resourceType": "Condition",
        "id": rid,
        "subject": {"reference": PATIENT},
        "code": code,
        "category": [
            cc("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item")
        ],
    }
    if clinical is not None:
        out["clinicalStatus"] = cc(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", clinical
        )
    if verification is not None:
        out["verificationStatus"] = cc(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", verification
        )
    return out


def weight(rid: str, value: float, unit: str, code: str | None, when: str) -> Res:
    return observation(
        rid,
        cc(LOINC, "29463-7", "Body weight"),
        value=qty(value, unit, code),
        when=when,
        category=[cc("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")],
    )


def context(
    *orders: Res, encounter: str | None = None, user: str = "PractitionerRole/role1"
) -> Res:
    out: Res = {
        "patientId": "p1",
        "userId": user,
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": o} for o in orders],
        },
    }
    if encounter is not None:
        out["encounterId"] = encounter
    return out


PATIENT_RES: Res = {
    "resourceType": "Patient",
    "id": "p1",
    "birthDate": "1970-05-02",
    "name": [{"family": "Testperson", "given": ["Ann"]}],
}
MTX = cc(RXNORM, "6851", "methotrexate")
ADALIMUMAB = cc(RXNORM, "327361", "adalimumab")
