"""Synthetic workload for the benchmark: one RA patient with a long chart, of a chosen size.

`chart(n)` builds exactly `n` FHIR resources for patient `pt-bench` with the building blocks
of `sandbox/make_patients.py`: the base RA chart (diagnosis, labs, methotrexate and
adalimumab trials, CDAI, care team, referral: criteria met), then as much history as the
size asks for, going back one month at a time:

- every month: CDAI, CRP and ESR (codes the policy reads), a pain score and a smoking
  status (survey / social-history Observations it does not read), a prednisone and a
  lisinopril fill (MedicationRequest + MedicationDispense of drugs outside the policy);
- every third month a body weight; every year an older methotrexate fill and a
  Condition (hypertension / osteoarthritis / hyperlipidaemia, none in a value set).

So about 60% of a large chart is Observations, 35% medication records and the rest
Conditions and the fixed resources, all dated before the order (2026-11-20). The
decision is the same at every size: criteria met.

`order_sign_request(n)` is the CDS Hooks order-sign body with the chart as full prefetch
(every key of the service filled as the EHR would answer its query);
`context_only_request()` the same call with no prefetch (the service reads the FHIR server).
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any, Final

from sandbox.make_patients import (
    ADALIMUMAB_ADAZ,
    FIRST_PACK,
    LOINC,
    MTX,
    OBS_CATEGORY,
    RHEUMATOLOGIST,
    SNOMED,
    Chart,
    Drug,
    PackDrug,
    concept,
    pack_drug,
    prescriber_resources,
    qty,
    ra_chart,
    ra_order,
)

Json = dict[str, Any]

KEY: Final = "bench"
PATIENT_ID: Final = f"pt-{KEY}"
ENCOUNTER_ID: Final = f"{KEY}-enc"
USER: Final = f"PractitionerRole/{RHEUMATOLOGIST.role_id}"

PREDNISONE: Final = Drug("8640", "prednisone", "prednisone 5 mg oral tablet", 5, "d")
LISINOPRIL: Final = Drug("29046", "lisinopril", "lisinopril 10 mg oral tablet", 10, "d")
_OTHER_CONDITIONS: Final = (
    ("38341003", "Hypertensive disorder"),
    ("396275006", "Osteoarthritis"),
    ("55822004", "Hyperlipidemia"),
)


def order_drug() -> PackDrug:
    """The drug of the benchmark's draft order (the first pack's, as `ra_order` orders)."""
    return pack_drug(FIRST_PACK)


def _base() -> Chart:
    c = ra_chart("bench", "Robin", "Ashford", birth_date="1968-02-03")
    return c


def _history(c: Chart) -> Iterator[None]:
    """Adds one resource to `c.resources` per step, one month further back each cycle."""
    month = 0
    while True:
        before = 45 + 30 * month
        wave = 6.0 * ((month % 12) / 11.0 - 0.5)
        c.cdai(before + 30, round(20 + wave, 1))  # older than the base chart's CDAI
        yield
        c.lab(
            "1988-5",
            "C reactive protein [Mass/volume] in Serum or Plasma",
            before,
            9 + wave,
            "mg/L",
        )
        yield
        c.lab("4537-7", "Erythrocyte sedimentation rate by Westergren method", before, 25, "mm/h")
        yield
        c.observation(
            concept(LOINC, "72514-3", "Pain severity - 0-10 verbal numeric rating"),
            "survey",
            before,
            {"valueInteger": 3 + month % 5},
        )
        yield
        c.observation(
            concept(LOINC, "72166-2", "Tobacco smoking status"),
            "social-history",
            before,
            {"valueCodeableConcept": concept(SNOMED, "8517006", "Ex-smoker")},
        )
        yield
        for drug in (PREDNISONE, LISINOPRIL):
            rid = c.request(drug, before, "completed", 30)
            yield
            c.dispense(drug, before, 30, rid)
            yield
        if month % 3 == 0:
            c.weight(before + 100, 74.0)
            yield
        if month % 12 == 6:
            # Older methotrexate fills: years before the documented trial, long gaps.
            rid = c.request(MTX, 1500 + 30 * month, "completed", 28)
            yield
            c.dispense(MTX, 1500 + 30 * month, 28, rid)
            yield
            code, display = _OTHER_CONDITIONS[(month // 12) % len(_OTHER_CONDITIONS)]
            c.condition(
                [{"system": SNOMED, "code": code, "display": display}], display, 400 + 30 * month
            )
            yield
        month += 1


def chart(n: int) -> tuple[list[Json], Json]:
    """(exactly `n` resources of the patient's chart, the draft order of the first pack's
    drug)."""
    c = _base()
    shared = prescriber_resources(RHEUMATOLOGIST)
    fixed = len(c.resources) + len(shared)
    if n < fixed:
        raise ValueError(f"the base chart alone has {fixed} resources")
    steps = _history(c)
    while len(c.resources) + len(shared) < n:
        next(steps)
    order = ra_order(c)
    return [*shared, *c.resources], order


def _bundle(resources: list[Json], base: str) -> Json:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [
            {
                "fullUrl": f"{base}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def prefetch(resources: list[Json], base: str = "http://ehr.example/fhir") -> Json:
    """Every prefetch key of the service, filled from the chart as its query would answer."""

    def of(rtype: str) -> list[Json]:
        return [r for r in resources if r["resourceType"] == rtype]

    def first(rtype: str) -> Json:
        return next(r for r in resources if r["resourceType"] == rtype)

    observations = of("Observation")
    assessment_categories = {"survey", "exam", "social-history"}

    def category(obs: Json) -> str:
        return str(obs["category"][0]["coding"][0]["code"])

    return {
        "patient": first("Patient"),
        "conditions": _bundle(of("Condition"), base),
        "medicationRequests": _bundle(of("MedicationRequest"), base),
        "medicationStatements": _bundle(of("MedicationStatement"), base),
        "medicationDispenses": _bundle(of("MedicationDispense"), base),
        "allergies": _bundle(of("AllergyIntolerance"), base),
        # Coded results the policy reads; scores filed as surveys go with the assessments.
        "observations": _bundle(
            [o for o in observations if category(o) not in assessment_categories], base
        ),
        "assessments": _bundle(
            [o for o in observations if category(o) in assessment_categories], base
        ),
        "userRole": first("PractitionerRole"),
        "careTeams": _bundle(of("CareTeam") + of("PractitionerRole"), base),
        "referrals": _bundle(of("ServiceRequest"), base),
        "encounter": first("Encounter"),
        "coverage": _bundle(of("Coverage"), base),
    }


def _context(order: Json) -> Json:
    return {
        "userId": USER,
        "patientId": PATIENT_ID,
        "encounterId": ENCOUNTER_ID,
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": copy.deepcopy(order)}],
        },
    }


def order_sign_request(n: int) -> Json:
    """An order-sign request whose prefetch holds a chart of `n` resources."""
    resources, order = chart(n)
    return {
        "hook": "order-sign",
        "hookInstance": str(uuid.UUID(int=n)),
        "context": _context(order),
        "prefetch": prefetch(resources),
    }


def context_only_request(fhir_server: str, n: int) -> Json:
    """The same call with no prefetch: the service reads `fhir_server` itself."""
    _, order = chart(n)
    return {
        "hook": "order-sign",
        "hookInstance": str(uuid.UUID(int=10**6 + n)),
        "fhirServer": fhir_server,
        "context": _context(order),
    }


def transaction(n: int) -> Json:
    """The chart as a transaction Bundle (PUT to fixed ids) for the FHIR sandbox."""
    resources, _ = chart(n)
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in resources
        ],
    }


def count_prefetch(request: Json) -> int:
    """Resources in a request's prefetch (Bundle entries, or 1 for a lone resource)."""
    total = 0
    for value in request.get("prefetch", {}).values():
        if isinstance(value, dict) and value.get("resourceType") == "Bundle":
            total += len(value.get("entry", []))
        elif isinstance(value, dict):
            total += 1
    return total


__all__ = [
    "ADALIMUMAB_ADAZ",
    "OBS_CATEGORY",
    "chart",
    "context_only_request",
    "count_prefetch",
    "order_sign_request",
    "prefetch",
    "qty",
    "transaction",
]
