"""FHIR R4 building blocks for the rilonacept (Arcalyst, IL1.RIL.01) scenarios.

The scenario files under this folder are plain CDS Hooks order-sign requests; this module and
`make_scenarios` only write them (`python -m tests.scenarios.rilonacept.make_scenarios`).
Shapes follow what EHRs and laboratories send (US Core): ICD-10-CM and SNOMED CT Conditions
with onset / abatement and clinical status (resolved episodes too, problem-list items and
encounter diagnoses), LOINC laboratory results with a reference range in the laboratory's own
unit, IGRA results as a coded value plus interpretation, skin tests as an induration in mm,
RxNorm products with displays and NDCs, NUCC specialties. The order is authored on
ORDER_DATE and every other date is placed relative to it. Codes are those of
fhir_mappings/valuesets and the pack's codes.md.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from tests.scenarios import ra_builder as ra

Json = dict[str, Any]

ORDER_DATE = ra.ORDER_DATE
PATIENT_REF = ra.PATIENT_REF
RXNORM, NDC, ICD10, SCT, LOINC, NUCC, UCUM = (
    ra.RXNORM,
    ra.NDC,
    ra.ICD10,
    ra.SCT,
    ra.LOINC,
    ra.NUCC,
    ra.UCUM,
)
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"

concept = ra.concept
bundle = ra.bundle
patient = ra.patient

Code = tuple[str, str, str]

# --- medications as an EHR codes them -------------------------------------------------------
ARCALYST_SBD: Code = (RXNORM, "763457", "rilonacept 220 MG Injection [Arcalyst]")
ARCALYST_SCD: Code = (RXNORM, "763453", "rilonacept 220 MG Injection")
ARCALYST_NDC: Code = (NDC, "73604-0914-01", "Arcalyst 220 mg single-dose vial")
KINERET_SBD = ra.KINERET_SBD
KINERET_NDC = ra.KINERET_NDC
COLCHICINE_TAB: Code = (RXNORM, "197541", "colchicine 0.6 MG Oral Tablet")
COLCHICINE_IN: Code = (RXNORM, "2683", "colchicine")
IBUPROFEN_TAB: Code = (RXNORM, "197806", "ibuprofen 600 MG Oral Tablet")
ASPIRIN_IN: Code = (RXNORM, "1191", "aspirin")
ISONIAZID_TAB: Code = (RXNORM, "197622", "isoniazid 300 MG Oral Tablet")
ISONIAZID_IN: Code = (RXNORM, "6038", "isoniazid")
ACTEMRA = ra.ACTEMRA
ILARIS: Code = (RXNORM, "853495", "Ilaris")

# --- diagnoses -----------------------------------------------------------------------------
CAPS_ICD: Code = (ICD10, "M04.2", "Cryopyrin-associated periodic syndromes")
MWS_SCT: Code = (SCT, "402417009", "Muckle-Wells syndrome")
FCAS_SCT: Code = (SCT, "238687000", "Familial cold autoinflammatory syndrome")
NOMID_SCT: Code = (SCT, "239826001", "CINCA syndrome (NOMID)")
AUTOINFLAMMATORY_OTHER: Code = (ICD10, "M04.8", "Other autoinflammatory syndromes")
PERICARDITIS_ACUTE: Code = (ICD10, "I30.9", "Acute pericarditis, unspecified")
PERICARDITIS_IDIOPATHIC: Code = (ICD10, "I30.0", "Acute nonspecific idiopathic pericarditis")
PERICARDITIS_SCT: Code = (SCT, "3238004", "Pericarditis")
RECURRENT_PERICARDITIS_SCT: Code = (SCT, "766704005", "Idiopathic recurrent pericarditis")
URTICARIA: Code = (ICD10, "L50.8", "Other urticaria")
URTICARIA_SCT: Code = (SCT, "126485001", "Urticaria")
HEARING_LOSS: Code = (ICD10, "H90.3", "Sensorineural hearing loss, bilateral")
ARTHRALGIA: Code = (ICD10, "M25.50", "Pain in unspecified joint")
PNEUMONIA: Code = (ICD10, "J18.9", "Pneumonia, unspecified organism")
SEPSIS: Code = (ICD10, "A41.9", "Sepsis, unspecified organism")
PULMONARY_TB: Code = (ICD10, "A15.0", "Tuberculosis of lung")
LATENT_TB: Code = (ICD10, "Z22.7", "Latent tuberculosis")
GOUT: Code = (ICD10, "M10.9", "Gout, unspecified")

# --- specialties (NUCC) ---------------------------------------------------------------------
ALLERGY_IMMUNOLOGY: Code = (NUCC, "207K00000X", "Allergy & Immunology")
ALLERGY_ONLY: Code = (NUCC, "207KA0200X", "Allergy & Immunology, Allergy")
RHEUMATOLOGY = ra.RHEUM
CARDIOLOGY: Code = (NUCC, "207RC0000X", "Internal Medicine, Cardiovascular Disease")
DERMATOLOGY: Code = (NUCC, "207N00000X", "Dermatology")
GENETICS: Code = (NUCC, "207SG0201X", "Medical Genetics, Clinical Genetics (M.D.)")
INTERNAL_MEDICINE: Code = (NUCC, "207R00000X", "Internal Medicine")
FAMILY_MEDICINE = ra.FAMILY_MEDICINE


def day(offset: int) -> str:
    """The date `offset` days from the order date (negative: before it)."""
    return (ORDER_DATE + timedelta(days=offset)).isoformat()


def years_before(years: int, offset_days: int = 0) -> str:
    """A birth date `years` whole years before the order date, moved by `offset_days`."""
    born = ORDER_DATE.replace(year=ORDER_DATE.year - years)
    return (born + timedelta(days=offset_days)).isoformat()


def _status(system: str, code: str) -> Json:
    return concept(system, code, code.replace("-", " ").title())


# --- conditions -----------------------------------------------------------------------------


def condition(
    cid: str,
    codings: list[Code],
    text: str,
    *,
    clinical: str | None = "active",
    verification: str = "confirmed",
    onset: str | None = "2019-03-02",
    abatement: str | None = None,
    category: str = "problem-list-item",
    encounter: str | None = None,
) -> Json:
    """A Condition as US Core writes it: problem-list item or encounter diagnosis, with an
    onset date and, for a resolved one, an abatement date."""
    out: Json = {
        "resourceType": "Condition",
        "id": cid,
        "verificationStatus": _status(VERIFICATION, verification),
        "category": [
            concept(
                CONDITION_CATEGORY,
                category,
                "Problem List Item" if category == "problem-list-item" else "Encounter Diagnosis",
            )
        ],
        "code": {
            "coding": [{"system": s, "code": c, "display": d} for s, c, d in codings],
            "text": text,
        },
        "subject": PATIENT_REF,
    }
    if clinical is not None:
        out["clinicalStatus"] = _status(CLINICAL, clinical)
    if onset is not None:
        out["onsetDateTime"] = onset
        out["recordedDate"] = onset
    if abatement is not None:
        out["abatementDateTime"] = abatement
    if encounter is not None:
        out["encounter"] = {"reference": f"Encounter/{encounter}"}
    return out


def pericarditis_episode(
    cid: str,
    onset: str | None,
    abatement: str | None = None,
    *,
    category: str = "encounter-diagnosis",
    code: Code = PERICARDITIS_ACUTE,
    text: str = "Acute pericarditis",
) -> Json:
    """One episode of pericarditis: resolved (with its abatement date) when it has ended."""
    at_visit = category == "encounter-diagnosis"
    return condition(
        cid,
        [code, PERICARDITIS_SCT] if code[0] == ICD10 else [code],
        text,
        clinical="resolved" if abatement is not None else "active",
        onset=f"{onset}T10:20:00-05:00" if at_visit and onset else onset,
        abatement=f"{abatement}T16:45:00-05:00" if at_visit and abatement else abatement,
        category=category,
        encounter=f"enc-{cid}" if at_visit else None,
    )


def symptom(cid: str, codings: list[Code], text: str, onset: str) -> Json:
    return condition(cid, codings, text, onset=onset)


# --- observations ---------------------------------------------------------------------------


def _quantity(value: float, unit: str) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


def lab(
    oid: str,
    code: Code,
    effective: str,
    value: float,
    unit: str,
    *,
    ref_high: float | None = None,
    ref_unit: str | None = None,
    text: str | None = None,
    flag: str | None = None,
) -> Json:
    """A laboratory result as a lab interface sends it: LOINC code, value in the lab's unit,
    reference range (high only, with its own text) and the H / N flag."""
    out: Json = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [concept(OBS_CATEGORY, "laboratory", "Laboratory")],
        "code": concept(*code, text=text),
        "subject": PATIENT_REF,
        "effectiveDateTime": f"{effective}T08:15:00-05:00",
        "issued": f"{effective}T14:02:00-05:00",
        "valueQuantity": _quantity(value, unit),
    }
    if ref_high is not None:
        high_unit = ref_unit or unit
        out["referenceRange"] = [
            {"high": _quantity(ref_high, high_unit), "text": f"<={ref_high} {high_unit}"}
        ]
    if flag is not None:
        out["interpretation"] = [
            concept(INTERPRETATION, flag, {"H": "High", "N": "Normal", "L": "Low"}[flag])
        ]
    return out


CRP: Code = (LOINC, "1988-5", "C reactive protein [Mass/volume] in Serum or Plasma")
HS_CRP: Code = (
    LOINC,
    "30522-7",
    "C reactive protein [Mass/volume] in Serum or Plasma by High sensitivity method",
)
SAA: Code = (LOINC, "48498-0", "Amyloid A [Mass/volume] in Serum or Plasma")
IGRA: Code = (
    LOINC,
    "71773-6",
    "Mycobacterium tuberculosis stimulated gamma interferon [Presence] in Blood",
)
TST: Code = (LOINC, "39263-9", "Tuberculin screen test status CPHS")
BODY_WEIGHT: Code = (LOINC, "29463-7", "Body weight")

IGRA_RESULTS = {
    "negative": ((SCT, "260385009", "Negative"), "N", "Negative"),
    "positive": ((SCT, "10828004", "Positive"), "POS", "Positive"),
    "indeterminate": ((SCT, "82334004", "Indeterminate"), "IND", "Indeterminate"),
}


def crp(oid: str, effective: str, value: float, unit: str = "mg/L", **kw: Any) -> Json:
    kw.setdefault("ref_high", 10 if unit == "mg/L" else 1.0)
    return lab(oid, CRP, effective, value, unit, text="CRP", **kw)


def saa(oid: str, effective: str, value: float, unit: str = "mg/L", **kw: Any) -> Json:
    kw.setdefault("ref_high", 6.4 if unit == "mg/L" else 0.64)
    return lab(oid, SAA, effective, value, unit, text="Serum amyloid A", **kw)


def below_detection(oid: str, code: Code, effective: str, limit: float, unit: str) -> Json:
    """A result under the assay's reporting limit, sent as a quantity with comparator '<'."""
    out = lab(oid, code, effective, limit, unit, text="CRP")
    out["valueQuantity"]["comparator"] = "<"
    return out


