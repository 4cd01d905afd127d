"""Writes the synthetic patients of the FHIR sandbox (data files under `sandbox/patients/`).

Run `python -m sandbox.make_patients` after changing a scenario; the output is committed and
a test checks that it is up to date. For every scenario it writes:

- `<name>.json`: a FHIR R4 transaction Bundle with the patient's chart. Every entry is a
  PUT to a fixed id, so loading a file twice leaves the server as it was.
- `<name>.order.json`: the draft MedicationRequest the EHR would sign, for the drug of the
  scenario's policy pack (authored 2026-11-20; all histories are dated relative to that day).
- `scenarios.json` and `README.md`: patient, scenario, expected outcome, and the criteria
  expected `not-met` / `unknown`.

One set of patients per policy pack: the first pack's in `patients/`, every other pack's in
`patients/<ingredient>/`. Drug codes, names and units come from each pack's `drug.json` (and
the ingredient's value set in `fhir_mappings/valuesets/`), never from this file.

Codes come from /work/shared/reference/codes.md and `fhir_mappings/valuesets/`. Three codes are
not in codes.md and are only used for prescribers who are *not* rheumatologists (NUCC
207Q00000X Family Medicine, 208M00000X Hospitalist) and for vital signs that must *not* match
any value set (LOINC 8867-4 heart rate, 8480-6 systolic blood pressure): if they were wrong,
nothing the policy reads would change. All names, identifiers and addresses are invented.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

from cds_service.policy.packs import packs_dir

Json = dict[str, Any]

ORDER_DATE: Final = date(2026, 11, 20)
PATIENTS_DIR: Final = Path(__file__).resolve().parent / "patients"

RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
NDC: Final = "http://hl7.org/fhir/sid/ndc"
ICD10: Final = "http://hl7.org/fhir/sid/icd-10-cm"
SNOMED: Final = "http://snomed.info/sct"
LOINC: Final = "http://loinc.org"
UCUM: Final = "http://unitsofmeasure.org"
NUCC: Final = "http://nucc.org/provider-taxonomy"
HGNC: Final = "http://www.genenames.org/geneId"
ACT_CODE: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBS_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
OBS_INTERPRETATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
COND_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/condition-clinical"
COND_VERIFICATION: Final = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
COND_CATEGORY: Final = "http://terminology.hl7.org/CodeSystem/condition-category"
ALLERGY_CLINICAL: Final = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION: Final = (
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
)
SUBCUTANEOUS: Final = {
    "coding": [{"system": SNOMED, "code": "34206005", "display": "Subcutaneous route"}]
}
ROUTES: Final = {"subcutaneous": ("SC", "subcutaneously", SUBCUTANEOUS)}
"""drug.json `route` -> (dosage text abbreviation, order text adverb, FHIR route)."""
VALUESETS_DIR: Final = Path(__file__).resolve().parent.parent / "fhir_mappings" / "valuesets"


def day(days_before_order: int) -> str:
    """The ISO date `days_before_order` days before the order date."""
    return (ORDER_DATE - timedelta(days=days_before_order)).isoformat()


def concept(system: str, code: str, display: str, text: str | None = None) -> Json:
    out: Json = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        out["text"] = text
    return out


def qty(value: float, unit: str, code: str | None = None) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": code or unit}


# ----- drugs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drug:
    """A drug as an EHR would code it in history records."""

    code: str
    display: str
    text: str
    dose_mg: float
    per: str  # "d" daily, "wk" weekly, "2wk" every other week, "bid" twice daily
    route: str = "oral"

    def medication(self) -> Json:
        return concept(RXNORM, self.code, self.display, self.text)

    def dosage(self) -> list[Json]:
        repeat: Json
        if self.per == "bid":
            repeat = {"frequency": 2, "period": 1, "periodUnit": "d"}
        elif self.per == "2wk":
            repeat = {"frequency": 1, "period": 2, "periodUnit": "wk"}
        else:
            repeat = {"frequency": 1, "period": 1, "periodUnit": self.per}
        line: Json = {
            "text": f"{self.dose_mg:g} mg {self.route} ({self.per})",
            "timing": {"repeat": repeat},
            "doseAndRate": [{"doseQuantity": qty(self.dose_mg, "mg")}],
        }
        if self.route == "SC":
            line["route"] = SUBCUTANEOUS
        return [line]


MTX = Drug("6851", "methotrexate", "methotrexate 2.5 mg oral tablet, 15 mg weekly", 15, "wk")
HCQ = Drug("5521", "hydroxychloroquine", "hydroxychloroquine 200 mg oral tablet", 200, "bid")
SSZ = Drug("9524", "sulfasalazine", "sulfasalazine 500 mg delayed-release tablet", 1000, "bid")
LEF = Drug("27169", "leflunomide", "leflunomide 20 mg oral tablet", 20, "d")
ADALIMUMAB_ADAZ = Drug(
    "327361", "adalimumab", "adalimumab-adaz (Hyrimoz) 40 mg/0.4 mL pen", 40, "2wk", "SC"
)
ETANERCEPT = Drug(
    "214555", "etanercept", "etanercept (Enbrel) 50 mg/mL SureClick autoinjector", 50, "wk", "SC"
)
TOCILIZUMAB = Drug(
    "612865", "tocilizumab", "tocilizumab (Actemra) 162 mg/0.9 mL syringe", 162, "wk", "SC"
)
COLCHICINE = Drug("2683", "colchicine", "colchicine 0.6 mg oral tablet, twice daily", 0.6, "bid")


@dataclass(frozen=True)
class PackDrug:
    """The drug of one policy pack, as its `drug.json` names it."""

    policy_id: str
    ingredient: str
    rxnorm: str
    brand: str
    products: tuple[Json, ...]
    unit: Json
    route: str

    @classmethod
    def read(cls, policy_id: str, packs: Path | None = None) -> PackDrug:
        data = json.loads(
            ((packs or packs_dir()) / policy_id / "drug.json").read_text(encoding="utf-8")
        )
        return cls(
            policy_id=policy_id,
            ingredient=data["ingredient"]["name"],
            rxnorm=data["ingredient"]["rxnorm"],
            brand=data["brand"],
            products=tuple(data["products"]),
            unit=data["unit"],
            route=data["route"],
        )

    def product(self, system: str = "rxnorm", tty: str | None = None) -> Json:
        """The pack's first product code of `system` (and term type): the one EHRs order."""
        return next(
            p
            for p in self.products
            if p["system"] == system and (tty is None or p.get("tty") == tty)
        )

    @property
    def text(self) -> str:
        """How an EHR labels the product, e.g. "Brand (ingredient) 100 mg/0.5 mL syringe"."""
        u = self.unit
        return (
            f"{self.brand} ({self.ingredient}) {u['content_mg']:g} mg/{u['content_ml']:g} mL "
            f"{u['name']}"
        )

    def medication(self) -> Json:
        product = self.product()
        return concept(RXNORM, product["code"], product["display"], self.text)

    def history(self, dose_mg: float, per: str) -> Drug:
        """The drug as a past or current order of the patient's chart."""
        product = self.product()
        route = ROUTES[self.route][0]
        return Drug(product["code"], product["display"], self.text, dose_mg, per, route)

    def substance(self) -> Json:
        """The ingredient as an allergy record codes it: the substance concepts of the
        ingredient's value set, then the RxNorm ingredient."""
        valueset = json.loads(
            (VALUESETS_DIR / f"{self.ingredient}.json").read_text(encoding="utf-8")
        )
        substances = [
            {"system": c["system"], "code": c["code"], "display": c["display"]}
            for c in valueset["concepts"]
            if c.get("tty") == "substance"
        ]
        return {
            "coding": [
                *substances,
                {"system": RXNORM, "code": self.rxnorm, "display": self.ingredient},
            ],
            "text": f"{self.ingredient.capitalize()} ({self.brand})",
        }


