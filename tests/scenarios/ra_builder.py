"""FHIR R4 building blocks for the rheumatoid arthritis scenarios (tests/scenarios/ra/).

The scenario files are plain CDS Hooks order-sign requests; this module only writes them
(`python -m tests.scenarios.make_ra_scenarios`). Shapes follow US Core: product codes (RxNorm
SCD / SBD / BN, NDC) with displays as an EHR sends them, ICD-10-CM and SNOMED CT diagnoses,
LOINC observations, NUCC specialties (codes from /work/shared/reference/codes.md).
The order is authored on ORDER_DATE and every other date is placed relative to it.
"""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any

Json = dict[str, Any]

ORDER_DATE = date(2026, 11, 20)
PATIENT_ID = "pt-ra-scn"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC = "http://hl7.org/fhir/sid/ndc"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
SCT = "http://snomed.info/sct"
LOINC = "http://loinc.org"
NUCC = "http://nucc.org/provider-taxonomy"
UCUM = "http://unitsofmeasure.org"
PATIENT_REF = {"reference": f"Patient/{PATIENT_ID}"}

# Medications as an EHR codes them: (system, code, display).
KINERET_SBD = (RXNORM, "727714", "0.67 ML anakinra 149 MG/ML Prefilled Syringe [Kineret]")
KINERET_SCD = (RXNORM, "727711", "0.67 ML anakinra 149 MG/ML Prefilled Syringe")
KINERET_NDC = (NDC, "66658-0234-28", "Kineret 100 mg/0.67 mL, 4 cartons of 7 prefilled syringes")
MTX_TAB = (RXNORM, "105585", "methotrexate 2.5 MG Oral Tablet")
MTX_IN = (RXNORM, "6851", "methotrexate")
SULFASALAZINE = (RXNORM, "202770", "Azulfidine")
LEFLUNOMIDE = (RXNORM, "215393", "Arava")
HYDROXYCHLOROQUINE = (RXNORM, "202462", "Plaquenil")
HADLIMA = (RXNORM, "2640302", "Hadlima (adalimumab-bwwd) 40 MG/0.4 ML prefilled syringe")
HUMIRA = (RXNORM, "353484", "Humira")
ACTEMRA = (RXNORM, "895761", "Actemra")
XELJANZ = (RXNORM, "1357542", "Xeljanz")
ENBREL = (RXNORM, "216891", "Enbrel")
RINVOQ = (RXNORM, "2196895", "Rinvoq")
OLUMIANT = (RXNORM, "2047242", "Olumiant")
ORENCIA = (RXNORM, "616011", "Orencia")
RITUXAN = (RXNORM, "226754", "Rituxan")


def day(offset: int) -> str:
    """The date `offset` days from the order date (negative: before it)."""
    return (ORDER_DATE + timedelta(days=offset)).isoformat()


def concept(system: str, code: str, display: str, text: str | None = None) -> Json:
    out: Json = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        out["text"] = text
    return out


def med_concept(med: tuple[str, str, str], text: str | None = None) -> Json:
    return concept(*med, text=text)


def entry(resource: Json) -> Json:
    return {
        "fullUrl": f"https://ehr.example.org/fhir/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": "match"},
    }


def bundle(resources: list[Json]) -> Json:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [entry(r) for r in resources],
    }


def office_encounter() -> Json:
    """The ambulatory visit in which the order is written (the request's encounterId)."""
    return {
        "resourceType": "Encounter",
        "id": "enc-office",
        "status": "in-progress",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": "AMB",
            "display": "ambulatory",
        },
        "subject": PATIENT_REF,
        "period": {"start": f"{ORDER_DATE.isoformat()}T09:30:00-05:00"},
    }


def plan_coverage() -> Json:
    """The patient's active Coverage with the plan, as a search Bundle."""
    return bundle(
        [
            {
                "resourceType": "Coverage",
                "id": "cov-medicaid",
                "status": "active",
                "beneficiary": PATIENT_REF,
                "payor": [{"reference": "Organization/org-plan", "display": "Health plan"}],
            }
        ]
    )


def order_sign_request(hook_instance: str, user: str, drafts: list[Json], prefetch: Json) -> Json:
    """An order-sign call for the chart's drafts, with `prefetch` copied."""
    return {
        "hook": "order-sign",
        "hookInstance": hook_instance,
        "context": {
            "userId": user,
            "patientId": PATIENT_ID,
            "encounterId": "enc-office",
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": copy.deepcopy(d)} for d in drafts],
            },
        },
        "prefetch": copy.deepcopy(prefetch),
    }


def patient(birth_date: str | None = "1975-06-15", gender: str = "female") -> Json:
    out: Json = {
        "resourceType": "Patient",
        "id": PATIENT_ID,
        "active": True,
        "name": [{"family": "Scenario", "given": ["Riley"]}],
        "gender": gender,
    }
    if birth_date is not None:
        out["birthDate"] = birth_date
    return out


