"""Small builders for card tests: PolicyFacts and Decisions made directly."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from cds_service.cards import CardSettings
from cds_service.crd.coverage import CoverageCall, PackBilling
from cds_service.crd.payer import load_payer
from cds_service.pipeline import pack_questionnaires
from cds_service.policy.model import CriterionResult, Decision, Outcome, Pathway, Status
from cds_service.policy.packs import default_registry
from fhir_mappings.coverage import CoverageRecord, Payor
from fhir_mappings.facts import DoseFacts, OrderFacts, PolicyFacts, PrescriberFacts, WeightFact

NOW = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
SETTINGS = CardSettings(
    plan_name="Example Health Plan",
    policy_label="NH.PHAR.244 Anakinra (Kineret) — Example Health Plan",
    policy_url="https://plan.example.org/policies/NH.PHAR.244.pdf",
    documentation_form_url="https://plan.example.org/pa/forms/kineret",
    override_reason_system="https://plan.example.org/fhir/CodeSystem/override-reason",
)


def uuid_counter() -> Callable[[], str]:
    """Deterministic uuids: 00000000-0000-4000-8000-000000000001, ...002, ..."""
    count = 0

    def next_uuid() -> str:
        nonlocal count
        count += 1
        return str(uuid.UUID(f"00000000-0000-4000-8000-{count:012d}"))

    return next_uuid


def medication_request(
    order_id: str = "kineret-1",
    *,
    dose_mg: float = 100,
    frequency: int = 1,
    dispense: tuple[int, int] | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": order_id,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {
                    "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "349325",
                    "display": "anakinra 100 MG in 0.67 ML Prefilled Syringe",
                }
            ]
        },
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-03-02",
        "dosageInstruction": [
            {
                "text": f"{dose_mg:g} mg subcutaneously {frequency} times a day",
                "route": {"text": "subcutaneous"},
                "timing": {
                    "repeat": {
                        "frequency": frequency,
                        "period": 1,
                        "periodUnit": "d",
                        "boundsDuration": {"value": 28, "unit": "days", "code": "d"},
                    }
                },
                "doseAndRate": [{"doseQuantity": {"value": dose_mg, "unit": "mg"}}],
            }
        ],
    }
    if dispense is not None:
        quantity, days = dispense
        resource["dispenseRequest"] = {
            "quantity": {"value": quantity, "unit": "syringe"},
            "expectedSupplyDuration": {"value": days, "unit": "days", "code": "d"},
        }
    return resource


def facts(
    resource: dict[str, Any] | None = None,
    *,
    mg_per_day: float | None = 100,
    administrations_per_day: float | None = 1,
    weight_kg: float | None = None,
    coverage_refs: tuple[str, ...] = ("Coverage/cov-1",),
) -> PolicyFacts:
    resource = resource or medication_request()
    weight = (
        WeightFact(kg=weight_kg, effective=date(2026, 2, 20), ref="Observation/weight-1")
        if weight_kg is not None
        else None
    )
    per_admin = (
        mg_per_day / administrations_per_day
        if mg_per_day is not None and administrations_per_day
        else None
    )
    dose = DoseFacts(
        mg_per_day=mg_per_day,
        administrations_per_day=administrations_per_day,
        mg_per_administration=(per_admin,) if per_admin is not None else (),
        syringes_per_day=(
            administrations_per_day * -(-per_admin // 100)
            if per_admin is not None and administrations_per_day
            else None
        ),
        weight_based_syringes_per_day=(
            administrations_per_day * (per_admin // 105 + 1)
            if per_admin is not None and administrations_per_day
            else None
        ),
        mg_per_kg_per_day=(mg_per_day / weight_kg if mg_per_day and weight_kg else None),
        weight=weight,
        dispense_syringes_per_day=None,
        duration_days=28,
    )
    order = OrderFacts(
        ref=f"MedicationRequest/{resource['id']}",
        resource_id=str(resource["id"]),
        authored_on=date(2026, 3, 2),
        status="draft",
        intent="order",
        matched_by="product-code",
        reasons=(),
        dose=dose,
        requester_ref="Practitioner/dr-1",
        resource=resource,
    )
    return PolicyFacts(
        order=order,
        patient_ref="Patient/p1",
        birth_date=date(1970, 5, 1),
        diagnoses=(),
        prescriber=PrescriberFacts(
            requester_ref="Practitioner/dr-1",
            specialty_valuesets=frozenset({"rheumatology"}),
            specialty_codes=("207RR0500X",),
            has_role_data=True,
            refs=("PractitionerRole/role-1",),
        ),
        medications=(),
        therapy_runs=(),
        intolerances=(),
        measurements=(),
        genetic_results=(),
        encounter=None,
        coverage_refs=coverage_refs,
        coverages=tuple(plan_coverage(ref) for ref in coverage_refs),
    )


def plan_coverage(ref: str, payor: str = "Organization/org-plan") -> CoverageRecord:
    """An active Coverage with the demo payer (`cds_service/crd/payer.demo.json`), or with
    the payor `payor`."""
    return CoverageRecord(
        ref=ref,
        payors=(Payor(reference=payor, identifier=None, display=None),),
        classes=(),
        order=None,
    )


def criterion(
    criterion_id: str,
    status: Status = Status.MET,
    *,
    check: str = "documented",
    reason: str | None = None,
    text: str | None = None,
    evidence: tuple[str, ...] = (),
    documentation: str | None = None,
    details: dict[str, Any] | None = None,
) -> CriterionResult:
    return CriterionResult(
        id=criterion_id,
        text=text or f"Policy criterion {criterion_id}",
        check=check,
        status=status,
        reason=reason or f"{criterion_id} is {status.value}",
        evidence=evidence,
        documentation=documentation,
        details=details or {},
    )


RA_MET = (
    criterion(
        "I.A.1",
        check="diagnosis",
        reason="Rheumatoid arthritis (M05.79) is recorded",
        evidence=("Condition/ra-1",),
    ),
    criterion("I.A.2", check="prescriber-specialty", reason="Ordered by a rheumatologist"),
    criterion("I.A.3", check="age", reason="Age 55 on the order date"),
    criterion(
        "I.A.4",
        check="step-therapy",
        reason="Methotrexate taken for 120 days",
        evidence=("MedicationStatement/mtx-1",),
    ),
    criterion("I.A.5", check="step-therapy", reason="Adalimumab taken for 180 days"),
    criterion("I.A.6", check="baseline-score", reason="CDAI 24 (high disease activity)"),
    criterion(
        "I.A.7", check="no-concurrent-therapy", reason="No concurrent biologic or JAK inhibitor"
    ),
    criterion(
        "I.A.8",
        check="dose-limit",
        reason="100 mg/day, 1 syringe/day",
        details={"limit_mg_per_day": 100, "limit_syringes_per_day": 1},
    ),
    criterion(
        "III.B", check="no-concurrent-therapy", reason="No concurrent biologic or JAK inhibitor"
    ),
)


def decision(
    outcome: Outcome,
    criteria: tuple[CriterionResult, ...] = RA_MET,
    *,
    order_ref: str = "MedicationRequest/kineret-1",
    section: str = "I.A",
    indication: str = "rheumatoid-arthritis",
    approval_months: int | None = None,
    policy_references: tuple[str, ...] = (),
) -> Decision:
    return Decision(
        policy_id="NH.PHAR.244",
        policy_version="2025-04",
        order_ref=order_ref,
        pathway=Pathway.INITIAL,
        section=section,
        indication=indication,
        outcome=outcome,
        criteria=criteria,
        approval_months=approval_months,
        documentation=tuple(c.documentation for c in criteria if c.documentation),
        policy_references=policy_references,
    )


def replace(
    criteria: tuple[CriterionResult, ...], *new: CriterionResult
) -> tuple[CriterionResult, ...]:
    by_id = {c.id: c for c in new}
    return tuple(by_id.get(c.id, c) for c in criteria)


def coverage_call() -> CoverageCall:
    """The coverage settings the service runs with: the demo payer, the packaged packs'
    billing codes and a public base URL for the policy links and the documentation forms."""
    registry = default_registry()
    return CoverageCall(
        payer=load_payer(),
        policy_base_url="https://cds.example.org",
        packs={
            p.id: PackBilling(p.version, p.drug.billing_hcpcs, p.drug.billing_ndc)
            for p in registry.packs.values()
        },
        questionnaires=pack_questionnaires(registry, "https://cds.example.org"),
    )