FIRST_PACK: Final = "NH.PHAR.244"
SECOND_PACK: Final = "IL1.RIL.01"


@cache
def pack_drug(policy_id: str) -> PackDrug:
    return PackDrug.read(policy_id)


# ----- shared practitioners and payer ---------------------------------------------------------


@dataclass(frozen=True)
class Prescriber:
    practitioner_id: str
    role_id: str
    family: str
    given: str
    npi: str
    specialty: Json


RHEUMATOLOGIST: Final = Prescriber(
    "pr-rheum-1",
    "prrole-rheum-1",
    "Okafor",
    "Nneka",
    "1999000011",
    concept(NUCC, "207RR0500X", "Internal Medicine, Rheumatology", "Rheumatology"),
)
PEDIATRIC_RHEUMATOLOGIST: Final = Prescriber(
    "pr-pedrheum-1",
    "prrole-pedrheum-1",
    "Lindqvist",
    "Maja",
    "1999000029",
    concept(NUCC, "2080P0216X", "Pediatrics, Pediatric Rheumatology", "Pediatric rheumatology"),
)
FAMILY_PHYSICIAN: Final = Prescriber(
    "pr-fm-1",
    "prrole-fm-1",
    "Haddad",
    "Samir",
    "1999000037",
    concept(NUCC, "207Q00000X", "Family Medicine", "Family medicine"),
)
HOSPITALIST: Final = Prescriber(
    "pr-hosp-1",
    "prrole-hosp-1",
    "Moreau",
    "Claire",
    "1999000045",
    concept(NUCC, "208M00000X", "Hospitalist", "Hospital medicine"),
)
ALLERGIST: Final = Prescriber(
    "pr-allergy-1",
    "prrole-allergy-1",
    "Varga",
    "Ilona",
    "1999000052",
    concept(NUCC, "207K00000X", "Allergy & Immunology", "Allergy and immunology"),
)
CARDIOLOGIST: Final = Prescriber(
    "pr-cardio-1",
    "prrole-cardio-1",
    "Adeyemi",
    "Tunde",
    "1999000060",
    concept(NUCC, "207RC0000X", "Internal Medicine, Cardiovascular Disease", "Cardiology"),
)


def prescriber_resources(p: Prescriber) -> list[Json]:
    practitioner: Json = {
        "resourceType": "Practitioner",
        "id": p.practitioner_id,
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": p.npi}],
        "active": True,
        "name": [{"family": p.family, "given": [p.given], "prefix": ["Dr."]}],
    }
    role: Json = {
        "resourceType": "PractitionerRole",
        "id": p.role_id,
        "active": True,
        "practitioner": {"reference": f"Practitioner/{p.practitioner_id}"},
        "organization": {"reference": "Organization/org-clinic-1"},
        "code": [
            concept("http://terminology.hl7.org/CodeSystem/practitioner-role", "doctor", "Doctor")
        ],
        "specialty": [p.specialty],
    }
    return [practitioner, role]


ORGANIZATIONS: Final[list[Json]] = [
    {
        "resourceType": "Organization",
        "id": "org-clinic-1",
        "active": True,
        "name": "Riverside Medical Group (synthetic)",
    },
    {
        "resourceType": "Organization",
        "id": "org-plan-1",
        "active": True,
        "name": "Example Medicaid Health Plan (synthetic)",
    },
]


# ----- one patient's chart ------------------------------------------------------------------