def condition(
    cid: str,
    codings: list[tuple[str, str, str]],
    text: str,
    clinical: str = "active",
    verification: str = "confirmed",
    onset: str = "2019-03-02",
) -> Json:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", clinical, clinical.title()
        ),
        "verificationStatus": concept(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            verification,
            verification.title(),
        ),
        "category": [
            concept(
                "http://terminology.hl7.org/CodeSystem/condition-category",
                "problem-list-item",
                "Problem List Item",
            )
        ],
        "code": {
            "coding": [{"system": s, "code": c, "display": d} for s, c, d in codings],
            "text": text,
        },
        "subject": PATIENT_REF,
        "onsetDateTime": onset,
        "recordedDate": onset,
    }


RA_CODINGS = [
    (
        ICD10,
        "M05.79",
        "Rheumatoid arthritis with rheumatoid factor of multiple sites"
        " without organ or systems involvement",
    ),
    (SCT, "69896004", "Rheumatoid arthritis"),
]


def ra_condition() -> Json:
    return condition("cond-ra", RA_CODINGS, "Seropositive rheumatoid arthritis")


def supply(days: int) -> Json:
    return {"value": days, "unit": "days", "system": UCUM, "code": "d"}


def med_request(
    rid: str,
    med: tuple[str, str, str],
    authored: str,
    status: str = "completed",
    supply_days: int | None = 30,
    repeats: int | None = 0,
    quantity: float | None = None,
    quantity_unit: str = "tablet",
    dosage: list[Json] | None = None,
    text: str | None = None,
) -> Json:
    out: Json = {
        "resourceType": "MedicationRequest",
        "id": rid,
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": med_concept(med, text),
        "subject": PATIENT_REF,
        "authoredOn": authored,
        "requester": {"reference": "PractitionerRole/prrole-rheum"},
    }
    if dosage is not None:
        out["dosageInstruction"] = dosage
    dispense: Json = {}
    if repeats is not None:
        dispense["numberOfRepeatsAllowed"] = repeats
    if quantity is not None:
        dispense["quantity"] = {"value": quantity, "unit": quantity_unit}
    if supply_days is not None:
        dispense["expectedSupplyDuration"] = supply(supply_days)
    if dispense:
        out["dispenseRequest"] = dispense
    return out


def med_statement(
    sid: str,
    med: tuple[str, str, str],
    start: str,
    end: str | None,
    status: str = "completed",
    reason: str | None = None,
    dosage: list[Json] | None = None,
) -> Json:
    period: Json = {"start": start}
    if end is not None:
        period["end"] = end
    out: Json = {
        "resourceType": "MedicationStatement",
        "id": sid,
        "status": status,
        "medicationCodeableConcept": med_concept(med),
        "subject": PATIENT_REF,
        "effectivePeriod": period,
        "dateAsserted": start,
    }
    if reason:
        out["statusReason"] = [{"text": reason}]
    if dosage is not None:
        out["dosage"] = dosage
    return out


def med_dispense(
    did: str, med: tuple[str, str, str], handed_over: str, days_supply: int, quantity: float
) -> Json:
    return {
        "resourceType": "MedicationDispense",
        "id": did,
        "status": "completed",
        "medicationCodeableConcept": med_concept(med),
        "subject": PATIENT_REF,
        "quantity": {"value": quantity, "unit": "tablet"},
        "daysSupply": {"value": days_supply, "unit": "days", "system": UCUM, "code": "d"},
        "whenHandedOver": handed_over,
    }


def allergy(
    aid: str,
    code: Json,
    category: str = "medication",
    kind: str = "intolerance",
    reaction: str = "Nausea and elevated liver enzymes",
    recorded: str = "2024-04-01",
) -> Json:
    return {
        "resourceType": "AllergyIntolerance",
        "id": aid,
        "clinicalStatus": concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"
        ),
        "verificationStatus": concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
            "confirmed",
            "Confirmed",
        ),
        "type": kind,
        "category": [category],
        "criticality": "low",
        "code": code,
        "patient": PATIENT_REF,
        "recordedDate": recorded,
        "reaction": [{"manifestation": [{"text": reaction}]}],
    }


def observation(
    oid: str,
    code: Json,
    effective: str,
    value: float,
    unit: str,
    ucum: str | None,
    category: str = "survey",
) -> Json:
    quantity: Json = {"value": value, "unit": unit}
    if ucum is not None:
        quantity.update({"system": UCUM, "code": ucum})
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [
            concept(
                "http://terminology.hl7.org/CodeSystem/observation-category",
                category,
                category.replace("-", " ").title(),
            )
        ],
        "code": code,
        "subject": PATIENT_REF,
        "effectiveDateTime": effective,
        "valueQuantity": quantity,
    }


def cdai(oid: str, effective: str, value: float) -> Json:
    code = concept(LOINC, "88982-4", "Rheumatoid arthritis disease activity level [CDAI]")
    return observation(oid, code, effective, value, "{score}", "{score}")


def rapid3(oid: str, effective: str, value: float) -> Json:
    code = concept(LOINC, "90094-4", "Rheumatoid arthritis disease severity level [RAPID3]")
    return observation(oid, code, effective, value, "{score}", "{score}")