def with_range_text(observation: Json, text: str) -> Json:
    """The same result whose reference range is only the laboratory's printed text."""
    out = copy.deepcopy(observation)
    out["referenceRange"] = [{"text": text}]
    return out


def igra_text(oid: str, effective: str, word: str) -> Json:
    """An IGRA result sent as the laboratory's printed word (valueString), no coding."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [concept(OBS_CATEGORY, "laboratory", "Laboratory")],
        "code": concept(*IGRA, text="QuantiFERON-TB Gold Plus"),
        "subject": PATIENT_REF,
        "effectiveDateTime": f"{effective}T09:00:00-05:00",
        "valueString": word,
    }


def igra(oid: str, effective: str, result: str) -> Json:
    """A QuantiFERON-TB Gold Plus result: the qualitative answer as SNOMED CT plus the
    v3 interpretation code, as reference laboratories send it."""
    value, flag, word = IGRA_RESULTS[result]
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [concept(OBS_CATEGORY, "laboratory", "Laboratory")],
        "code": concept(*IGRA, text="QuantiFERON-TB Gold Plus"),
        "subject": PATIENT_REF,
        "effectiveDateTime": f"{effective}T09:00:00-05:00",
        "valueCodeableConcept": concept(*value, text=word),
        "interpretation": [concept(INTERPRETATION, flag, word)],
    }


def skin_test(oid: str, read_on: str, induration_mm: float, flag: str | None = None) -> Json:
    """A tuberculin skin test read at 48-72 h: the induration in mm, with the reader's
    interpretation when charted."""
    out: Json = {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [concept(OBS_CATEGORY, "laboratory", "Laboratory")],
        "code": concept(*TST, text="Tuberculin skin test (PPD) induration"),
        "subject": PATIENT_REF,
        "effectiveDateTime": read_on,
        "valueQuantity": _quantity(induration_mm, "mm"),
    }
    if flag is not None:
        word = {"N": "Negative", "POS": "Positive"}[flag]
        out["interpretation"] = [concept(INTERPRETATION, flag, word)]
    return out


def weight(oid: str, effective: str, kg: float, unit: str = "kg") -> Json:
    """A body weight vital sign; US EHRs often send pounds ([lb_av])."""
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [concept(OBS_CATEGORY, "vital-signs", "Vital Signs")],
        "code": concept(*BODY_WEIGHT),
        "subject": PATIENT_REF,
        "effectiveDateTime": effective,
        "valueQuantity": {
            "value": kg,
            "unit": "lb" if unit == "[lb_av]" else unit,
            "system": UCUM,
            "code": unit,
        },
    }


def il1rn_result(oid: str, effective: str, significance: Code | None) -> Json:
    """An IL1RN genetic variant assessment as NH.PHAR.244 reads it (LOINC 69548-6 with the
    gene studied HGNC:6000 and the clinical significance)."""
    components: list[Json] = [
        {
            "code": concept(LOINC, "48018-6", "Gene studied [ID]"),
            "valueCodeableConcept": concept(
                "http://www.genenames.org/geneId", "HGNC:6000", "IL1RN"
            ),
        }
    ]
    present = significance is not None
    if significance is not None:
        components += [
            {
                "code": concept(LOINC, "81252-9", "Discrete genetic variant"),
                "valueCodeableConcept": {"text": "IL1RN c.229G>T (p.Glu77Ter)"},
            },
            {
                "code": concept(LOINC, "53037-8", "Genetic variation clinical significance [Imp]"),
                "valueCodeableConcept": concept(*significance),
            },
        ]
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "category": [concept(OBS_CATEGORY, "laboratory", "Laboratory")],
        "code": concept(LOINC, "69548-6", "Genetic variant assessment"),
        "subject": PATIENT_REF,
        "effectiveDateTime": effective,
        "valueCodeableConcept": concept(
            LOINC, *(("LA9633-4", "Present") if present else ("LA9634-2", "Absent"))
        ),
        "component": components,
    }


PATHOGENIC: Code = (LOINC, "LA6668-3", "Pathogenic")
LIKELY_PATHOGENIC: Code = (LOINC, "LA26332-9", "Likely pathogenic")
UNCERTAIN: Code = (LOINC, "LA26333-7", "Uncertain significance")
BENIGN: Code = (LOINC, "LA6675-8", "Benign")


# --- medications ----------------------------------------------------------------------------


def med_request(
    rid: str,
    med: Code,
    authored: str,
    *,
    status: str = "active",
    supply_days: int | None = 30,
    repeats: int | None = 0,
    quantity: float | None = None,
    quantity_unit: str = "tablet",
    dosage: list[Json] | None = None,
    end: str | None = None,
) -> Json:
    out = ra.med_request(
        rid,
        med,
        authored,
        status=status,
        supply_days=supply_days,
        repeats=repeats,
        quantity=quantity,
        quantity_unit=quantity_unit,
        dosage=dosage,
    )
    if end is not None:
        out.setdefault("dispenseRequest", {})["validityPeriod"] = {"start": authored, "end": end}
    return out


def med_statement(
    sid: str, med: Code, start: str, end: str | None, *, status: str = "completed"
) -> Json:
    return ra.med_statement(sid, med, start, end, status=status)


def med_dispense(
    did: str,
    med: Code,
    handed_over: str,
    days_supply: int,
    quantity: float,
    unit: str = "tablet",
) -> Json:
    out = ra.med_dispense(did, med, handed_over, days_supply, quantity)
    out["quantity"] = {"value": quantity, "unit": unit}
    return out


def allergy(aid: str, code: Code, reaction: str, recorded: str = "2024-04-01") -> Json:
    return ra.allergy(aid, concept(*code), reaction=reaction, recorded=recorded)


def role(rid: str, specialty: Code) -> Json:
    return ra.role(rid, specialty)


# --- the Arcalyst order ---------------------------------------------------------------------


def weekly(mg: float, unit: str = "mg", ucum: str | None = "mg", weeks: int = 1) -> Json:
    """A weekly maintenance line (sequence 2 after a loading dose)."""
    every = "once weekly" if weeks == 1 else f"every {weeks} weeks"
    line = ra.dose_line(
        mg, unit, ucum, 1, weeks, "wk", text=f"Inject {mg:g} {unit} subcutaneously {every}"
    )
    line["sequence"] = 2
    return line


def daily_tablets(mg: float, times: int, text: str) -> Json:
    """An oral dose line: `mg` by mouth `times` a day."""
    return ra.dose_line(mg, "mg", "mg", times, 1, "d", text=text)


def twice_weekly(mg: float) -> Json:
    line = ra.dose_line(
        mg, "mg", "mg", 2, 1, "wk", text=f"Inject {mg:g} mg subcutaneously twice weekly"
    )
    line["sequence"] = 2
    return line


def loading(mg: float, unit: str = "mg", ucum: str | None = "mg") -> Json:
    """The single loading dose: one administration (timing.repeat.count 1), sequence 1."""
    return {
        "sequence": 1,
        "text": f"Loading dose: inject {mg:g} {unit} subcutaneously once (two injections, "
        "two sites, same day)",
        "route": concept(SCT, "34206005", "Subcutaneous route"),
        "timing": {"repeat": {"count": 1}},
        "doseAndRate": [{"doseQuantity": _dose_quantity(mg, unit, ucum)}],
    }


def _dose_quantity(value: float, unit: str, ucum: str | None) -> Json:
    out: Json = {"value": value, "unit": unit}
    if ucum is not None:
        out.update({"system": UCUM, "code": ucum})
    return out


def only_weekly(mg: float, unit: str = "mg", ucum: str | None = "mg") -> list[Json]:
    line = weekly(mg, unit, ucum)
    del line["sequence"]
    return [line]


def arcalyst_draft(
    did: str = "draft-arcalyst",
    med: Code = ARCALYST_SBD,
    dosage: list[Json] | None = None,
    quantity: float | None = 5,
    supply_days: int | None = 28,
    reason: list[Json] | None = None,
    requester: str = "PractitionerRole/prrole-spec",
) -> Json:
    """The draft Arcalyst order: by default a 320 mg loading dose then 160 mg weekly, 5 vials
    (2 for the loading dose and 3 weekly) for 28 days."""
    out: Json = {
        "resourceType": "MedicationRequest",
        "id": did,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": concept(
            *med, text="Arcalyst (rilonacept) 220 mg single-dose vial"
        ),
        "subject": PATIENT_REF,
        "encounter": {"reference": "Encounter/enc-office"},
        "authoredOn": ORDER_DATE.isoformat(),
        "requester": {"reference": requester},
        "dosageInstruction": dosage if dosage is not None else [loading(320), weekly(160)],
    }
    if reason is not None:
        out["reasonCode"] = reason
    dispense: Json = {"numberOfRepeatsAllowed": 5}
    if quantity is not None:
        dispense["quantity"] = {
            "value": quantity,
            "unit": "vial",
            "system": UCUM,
            "code": "{vial}",
        }
    if supply_days is not None:
        dispense["expectedSupplyDuration"] = ra.supply(supply_days)
    out["dispenseRequest"] = dispense
    return out


def contained_medication(draft: Json, med: Code) -> Json:
    """The draft order pointing at a contained Medication resource (as EHRs that keep a
    medication catalogue send it) instead of a medicationCodeableConcept."""
    out = copy.deepcopy(draft)
    del out["medicationCodeableConcept"]
    out["contained"] = [
        {
            "resourceType": "Medication",
            "id": "med-arcalyst",
            "code": concept(*med, text="ARCALYST 220 MG SUBCUTANEOUS SOLR"),
        }
    ]
    out["medicationReference"] = {"reference": "#med-arcalyst"}
    return out


def kineret_draft(did: str = "draft-kineret") -> Json:
    out = ra.kineret_draft(did=did)
    out["requester"] = {"reference": "PractitionerRole/prrole-spec"}
    return out


class Chart:
    """A patient chart that a scenario edits before it is written as a request. Empty but
    for an adult patient, the prescriber's role and the draft order: the section bases
    (make_scenarios) fill it."""

    def __init__(self) -> None:
        self.patient = patient("1985-03-14")
        self.conditions: list[Json] = []
        self.requests: list[Json] = []
        self.statements: list[Json] = []
        self.dispenses: list[Json] = []
        self.administrations: list[Json] = []
        self.allergies: list[Json] = []
        self.observations: list[Json] = []
        self.assessments: list[Json] = []
        self.roles: list[Json] = [role("prrole-spec", ALLERGY_IMMUNOLOGY)]
        self.care_teams: list[Json] = []
        self.referrals: list[Json] = []
        self.drafts: list[Json] = [arcalyst_draft()]
        self.user = "PractitionerRole/prrole-spec"

    def specialty(self, code: Code) -> None:
        """The prescriber (the user and the draft orders' requester) has this specialty."""
        self.roles = [role("prrole-spec", code)]

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
            "medicationAdministrations": bundle(self.administrations),
            "allergies": bundle(self.allergies),
            "observations": bundle(self.observations),
            "assessments": bundle(self.assessments),
            "userRole": user_role,
            "userRoles": bundle(self.roles),
            "careTeams": bundle(self.care_teams),
            "referrals": bundle(self.referrals),
            "encounter": ra.office_encounter(),
            "coverage": ra.plan_coverage(),
        }
        return ra.order_sign_request(hook_instance, self.user, self.drafts, prefetch)