@dataclass
class Chart:
    """Builds the resources of one patient; ids are `<key>-<suffix>`."""

    key: str
    given: str
    family: str
    gender: str
    birth_date: str
    prescriber: Prescriber = RHEUMATOLOGIST
    encounter_class: str = "AMB"
    resources: list[Json] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def patient_id(self) -> str:
        return f"pt-{self.key}"

    @property
    def patient_ref(self) -> Json:
        return {"reference": f"Patient/{self.patient_id}"}

    @property
    def encounter_id(self) -> str:
        return f"{self.key}-enc"

    def new_id(self, kind: str) -> str:
        n = self.counters.get(kind, 0) + 1
        self.counters[kind] = n
        return f"{self.key}-{kind}-{n}"

    def add(self, resource: Json) -> Json:
        self.resources.append(resource)
        return resource

    def start(self) -> None:
        self.add(
            {
                "resourceType": "Patient",
                "id": self.patient_id,
                "identifier": [
                    {"system": "urn:oid:2.16.840.1.113883.3.9999.1", "value": f"MRN-{self.key}"}
                ],
                "active": True,
                "name": [{"use": "official", "family": self.family, "given": [self.given]}],
                "gender": self.gender,
                "birthDate": self.birth_date,
            }
        )
        inpatient = self.encounter_class == "IMP"
        self.add(
            {
                "resourceType": "Encounter",
                "id": self.encounter_id,
                "status": "in-progress",
                "class": {
                    "system": ACT_CODE,
                    "code": self.encounter_class,
                    "display": "inpatient encounter" if inpatient else "ambulatory",
                },
                "subject": self.patient_ref,
                "participant": [
                    {"individual": {"reference": f"Practitioner/{self.prescriber.practitioner_id}"}}
                ],
                "period": {"start": day(2) if inpatient else day(0)},
                "serviceProvider": {"reference": "Organization/org-clinic-1"},
            }
        )
        self.add(
            {
                "resourceType": "Coverage",
                "id": f"{self.key}-coverage",
                "status": "active",
                "subscriberId": f"MCD-{self.key}",
                "beneficiary": self.patient_ref,
                "relationship": concept(
                    "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "self", "Self"
                ),
                "period": {"start": "2015-01-01"},
                "payor": [{"reference": "Organization/org-plan-1"}],
                "class": [
                    {
                        "type": concept(
                            "http://terminology.hl7.org/CodeSystem/coverage-class", "plan", "Plan"
                        ),
                        "value": "MEDICAID-STD",
                        "name": "Medicaid standard plan",
                    }
                ],
            }
        )

    # -- clinical content --

    def condition(
        self,
        codes: list[Json],
        text: str,
        onset_days: int,
        clinical: str = "active",
        **extra: Any,
    ) -> str:
        cid = self.new_id("cond")
        self.add(
            {
                "resourceType": "Condition",
                "id": cid,
                "clinicalStatus": concept(COND_CLINICAL, clinical, clinical.capitalize()),
                "verificationStatus": concept(COND_VERIFICATION, "confirmed", "Confirmed"),
                "category": [concept(COND_CATEGORY, "problem-list-item", "Problem List Item")],
                "code": {"coding": codes, "text": text},
                "subject": self.patient_ref,
                "onsetDateTime": day(onset_days),
                "recordedDate": day(onset_days),
                **extra,
            }
        )
        return cid

    def observation(
        self,
        code: Json,
        category: str,
        days_before: int,
        value: Json,
        **extra: Any,
    ) -> str:
        oid = self.new_id("obs")
        self.add(
            {
                "resourceType": "Observation",
                "id": oid,
                "status": "final",
                "category": [concept(OBS_CATEGORY, category, category.replace("-", " ").title())],
                "code": code,
                "subject": self.patient_ref,
                "effectiveDateTime": day(days_before),
                **value,
                **extra,
            }
        )
        return oid

    def cdai(self, days_before: int, score: float) -> str:
        return self.observation(
            concept(LOINC, "88982-4", "Rheumatoid arthritis disease activity level [CDAI]", "CDAI"),
            "survey",
            days_before,
            {
                "valueQuantity": {
                    "value": score,
                    "unit": "{score}",
                    "system": UCUM,
                    "code": "{score}",
                }
            },
        )

    def weight(self, days_before: int, kg: float) -> str:
        return self.observation(
            concept(LOINC, "29463-7", "Body weight"),
            "vital-signs",
            days_before,
            {"valueQuantity": qty(kg, "kg")},
        )

    def lab(
        self,
        code: str,
        display: str,
        days_before: int,
        value: float,
        unit: str,
        high: float | None = None,
    ) -> str:
        """A lab value; `high` adds the upper limit of the reference range."""
        extra: Json = {} if high is None else {"referenceRange": [{"high": qty(high, unit)}]}
        return self.observation(
            concept(LOINC, code, display),
            "laboratory",
            days_before,
            {"valueQuantity": qty(value, unit)},
            **extra,
        )

    def crp(self, days_before: int, mg_per_l: float, high: float | None = None) -> str:
        return self.lab(
            "1988-5",
            "C reactive protein [Mass/volume] in Serum or Plasma",
            days_before,
            mg_per_l,
            "mg/L",
            high,
        )

    def negative_igra(self, days_before: int) -> str:
        return self.observation(
            concept(
                LOINC,
                "71773-6",
                "Mycobacterium tuberculosis stimulated gamma interferon [Presence] in Blood",
            ),
            "laboratory",
            days_before,
            {"valueCodeableConcept": concept(SNOMED, "260385009", "Negative")},
            interpretation=[concept(OBS_INTERPRETATION, "NEG", "Negative")],
        )

    def statement(
        self,
        drug: Drug,
        start_days: int,
        end_days: int | None,
        status: str,
        reason: str | None = None,
    ) -> str:
        sid = self.new_id("medstmt")
        period: Json = {"start": day(start_days)}
        if end_days is not None:
            period["end"] = day(end_days)
        resource: Json = {
            "resourceType": "MedicationStatement",
            "id": sid,
            "status": status,
            "medicationCodeableConcept": drug.medication(),
            "subject": self.patient_ref,
            "effectivePeriod": period,
            "dateAsserted": day(end_days if end_days is not None else 0),
            "dosage": drug.dosage(),
        }
        if reason:
            resource["statusReason"] = [{"text": reason}]
        self.add(resource)
        return sid

    def request(
        self,
        drug: Drug,
        authored_days: int,
        status: str,
        supply_days: int,
        repeats: int = 0,
        reason: str | None = None,
        medication_id: str | None = None,
    ) -> str:
        rid = self.new_id("medreq")
        medication: Json = (
            {"medicationReference": {"reference": f"Medication/{medication_id}"}}
            if medication_id
            else {"medicationCodeableConcept": drug.medication()}
        )
        resource: Json = {
            "resourceType": "MedicationRequest",
            "id": rid,
            "status": status,
            "intent": "order",
            **medication,
            "subject": self.patient_ref,
            "authoredOn": day(authored_days),
            "requester": {"reference": f"PractitionerRole/{self.prescriber.role_id}"},
            "dosageInstruction": drug.dosage(),
            "dispenseRequest": {
                "numberOfRepeatsAllowed": repeats,
                "expectedSupplyDuration": qty(supply_days, "days", "d"),
            },
        }
        if reason:
            resource["statusReason"] = {"text": reason}
        self.add(resource)
        return rid

    def dispense(self, drug: Drug, handed_days: int, supply_days: int, request_id: str) -> str:
        did = self.new_id("meddisp")
        self.add(
            {
                "resourceType": "MedicationDispense",
                "id": did,
                "status": "completed",
                "medicationCodeableConcept": drug.medication(),
                "subject": self.patient_ref,
                "authorizingPrescription": [{"reference": f"MedicationRequest/{request_id}"}],
                "quantity": {"value": supply_days, "unit": "day supply"},
                "daysSupply": qty(supply_days, "days", "d"),
                "whenHandedOver": day(handed_days),
            }
        )
        return did

    def allergy(self, code: Json, kind: str, reaction: str, recorded_days: int) -> str:
        aid = self.new_id("allergy")
        self.add(
            {
                "resourceType": "AllergyIntolerance",
                "id": aid,
                "clinicalStatus": concept(ALLERGY_CLINICAL, "active", "Active"),
                "verificationStatus": concept(ALLERGY_VERIFICATION, "confirmed", "Confirmed"),
                "type": kind,
                "category": ["medication"],
                "criticality": "high" if kind == "allergy" else "low",
                "code": code,
                "patient": self.patient_ref,
                "recordedDate": day(recorded_days),
                "reaction": [{"manifestation": [{"text": reaction}]}],
            }
        )
        return aid

    def care_team_and_referral(self, referral_days: int | None = 200) -> None:
        self.add(
            {
                "resourceType": "CareTeam",
                "id": f"{self.key}-careteam",
                "status": "active",
                "name": "Arthritis care team",
                "subject": self.patient_ref,
                "participant": [
                    {
                        "role": [RHEUMATOLOGIST.specialty],
                        "member": {"reference": f"PractitionerRole/{RHEUMATOLOGIST.role_id}"},
                    }
                ],
            }
        )
        if referral_days is not None:
            self.add(
                {
                    "resourceType": "ServiceRequest",
                    "id": f"{self.key}-referral",
                    "status": "completed",
                    "intent": "order",
                    "category": [concept(SNOMED, "3457005", "Patient referral")],
                    "code": {"text": "Referral to rheumatology"},
                    "subject": self.patient_ref,
                    "authoredOn": day(referral_days),
                    "performerType": RHEUMATOLOGIST.specialty,
                    "performer": [{"reference": f"PractitionerRole/{RHEUMATOLOGIST.role_id}"}],
                }
            )

    def bundle(self) -> Json:
        shared = [*ORGANIZATIONS, *prescriber_resources(self.prescriber)]
        if any(r["resourceType"] == "CareTeam" for r in self.resources) and (
            self.prescriber != RHEUMATOLOGIST
        ):
            shared.extend(prescriber_resources(RHEUMATOLOGIST))
        entries = [
            {
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in [*shared, *self.resources]
        ]
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


# ----- diagnoses ----------------------------------------------------------------------------

RA_SEROPOSITIVE_CODES: Final = [
    {
        "system": ICD10,
        "code": "M05.79",
        "display": "Rheumatoid arthritis with rheumatoid factor of multiple sites "
        "without organ or systems involvement",
    },
    {"system": SNOMED, "code": "69896004", "display": "Rheumatoid arthritis"},
]


# ----- the draft order ----------------------------------------------------------------------


PERIODS: Final = {"d": "daily", "wk": "weekly"}


def draft_order(
    chart: Chart,
    dose_mg: float,
    reason: list[Json],
    reason_text: str,
    *,
    drug: PackDrug | None = None,
    per: str = "d",
    loading_mg: float | None = None,
    units_per_day: int = 1,
    quantity: int | None = None,
    days: int = 28,
    bounds_days: int | None = None,
) -> Json:
    """The draft order of the pack's product (the first pack's unless `drug` is given): an
    optional single loading dose, then `dose_mg` once per `per` ("d" or "wk"); `quantity`
    units per `days` (default: `units_per_day` a day)."""
    drug = drug or pack_drug(FIRST_PACK)
    _, adverb, route = ROUTES[drug.route]
    repeat: Json = {"frequency": 1, "period": 1, "periodUnit": per}
    if bounds_days is not None:
        repeat["boundsDuration"] = qty(bounds_days, "days", "d")
    lines: list[Json] = []
    if loading_mg is not None:
        lines.append(
            {
                "text": f"Inject {loading_mg:g} mg {adverb} once (loading dose)",
                "timing": {"repeat": {"count": 1}},
            }
        )
        lines[-1].update(route=route, doseAndRate=[{"doseQuantity": qty(loading_mg, "mg")}])
    lines.append(
        {
            "text": f"Inject {dose_mg:g} mg {adverb} once {PERIODS[per]}",
            "timing": {"repeat": repeat},
            "route": route,
            "doseAndRate": [{"doseQuantity": qty(dose_mg, "mg")}],
        }
    )
    return {
        "resourceType": "MedicationRequest",
        "id": f"draft-{chart.key}",
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": drug.medication(),
        "subject": chart.patient_ref,
        "encounter": {"reference": f"Encounter/{chart.encounter_id}"},
        "authoredOn": ORDER_DATE.isoformat(),
        "requester": {"reference": f"PractitionerRole/{chart.prescriber.role_id}"},
        "reasonCode": [{"coding": reason, "text": reason_text}],
        "dosageInstruction": [{"sequence": n, **line} for n, line in enumerate(lines, start=1)],
        "dispenseRequest": {
            "numberOfRepeatsAllowed": 0 if bounds_days else 5,
            "quantity": {
                "value": days * units_per_day if quantity is None else quantity,
                "unit": drug.unit["name"],
            },
            "expectedSupplyDuration": qty(days, "days", "d"),
        },
    }


# ----- scenarios ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    outcome: str
    not_met: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()


@dataclass(frozen=True)
class Built:
    scenario: Scenario
    chart: Chart
    order: Json


def ra_chart(
    key: str,
    given: str,
    family: str,
    *,
    gender: str = "female",
    birth_date: str = "1971-04-12",
    prescriber: Prescriber = RHEUMATOLOGIST,
    mtx_days: int | None = 180,
    preferred_days: int | None = 182,
    cdai: float | None = 28,
    care_team: bool = True,
) -> Chart:
    """An adult RA chart that meets every I.A criterion unless an argument says otherwise."""
    c = Chart(key, given, family, gender, birth_date, prescriber=prescriber)
    c.start()
    c.condition(RA_SEROPOSITIVE_CODES, "Seropositive rheumatoid arthritis", 1400)
    c.lab("11572-5", "Rheumatoid factor [Units/volume] in Serum or Plasma", 1395, 96, "[IU]/mL")
    c.lab(
        "32218-0",
        "Cyclic citrullinated peptide Ab [Units/volume] in Serum by Immunoassay",
        1395,
        140,
        "U/mL",
    )
    c.lab("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", 30, 18, "mg/L")
    c.weight(30, 72.5)
    if mtx_days is not None:
        start = 1300
        reason = "Inadequate response at 25 mg weekly" if mtx_days >= 90 else "Stopped by patient"
        c.statement(MTX, start, start - mtx_days + 1, "stopped", reason)
    if preferred_days is not None:
        start = 900
        c.statement(
            ADALIMUMAB_ADAZ,
            start,
            start - preferred_days + 1,
            "stopped",
            "Inadequate response (primary non-response)",
        )
    hcq = c.request(HCQ, 400, "active", 90, repeats=3)
    c.dispense(HCQ, 399, 90, hcq)
    if cdai is not None:
        c.cdai(60, cdai + 3)
        c.cdai(12, cdai)
    if care_team:
        c.care_team_and_referral()
    return c


def ra_order(c: Chart, dose_mg: float = 100, units_per_day: int = 1) -> Json:
    return draft_order(
        c,
        dose_mg,
        RA_SEROPOSITIVE_CODES[:1],
        "Rheumatoid arthritis",
        units_per_day=units_per_day,
    )


def ra_met() -> Built:
    c = ra_chart("ra-met", "Avery", "Quinlan")
    return Built(
        Scenario(
            "ra-criteria-met",
            "RA, rheumatologist, age 55, MTX 180 days then inadequate response, adalimumab-adaz "
            "182 days stopped, CDAI 28, hydroxychloroquine ongoing (not a biologic), "
            "100 mg SC daily",
            "criteria-met",
        ),
        c,
        ra_order(c),
    )


def ra_documentation() -> Built:
    c = ra_chart(
        "ra-docs",
        "Jordan",
        "Whitfield",
        gender="male",
        birth_date="1980-09-03",
        mtx_days=None,
        cdai=None,
    )
    return Built(
        Scenario(
            "ra-documentation-needed",
            "RA, rheumatologist, adalimumab-adaz trial, but no methotrexate history and no "
            "CDAI / RAPID3",
            "documentation-needed",
            unknown=("I.A.4", "I.A.6"),
        ),
        c,
        ra_order(c),
    )


def ra_age_16() -> Built:
    c = ra_chart("ra-age16", "Riley", "Santos", birth_date="2010-05-01")
    return Built(
        Scenario(
            "ra-age-16",
            "Otherwise complete RA request for a 16-year-old",
            "criteria-not-met",
            not_met=("I.A.3",),
        ),
        c,
        ra_order(c),
    )


def ra_short_mtx() -> Built:
    c = ra_chart("ra-mtx60", "Morgan", "Ellery", birth_date="1966-02-14", mtx_days=60)
    return Built(
        Scenario(
            "ra-mtx-60-days",
            "RA with a 60-day methotrexate trial stopped without documented intolerance",
            "criteria-not-met",
            not_met=("I.A.4",),
        ),
        c,
        ra_order(c),
    )


def ra_active_adalimumab() -> Built:
    c = ra_chart("ra-ada-active", "Casey", "Brennan", birth_date="1975-07-21", preferred_days=None)
    rid = c.request(ADALIMUMAB_ADAZ, 300, "active", 28, repeats=12)
    for n in range(10):
        c.dispense(ADALIMUMAB_ADAZ, 300 - 28 * n, 28, rid)
    return Built(
        Scenario(
            "ra-active-adalimumab",
            f"RA on adalimumab-adaz for 10 months, active order: {pack_drug(FIRST_PACK).ingredient}"
            " would be combination therapy with a TNF blocker",
            "criteria-not-met",
            not_met=("I.A.7", "III.B"),
        ),
        c,
        ra_order(c),
    )


def ra_dose_200() -> Built:
    c = ra_chart("ra-dose200", "Taylor", "Voss", birth_date="1969-11-30")
    return Built(
        Scenario(
            "ra-dose-200mg",
            "Otherwise complete RA request for 200 mg SC daily (2 syringes a day)",
            "criteria-not-met",
            not_met=("I.A.8",),
        ),
        c,
        ra_order(c, 200, units_per_day=2),
    )


def ra_not_rheumatologist() -> Built:
    c = ra_chart(
        "ra-fm",
        "Drew",
        "Kowalski",
        gender="male",
        birth_date="1962-03-08",
        prescriber=FAMILY_PHYSICIAN,
        care_team=False,
    )
    # A referral to rheumatology, but 2 years ago: older than the 12 months I.A.2 accepts.
    c.add(
        {
            "resourceType": "ServiceRequest",
            "id": "ra-fm-referral",
            "status": "completed",
            "intent": "order",
            "category": [concept(SNOMED, "3457005", "Patient referral")],
            "code": {"text": "Referral to rheumatology"},
            "subject": c.patient_ref,
            "authoredOn": day(730),
            "performerType": RHEUMATOLOGIST.specialty,
        }
    )
    return Built(
        Scenario(
            "ra-prescriber-not-rheumatologist",
            "Complete RA request ordered by a family physician; no rheumatologist on the care "
            "team, last rheumatology referral 2 years ago",
            "documentation-needed",
            unknown=("I.A.2",),
        ),
        c,
        ra_order(c),
    )


def ra_mtx_intolerant() -> Built:
    c = ra_chart("ra-mtx-intol", "Harper", "Nakamura", birth_date="1984-06-17", mtx_days=None)
    c.statement(MTX, 1300, 1300 - 45 + 1, "stopped", "Transaminases above 3x upper limit")
    c.allergy(
        concept(RXNORM, "6851", "methotrexate", "Methotrexate"),
        "intolerance",
        "Hepatotoxicity (ALT above 3x upper limit of normal)",
        1250,
    )
    c.statement(SSZ, 1200, 1200 - 150 + 1, "stopped", "Inadequate response")
    return Built(
        Scenario(
            "ra-mtx-intolerant-sulfasalazine",
            "RA, methotrexate stopped after 45 days for hepatotoxicity (intolerance recorded), "
            "then sulfasalazine 150 days; otherwise complete (I.A.4 b)",
            "criteria-met",
        ),
        c,
        ra_order(c),
    )


def ra_biologic_stopped() -> Built:
    c = ra_chart("ra-etn-stopped", "Quinn", "Adeyemi", birth_date="1979-01-25")
    c.request(ETANERCEPT, 1100, "stopped", 28, repeats=5, reason="Inadequate response")
    return Built(
        Scenario(
            "ra-biologic-stopped",
            "Complete RA request; etanercept order from 3 years ago is stopped (no combination)",
            "criteria-met",
        ),
        c,
        ra_order(c),
    )


def ra_biologic_active() -> Built:
    c = ra_chart("ra-etn-active", "Rowan", "Fitzgerald", gender="male", birth_date="1973-10-02")
    c.request(ETANERCEPT, 50, "active", 28, repeats=5)
    c.statement(ETANERCEPT, 50, None, "active")
    return Built(
        Scenario(
            "ra-biologic-active",
            "Complete RA request while etanercept is active (order and statement)",
            "criteria-not-met",
            not_met=("I.A.7", "III.B"),
        ),
        c,
        ra_order(c),
    )


def ra_ecoli_allergy() -> Built:
    c = ra_chart("ra-ecoli", "Emerson", "Hale", birth_date="1968-08-19")
    c.allergy(
        {"text": "E. coli-derived proteins"},
        "allergy",
        "Urticaria and angioedema after a recombinant protein product",
        500,
    )
    return Built(
        Scenario(
            "ra-hypersensitivity-ecoli",
            "Complete RA request; active allergy to E. coli-derived proteins (Appendix C)",
            "criteria-not-met",
            not_met=("IV.C",),
        ),
        c,
        ra_order(c),
    )


def ra_drug_allergy() -> Built:
    drug = pack_drug(FIRST_PACK)
    c = ra_chart("ra-akr-allergy", "Sage", "Lindgren", birth_date="1977-12-05")
    c.allergy(
        drug.substance(),
        "allergy",
        f"Anaphylaxis after the first {drug.brand} injection",
        700,
    )
    return Built(
        Scenario(
            f"ra-hypersensitivity-{drug.ingredient}",
            f"Complete RA request; active allergy to {drug.ingredient} (Appendix C)",
            "criteria-not-met",
            not_met=("IV.C",),
        ),
        c,
        ra_order(c),
    )


def continued(key: str, given: str, family: str, baseline: float, latest: float) -> Chart:
    c = ra_chart(key, given, family, birth_date="1970-03-22", cdai=None)
    c.cdai(190, baseline)
    c.cdai(95, (baseline + latest) / 2)
    c.cdai(10, latest)
    # The EHR's current order points at a Medication resource (NDC + RxNorm), as many do.
    drug = pack_drug(FIRST_PACK)
    current = drug.history(100, "d")
    medication_id = f"{key}-med-{drug.brand.lower()}"
    c.add(
        {
            "resourceType": "Medication",
            "id": medication_id,
            "code": {
                "coding": [
                    {"system": NDC, **_code(drug.product("ndc"))},
                    {"system": RXNORM, **_code(drug.product("rxnorm", "SBD"))},
                ],
                "text": drug.text,
            },
            "form": {"text": drug.unit["name"]},
        }
    )
    rid = c.request(current, 182, "active", 28, repeats=5, medication_id=medication_id)
    for n in range(7):
        c.dispense(current, 182 - 28 * n, 28, rid)
    c.statement(current, 182, None, "active")
    return c


def _code(product: Json) -> Json:
    return {"code": product["code"], "display": product["display"]}


def ra_continued_improving() -> Built:
    c = continued("ra-cont-better", "Blake", "Moreno", 31, 12)
    return Built(
        Scenario(
            "ra-continued-improving",
            f"On {pack_drug(FIRST_PACK).ingredient} 100 mg daily for 6 months; CDAI 31 at "
            "baseline, 12 now (renewal)",
            "criteria-met",
        ),
        c,
        ra_order(c),
    )


def ra_continued_worsening() -> Built:
    c = continued("ra-cont-worse", "Reese", "Okonkwo", 24, 33)
    return Built(
        Scenario(
            "ra-continued-worsening",
            f"On {pack_drug(FIRST_PACK).ingredient} 100 mg daily for 6 months; CDAI 24 at "
            "baseline, 33 now (renewal)",
            "criteria-not-met",
            not_met=("II.A.2",),
        ),
        c,
        ra_order(c),
    )


NOMID_CODES: Final = [
    {"system": SNOMED, "code": "239826001", "display": "CINCA syndrome"},
    {"system": ICD10, "code": "M04.2", "display": "Cryopyrin-associated periodic syndromes"},
]
CAPS_CODES: Final = [
    {"system": ICD10, "code": "M04.2", "display": "Cryopyrin-associated periodic syndromes"}
]
DIRA_CODES: Final = [
    {"system": ICD10, "code": "M04.8", "display": "Other autoinflammatory syndromes"}
]
DIRA_TEXT: Final = "Deficiency of interleukin-1 receptor antagonist (DIRA)"


def child(
    key: str, given: str, family: str, birth_date: str, codes: list[Json], text: str
) -> Chart:
    c = Chart(key, given, family, "female", birth_date, prescriber=PEDIATRIC_RHEUMATOLOGIST)
    c.start()
    c.condition(codes, text, 700)
    c.lab("1988-5", "C reactive protein [Mass/volume] in Serum or Plasma", 14, 42, "mg/L")
    return c


def nomid_met() -> Built:
    text = "Neonatal-onset multisystem inflammatory disease (NOMID)"
    c = child("nomid-met", "Ella", "Brandt", "2019-03-02", NOMID_CODES, text)
    c.weight(19, 20.0)
    return Built(
        Scenario(
            "nomid-criteria-met",
            "NOMID (SNOMED CINCA + M04.2 'NOMID'), pediatric rheumatologist, 20 kg, "
            "40 mg SC daily = 2 mg/kg/day",
            "criteria-met",
        ),
        c,
        draft_order(c, 40, NOMID_CODES, text),
    )


def nomid_over() -> Built:
    text = "Neonatal-onset multisystem inflammatory disease (NOMID)"
    c = child("nomid-over", "Mila", "Ferreira", "2022-08-09", NOMID_CODES, text)
    c.weight(10, 12.0)
    return Built(
        Scenario(
            "nomid-dose-over-8mg-kg",
            "NOMID, 12 kg, 100 mg SC daily = 8.3 mg/kg/day (limit 8 mg/kg/day)",
            "criteria-not-met",
            not_met=("I.B.4",),
        ),
        c,
        draft_order(c, 100, NOMID_CODES, text),
    )


def caps_unspecified() -> Built:
    text = "Cryopyrin-associated periodic syndrome"
    c = child("caps-m042", "Noor", "Abbasi", "2017-05-28", CAPS_CODES, text)
    c.weight(20, 25.0)
    return Built(
        Scenario(
            "caps-m04-2-only",
            "M04.2 with no NOMID / CINCA concept or text (the whole CAPS family), 25 kg, "
            "50 mg daily = 2 mg/kg/day",
            "documentation-needed",
            unknown=("I.B.1",),
        ),
        c,
        draft_order(c, 50, CAPS_CODES, text),
    )


def il1rn_observation(c: Chart, days_before: int) -> str:
    return c.observation(
        concept(LOINC, "69548-6", "Genetic variant assessment"),
        "laboratory",
        days_before,
        {"valueCodeableConcept": concept(LOINC, "LA9633-4", "Present")},
        component=[
            {
                "code": concept(LOINC, "48018-6", "Gene studied [ID]"),
                "valueCodeableConcept": concept(HGNC, "HGNC:6000", "IL1RN"),
            },
            {
                "code": concept(LOINC, "81252-9", "Discrete genetic variant"),
                "valueCodeableConcept": {"text": "IL1RN c.156_157delCA (p.Gln54Argfs*2)"},
            },
            {
                "code": concept(LOINC, "53034-5", "Allelic state"),
                "valueCodeableConcept": concept(LOINC, "LA6705-3", "Homozygous"),
            },
            {
                "code": concept(
                    LOINC, "53037-8", "Genetic disease sequence variation interpretation"
                ),
                "valueCodeableConcept": concept(LOINC, "LA6668-3", "Pathogenic"),
            },
        ],
    )


def dira_met() -> Built:
    c = child("dira-il1rn", "Amara", "Osei", "2024-02-15", DIRA_CODES, DIRA_TEXT)
    il1rn_observation(c, 600)
    c.weight(8, 12.0)
    return Built(
        Scenario(
            "dira-il1rn-pathogenic",
            "DIRA (M04.8 'DIRA') with a homozygous pathogenic IL1RN variant, 12 kg, "
            "24 mg daily = 2 mg/kg/day",
            "criteria-met",
        ),
        c,
        draft_order(c, 24, DIRA_CODES, DIRA_TEXT),
    )


def dira_no_genetics() -> Built:
    c = child("dira-nogene", "Lior", "Benami", "2023-10-30", DIRA_CODES, DIRA_TEXT)
    c.weight(8, 14.0)
    return Built(
        Scenario(
            "dira-without-genetic-result",
            "DIRA named in the Condition text (M04.8) but no IL1RN result, 14 kg, 28 mg daily",
            "documentation-needed",
            unknown=("I.C.1",),
        ),
        c,
        draft_order(c, 28, DIRA_CODES, DIRA_TEXT),
    )


COVID_CODES: Final = [
    {"system": ICD10, "code": "U07.1", "display": "COVID-19"},
    {
        "system": SNOMED,
        "code": "840539006",
        "display": "Disease caused by severe acute respiratory syndrome coronavirus 2",
    },
]


def covid(key: str, given: str, family: str, encounter_class: str) -> Chart:
    c = Chart(
        key,
        given,
        family,
        "male",
        "1958-06-11",
        prescriber=HOSPITALIST,
        encounter_class=encounter_class,
    )
    c.start()
    c.condition(COVID_CODES, "COVID-19", 3)
    c.condition(
        [
            {
                "system": ICD10,
                "code": "J12.82",
                "display": "Pneumonia due to coronavirus disease 2019",
            }
        ],
        "COVID-19 pneumonia requiring supplemental oxygen",
        2,
    )
    c.observation(
        concept(
            LOINC,
            "94500-6",
            "SARS-CoV-2 (COVID-19) RNA [Presence] in Respiratory system specimen by NAA with "
            "probe detection",
        ),
        "laboratory",
        3,
        {"valueCodeableConcept": concept(SNOMED, "260373001", "Detected")},
    )
    c.weight(2, 88.0)
    return c


def covid_inpatient() -> Built:
    c = covid("covid-inpt", "Victor", "Almeida", "IMP")
    return Built(
        Scenario(
            "covid-19-inpatient",
            "Hospitalized (Encounter class IMP) COVID-19 pneumonia on oxygen, positive NAAT; "
            "100 mg SC daily for 10 days (EUA regimen)",
            "criteria-met",
        ),
        c,
        draft_order(c, 100, COVID_CODES[:1], "COVID-19", days=10, bounds_days=10),
    )


def covid_outpatient() -> Built:
    c = covid("covid-outpt", "Hugo", "Lambert", "AMB")
    return Built(
        Scenario(
            "covid-19-outpatient",
            "Same COVID-19 request from an ambulatory encounter (class AMB)",
            "criteria-not-met",
            not_met=("I.D.1",),
        ),
        c,
        draft_order(c, 100, COVID_CODES[:1], "COVID-19", days=10, bounds_days=10),
    )


def stills_off_label() -> Built:
    codes = [{"system": ICD10, "code": "M06.1", "display": "Adult-onset Still's disease"}]
    c = Chart("stills", "Parker", "Delacroix", "female", "1990-01-09")
    c.start()
    c.condition(codes, "Adult-onset Still's disease", 400)
    c.weight(20, 64.0)
    c.care_team_and_referral()
    return Built(
        Scenario(
            "stills-off-label",
            "Adult-onset Still's disease (M06.1, not RA): not a covered indication, I.E points "
            "to the off-label policy CP.PMN.53",
            "off-label-review",
            unknown=("I.E", "III.A"),
        ),
        c,
        draft_order(c, 100, codes, "Adult-onset Still's disease"),
    )


def long_history() -> Built:
    """Ten years of RA care: ~700 Observations and ~150 medication records."""
    c = ra_chart(
        "ra-long",
        "Morgan",
        "Tremblay",
        birth_date="1964-09-14",
        mtx_days=None,
        preferred_days=None,
        cdai=None,
    )
    months = 128  # monthly visits, from ~10.5 years ago to last week
    for m in range(months):
        before = 7 + 30 * (months - 1 - m)
        # CDAI drifts down under treatment and flares when a drug fails.
        wave = 8 * math.sin(m / 6.0)
        c.cdai(before, round(max(4.0, 34 - m * 0.12 + wave), 1))
        c.lab(
            "1988-5",
            "C reactive protein [Mass/volume] in Serum or Plasma",
            before,
            round(max(1.0, 14 + wave), 1),
            "mg/L",
        )
        c.lab(
            "4537-7",
            "Erythrocyte sedimentation rate by Westergren method",
            before,
            round(max(5.0, 32 + 2 * wave)),
            "mm/h",
        )
        c.observation(
            concept(LOINC, "8867-4", "Heart rate"),
            "vital-signs",
            before,
            {"valueQuantity": qty(68 + (m % 9), "/min")},
        )
        c.observation(
            concept(LOINC, "8480-6", "Systolic blood pressure"),
            "vital-signs",
            before,
            {"valueQuantity": qty(118 + (m % 13), "mm[Hg]", "mm[Hg]")},
        )
        if m % 3 == 0:
            c.weight(before, round(78 - m * 0.03, 1))
    # Methotrexate 2.5 years, monthly fills, then failure.
    mtx_start = 3700
    mtx_req = c.request(
        MTX,
        mtx_start,
        "stopped",
        28,
        repeats=40,
        reason="Inadequate response at maximum tolerated dose",
    )
    for n in range(32):
        c.dispense(MTX, mtx_start - 28 * n, 28, mtx_req)
    # Adalimumab-adaz 2 years of fills, then loss of response.
    ada_start = 2700
    ada_req = c.request(
        ADALIMUMAB_ADAZ, ada_start, "stopped", 28, repeats=30, reason="Secondary loss of response"
    )
    for n in range(26):
        c.dispense(ADALIMUMAB_ADAZ, ada_start - 28 * n, 28, ada_req)
    # Tocilizumab 9 months, stopped for neutropenia.
    toc_req = c.request(TOCILIZUMAB, 1900, "stopped", 28, repeats=10, reason="Neutropenia")
    for n in range(9):
        c.dispense(TOCILIZUMAB, 1900 - 28 * n, 28, toc_req)
    # Leflunomide, current, renewed every 90 days.
    for n in range(14):
        status = "active" if n == 13 else "completed"
        rid = c.request(LEF, 1250 - 90 * n, status, 90)
        c.dispense(LEF, 1250 - 90 * n, 90, rid)
    c.statement(LEF, 1250, None, "active")
    return Built(
        Scenario(
            "ra-long-history",
            "RA for 10 years: monthly CDAI / CRP / ESR / vitals (~700 Observations), MTX then "
            "adalimumab-adaz then tocilizumab fills (~150 medication records), leflunomide "
            "ongoing; latest CDAI moderate",
            "criteria-met",
        ),
        c,
        ra_order(c),
    )


# ----- the second pack's patients -----------------------------------------------------------

MWS_CODES: Final = [
    {"system": ICD10, "code": "M04.2", "display": "Cryopyrin-associated periodic syndromes"},
    {"system": SNOMED, "code": "402417009", "display": "Muckle-Wells syndrome"},
]
PERICARDITIS_CODES: Final = [
    {"system": ICD10, "code": "I30.0", "display": "Acute nonspecific idiopathic pericarditis"},
    {"system": SNOMED, "code": "3238004", "display": "Pericarditis"},
]


def second_order(c: Chart, dose_mg: float, reason: list[Json], text: str, **kw: Any) -> Json:
    """A weekly order of the second pack's product, 28 days a fill."""
    return draft_order(c, dose_mg, reason, text, drug=pack_drug(SECOND_PACK), per="wk", **kw)


def caps_mws_met() -> Built:
    c = Chart("ril-caps-mws", "Henrik", "Solberg", "male", "1984-02-11", prescriber=ALLERGIST)
    c.start()
    c.condition(MWS_CODES, "Muckle-Wells syndrome (CAPS)", 1200)
    c.condition(
        [{"system": ICD10, "code": "L50.2", "display": "Urticaria due to cold and heat"}],
        "Recurrent urticaria-like rash",
        1500,
    )
    c.condition(
        [{"system": ICD10, "code": "H90.3", "display": "Sensorineural hearing loss, bilateral"}],
        "Bilateral sensorineural hearing loss",
        700,
    )
    c.crp(45, 34, high=10.0)
    c.negative_igra(40)
    c.weight(30, 82.0)
    return Built(
        Scenario(
            "ril-caps-mws-criteria-met",
            "Muckle-Wells syndrome (M04.2 + SNOMED MWS), allergist / immunologist, age 42, "
            "CRP 34 mg/L (ref. < 10), urticaria and sensorineural hearing loss, negative IGRA "
            "40 days ago; 320 mg loading then 160 mg weekly, "
            f"5 {pack_drug(SECOND_PACK).unit['plural']} / 28 days",
            "criteria-met",
        ),
        c,
        second_order(c, 160, MWS_CODES, "Muckle-Wells syndrome", loading_mg=320, quantity=5),
    )


def dira_switch() -> Built:
    previous = pack_drug(FIRST_PACK)
    c = Chart(
        "ril-dira-switch",
        "Yara",
        "Haddad",
        "female",
        "2015-08-19",
        prescriber=PEDIATRIC_RHEUMATOLOGIST,
    )
    c.start()
    c.condition(DIRA_CODES, DIRA_TEXT, 2900)
    il1rn_observation(c, 2800)
    c.weight(12, 32.0)
    c.crp(14, 1.8, high=5.0)
    c.negative_igra(60)
    current = previous.history(100, "d")
    rid = c.request(current, 200, "active", 30, repeats=11)
    c.dispense(current, 25, 30, rid)
    return Built(
        Scenario(
            f"ril-dira-switch-from-{previous.ingredient}",
            "DIRA with a homozygous pathogenic IL1RN variant, 32 kg, in remission on "
            f"{previous.ingredient} (active order, dispensed 25 days ago; CRP 1.8 mg/L), "
            "pediatric rheumatologist; 140 mg (4.4 mg/kg) weekly. The "
            f"{previous.ingredient} is the switch, not a combination: the card says to stop it "
            "at its next dose",
            "criteria-met",
        ),
        c,
        second_order(c, 140, DIRA_CODES, DIRA_TEXT, quantity=4),
    )


def pericarditis_needs_nsaid() -> Built:
    c = Chart(
        "ril-rp-colchicine", "Marta", "Kowalczyk", "female", "1976-11-02", prescriber=CARDIOLOGIST
    )
    c.start()
    c.condition(
        PERICARDITIS_CODES,
        "Acute idiopathic pericarditis",
        330,
        clinical="resolved",
        abatementDateTime=day(300),
    )
    c.condition(PERICARDITIS_CODES, "Recurrent pericarditis, second episode", 45)
    c.statement(COLCHICINE, 290, None, "active")
    c.negative_igra(90)
    return Built(
        Scenario(
            "ril-rp-colchicine-failure-needs-nsaid",
            "Recurrent pericarditis: episodes 330 and 45 days ago (4+ weeks apart), the second "
            "after 245 days of colchicine; cardiologist; no NSAID or aspirin course on file and "
            "no NSAID intolerance: I.C.4 asks for the NSAID / aspirin course",
            "documentation-needed",
            unknown=("I.C.4",),
        ),
        c,
        second_order(
            c, 160, PERICARDITIS_CODES[:1], "Recurrent pericarditis", loading_mg=320, quantity=5
        ),
    )


def nomid_not_covered() -> Built:
    codes = [NOMID_CODES[1], NOMID_CODES[0]]
    c = Chart(
        "ril-nomid", "Leo", "Martins", "male", "2012-04-03", prescriber=PEDIATRIC_RHEUMATOLOGIST
    )
    c.start()
    c.condition(codes, "Neonatal-onset multisystem inflammatory disease (NOMID)", 4000)
    c.weight(10, 48.0)
    c.crp(10, 22, high=10.0)
    return Built(
        Scenario(
            "ril-nomid-not-covered",
            "NOMID / CINCA (SNOMED CINCA + M04.2), age 14, 48 kg: not an "
            f"{pack_drug(SECOND_PACK).brand} indication (III.B); "
            f"{pack_drug(FIRST_PACK).ingredient} is ({FIRST_PACK})",
            "criteria-not-met",
            not_met=("III.B",),
        ),
        c,
        second_order(c, 105, codes, "NOMID / CINCA", loading_mg=211, quantity=5),
    )


BUILDERS: Final[tuple[Callable[[], Built], ...]] = (
    ra_met,
    ra_documentation,
    ra_age_16,
    ra_short_mtx,
    ra_active_adalimumab,
    ra_dose_200,
    ra_not_rheumatologist,
    ra_mtx_intolerant,
    ra_biologic_stopped,
    ra_biologic_active,
    ra_ecoli_allergy,
    ra_drug_allergy,
    ra_continued_improving,
    ra_continued_worsening,
    nomid_met,
    nomid_over,
    caps_unspecified,
    dira_met,
    dira_no_genetics,
    covid_inpatient,
    covid_outpatient,
    stills_off_label,
    long_history,
)


SECOND_BUILDERS: Final[tuple[Callable[[], Built], ...]] = (
    caps_mws_met,
    dira_switch,
    pericarditis_needs_nsaid,
    nomid_not_covered,
)


@dataclass(frozen=True)
class PatientSet:
    """The patients of one policy pack and the folder (under `patients/`) they are written to."""

    policy_id: str
    folder: str
    """"" for `patients/` itself."""
    builders: tuple[Callable[[], Built], ...]


def patient_sets() -> tuple[PatientSet, ...]:
    """The first pack's patients in `patients/`, the second's in `patients/<ingredient>/`."""
    return (
        PatientSet(FIRST_PACK, "", BUILDERS),
        PatientSet(SECOND_PACK, pack_drug(SECOND_PACK).ingredient, SECOND_BUILDERS),
    )


def build_all() -> list[Built]:
    """The first pack's patients."""
    return [build() for build in BUILDERS]


def dumps(data: Any) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def manifest(built: list[Built]) -> list[Json]:
    return [
        {
            "name": b.scenario.name,
            "bundle": f"{b.scenario.name}.json",
            "order": f"{b.scenario.name}.order.json",
            "patientId": b.chart.patient_id,
            "encounterId": b.chart.encounter_id,
            "userPractitionerRoleId": b.chart.prescriber.role_id,
            "userPractitionerId": b.chart.prescriber.practitioner_id,
            "description": b.scenario.description,
            "expectedOutcome": b.scenario.outcome,
            "expectedNotMet": list(b.scenario.not_met),
            "expectedUnknown": list(b.scenario.unknown),
        }
        for b in built
    ]


README_HEAD: Final = """# Synthetic patients for the FHIR sandbox

Generated by `python -m sandbox.make_patients` (do not edit by hand; change the scenario in
`sandbox/make_patients.py` and regenerate). Everything is invented. Orders are authored
2026-11-20 and every history is dated relative to that day.

Per scenario: `<name>.json` is a transaction Bundle (PUT entries with fixed ids, so loading it
again changes nothing), `<name>.order.json` the draft {drug} MedicationRequest to send as
`context.draftOrders`. `scenarios.json` has the same table with the patient, encounter and
PractitionerRole ids for hook requests. Prescribers: `PractitionerRole/prrole-rheum-1`
(NUCC 207RR0500X rheumatology), `prrole-pedrheum-1` (2080P0216X pediatric rheumatology),
`prrole-fm-1` (family medicine), `prrole-hosp-1` (hospitalist).

Expected outcomes are those INTERPRETATION.md gives; "not-met" / "unknown" list the criteria
expected with that status (others `met` or not applicable).
"""

SUBSET_README_HEAD: Final = """# Synthetic {drug} ({brand}) patients for the FHIR sandbox \
(policy {policy_id})

Generated by `python -m sandbox.make_patients` with the chart builder of the patients one
folder up (do not edit by hand). Same shapes: a transaction Bundle per patient, the draft
{brand} MedicationRequest authored 2026-11-20, and `scenarios.json`. Everything is invented.
Extra prescribers: `PractitionerRole/prrole-allergy-1` (NUCC 207K00000X allergy & immunology)
and `prrole-cardio-1` (207RC0000X cardiovascular disease). Expected outcomes are those of the
pack's INTERPRETATION.md.
"""

TABLE_HEAD: Final = """
| patient | scenario | expected outcome | not-met | unknown |
|---|---|---|---|---|
"""


def readme(built: list[Built], patients: PatientSet | None = None) -> str:
    patients = patients or patient_sets()[0]
    drug = pack_drug(patients.policy_id)
    template = SUBSET_README_HEAD if patients.folder else README_HEAD
    head = template.format(drug=drug.ingredient, brand=drug.brand, policy_id=drug.policy_id)
    rows = [
        f"| `{b.chart.patient_id}` (`{b.scenario.name}`) | {b.scenario.description} | "
        f"{b.scenario.outcome} | {', '.join(b.scenario.not_met) or '-'} | "
        f"{', '.join(b.scenario.unknown) or '-'} |"
        for b in built
    ]
    return head + TABLE_HEAD + "\n".join(rows) + "\n"


def rendered_files() -> Iterator[tuple[str, str]]:
    """(path under `patients/`, content) for every file this script owns."""
    for patients in patient_sets():
        prefix = f"{patients.folder}/" if patients.folder else ""
        built = [build() for build in patients.builders]
        for b in built:
            yield f"{prefix}{b.scenario.name}.json", dumps(b.chart.bundle())
            yield f"{prefix}{b.scenario.name}.order.json", dumps(b.order)
        yield f"{prefix}scenarios.json", dumps(manifest(built))
        yield f"{prefix}README.md", readme(built, patients)


def main() -> None:
    for name, content in rendered_files():
        path = PATIENTS_DIR / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


if __name__ == "__main__":
    main()