def role(rid: str, specialty: tuple[str, str, str]) -> Json:
    return {
        "resourceType": "PractitionerRole",
        "id": rid,
        "active": True,
        "practitioner": {"reference": f"Practitioner/pr-{rid}"},
        "organization": {"reference": "Organization/org-clinic"},
        "specialty": [concept(*specialty)],
    }


RHEUM = (NUCC, "207RR0500X", "Internal Medicine, Rheumatology")
FAMILY_MEDICINE = (NUCC, "207Q00000X", "Family Medicine")


def dose_line(
    value: float,
    unit: str,
    ucum: str | None,
    frequency: int | None = 1,
    period: float | None = 1,
    period_unit: str | None = "d",
    timing_code: str | None = None,
    text: str | None = None,
) -> Json:
    quantity: Json = {"value": value, "unit": unit}
    if ucum is not None:
        quantity.update({"system": UCUM, "code": ucum})
    line: Json = {
        "text": text or f"Inject {value} {unit} subcutaneously",
        "route": concept(SCT, "34206005", "Subcutaneous route"),
        "doseAndRate": [{"doseQuantity": quantity}],
    }
    timing: Json = {}
    if frequency is not None and period is not None and period_unit is not None:
        timing["repeat"] = {"frequency": frequency, "period": period, "periodUnit": period_unit}
    if timing_code is not None:
        timing["code"] = concept(
            "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", timing_code, timing_code
        )
    if timing:
        line["timing"] = timing
    return line


def kineret_draft(
    did: str = "draft-kineret",
    med: tuple[str, str, str] = KINERET_SBD,
    dosage: list[Json] | None = None,
    quantity: float | None = 28,
    supply_days: int | None = 28,
    reason: list[Json] | None = None,
    reason_reference: str | None = None,
) -> Json:
    out: Json = {
        "resourceType": "MedicationRequest",
        "id": did,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": med_concept(
            med, "Kineret (anakinra) 100 mg/0.67 mL prefilled syringe"
        ),
        "subject": PATIENT_REF,
        "encounter": {"reference": "Encounter/enc-office"},
        "authoredOn": ORDER_DATE.isoformat(),
        "requester": {"reference": "PractitionerRole/prrole-rheum"},
        "dosageInstruction": dosage
        if dosage is not None
        else [dose_line(100, "mg", "mg", text="Inject 100 mg subcutaneously once daily")],
    }
    if reason is not None:
        out["reasonCode"] = reason
    if reason_reference is not None:
        out["reasonReference"] = [{"reference": reason_reference}]
    dispense: Json = {"numberOfRepeatsAllowed": 5}
    if quantity is not None:
        dispense["quantity"] = {"value": quantity, "unit": "syringe"}
    if supply_days is not None:
        dispense["expectedSupplyDuration"] = supply(supply_days)
    out["dispenseRequest"] = dispense
    return out


RA_REASON = [concept(*RA_CODINGS[0])]


class Chart:
    """A patient chart that a scenario edits before it is written as a request."""

    def __init__(self) -> None:
        self.patient = patient()
        self.conditions: list[Json] = [ra_condition()]
        self.requests: list[Json] = [
            # MTX 15 mg weekly, 28-day fills with 3 refills: 112 days from 2024-01-10.
            med_request(
                "rx-mtx",
                MTX_TAB,
                "2024-01-10",
                supply_days=28,
                repeats=3,
                quantity=24,
                dosage=[dose_line(15, "mg", "mg", 1, 1, "wk", text="Take 15 mg by mouth weekly")],
            )
        ]
        self.statements: list[Json] = [
            med_statement(
                "ms-hadlima",
                HADLIMA,
                "2024-06-01",
                "2025-03-01",
                status="stopped",
                reason="Inadequate response",
            )
        ]
        self.dispenses: list[Json] = []
        self.allergies: list[Json] = []
        self.observations: list[Json] = [cdai("obs-cdai", day(-15), 28)]
        self.assessments: list[Json] = []
        self.roles: list[Json] = [role("prrole-rheum", RHEUM)]
        self.care_teams: list[Json] = []
        self.referrals: list[Json] = []
        self.drafts: list[Json] = [kineret_draft(reason=RA_REASON)]
        self.user = "PractitionerRole/prrole-rheum"

    def request(self, hook_instance: str) -> Json:
        user_role = next(
            (r for r in self.roles if f"PractitionerRole/{r['id']}" == self.user), None
        )
        prefetch: Json = {
            "patient": self.patient,
            "conditions": bundle(self.conditions),
            "medicationRequests": bundle(self.requests),
            "medicationStatements": bundle(self.statements),
            "medicationDispenses": bundle(self.dispenses),
            "allergies": bundle(self.allergies),
            "observations": bundle(self.observations),
            "assessments": bundle(self.assessments),
            "userRole": user_role,
            "userRoles": bundle(self.roles),
            "careTeams": bundle(self.care_teams),
            "referrals": bundle(self.referrals),
            "encounter": office_encounter(),
            "coverage": plan_coverage(),
        }
        return order_sign_request(hook_instance, self.user, self.drafts, prefetch)
