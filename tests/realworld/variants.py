"""Scenario variants for the shapes of issue 12 that the samples lack, each built by
changing one thing in a real sample chart (never written from scratch), with what a
pharmacist decides for the changed chart.

Hershel Marvin (Synthea 2) is the usual base: an adult with active, confirmed RA whose
methotrexate order has no supply fields, ordered by a prescriber with no role on file, order
signed at his last visit (2020-02-04). Each variant changes the one record its shape needs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Final

from tests.realworld.charts import RXNORM, SNOMED, UCUM, Json
from tests.realworld.ehr import OrderEdit
from tests.realworld.expectations import (
    CARE_SETTING,
    CONTRAINDICATIONS,
    DIAGNOSES,
    DISPENSES,
    MEDICATION_IDENTITY,
    NO_COMBINATION,
    NO_HYPERSENSITIVITY,
    NOT_EVALUATED,
    RECORD_IDENTITY,
    RENEWALS,
    REQUEST_SHAPES,
    ROLES,
    THERAPY_LENGTH,
    VALUE_SHAPES,
    Case,
    Expected,
    Transform,
    met,
    not_met,
    ra_criteria,
    spec,
    unknown,
)

HERSHEL: Final = "synthea-v2/Hershel_Marvin"
HERSHEL_PATIENT: Final = "Patient/4e122e91-c63f-4112-a778-6ccf5abfd6f2"
HERSHEL_MTX: Final = "bb1f035d-5e64-4119-9c26-25f76f9a7726"
HERSHEL_RA: Final = "cd390cd5-e2d3-40ef-a8ed-eaa769deeac0"
HERSHEL_PRESCRIBER: Final = "de786289-dd70-4048-b126-b5fa2121471f"
HERSHEL_SPEC: Final = spec("2020-02-04", HERSHEL_PRESCRIBER, "2bf3d5f3-f56d-4ef8-8a32-4f864184c11b")
HERSHEL_HOLDS: Final = "Hershel Marvin's chart (RA since 2018, MTX order without supply fields)"

ASA: Final = "synthea-v2/Asa_Hermiston"
ASA_PATIENT: Final = "Patient/c79b748f-a792-4aea-bca5-c7c9c5b188cd"
ASA_MTX: Final = "4249567c-78a8-4054-8717-4ffec60b040a"
ASA_CYCLOSPORINE: Final = "6f69ee56-2498-4109-a630-e083d82685a6"

SYNTHEA3: Final = "synthea-v3/6a4160eb-a793-2f86-2302-378626f46cce"
SYNTHEA3_PATIENT: Final = "Patient/6a4160eb-a793-2f86-2302-378626f46cce"
SYNTHEA3_PRESCRIBER: Final = "434d1b72-48ce-3581-8b8a-96d49f9c52d8"
SYNTHEA3_ROLE: Final = "8d86131a-2a18-645e-1c9b-58d83e3d51a8"
"""The PractitionerRole naming the prescriber only by NPI identifier."""

AMY: Final = "us-core/amy-shaw"
PAT014: Final = "davinci-test-ehr/pat014"

MTX_NO_SUPPLY_WHY: Final = "MTX order without supply fields or dispenses: length not documented."


# --- small editing helpers ----------------------------------------------------------------------


def _edit(resource_id: str, change: Callable[[Json], None]) -> Transform:
    def transform(resources: list[Json]) -> list[Json]:
        found = [r for r in resources if r.get("id") == resource_id]
        assert found, f"{resource_id} is not in the chart"
        for resource in found:
            change(resource)
        return resources

    return transform


def _add(*new: Json) -> Transform:
    def transform(resources: list[Json]) -> list[Json]:
        return [*resources, *copy.deepcopy(list(new))]

    return transform


def _chain(*steps: Transform) -> Transform:
    def transform(resources: list[Json]) -> list[Json]:
        for step in steps:
            resources = step(resources)
        return resources

    return transform


def _concept(system: str, code: str, display: str) -> Json:
    return {"coding": [{"system": system, "code": code, "display": display}], "text": display}


def _condition(rid: str, patient: str, concept: Json, onset: str, **extra: object) -> Json:
    return {
        "resourceType": "Condition",
        "id": rid,
        "clinicalStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"
        ),
        "verificationStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"
        ),
        "category": [
            _concept(
                "http://terminology.hl7.org/CodeSystem/condition-category",
                "problem-list-item",
                "Problem List Item",
            )
        ],
        "code": concept,
        "subject": {"reference": patient},
        "onsetDateTime": onset,
        **extra,
    }


MTX_10MG: Final = _concept(RXNORM, "105586", "Methotrexate 10 MG Oral Tablet")


def _mtx_dispense(rid: str, handed_over: str) -> Json:
    return {
        "resourceType": "MedicationDispense",
        "id": rid,
        "status": "completed",
        "medicationCodeableConcept": copy.deepcopy(MTX_10MG),
        "subject": {"reference": HERSHEL_PATIENT},
        "authorizingPrescription": [{"reference": f"MedicationRequest/{HERSHEL_MTX}"}],
        "quantity": {"value": 12, "unit": "TAB"},
        "daysSupply": {"value": 28, "unit": "days", "system": UCUM, "code": "d"},
        "whenHandedOver": handed_over,
    }


def _cdai(value: Json, rid: str | None) -> Json:
    observation: Json = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            _concept("http://terminology.hl7.org/CodeSystem/observation-category", "exam", "Exam")
        ],
        "code": _concept(
            "http://loinc.org", "88982-4", "Rheumatoid arthritis disease activity level [CDAI]"
        ),
        "subject": {"reference": HERSHEL_PATIENT},
        "effectiveDateTime": "2020-01-27T08:00:00+00:00",
        **value,
    }
    if rid is not None:
        observation["id"] = rid
    return observation


def _supply(days: int, repeats: int) -> Json:
    return {
        "numberOfRepeatsAllowed": repeats,
        "expectedSupplyDuration": {"value": days, "unit": "days", "system": UCUM, "code": "d"},
    }


def _renewals(resources: list[Json]) -> list[Json]:
    """The MTX order becomes two 60-day orders, the second renewing the first the day before
    it runs out: 119 days in one run, neither order 90 days alone."""
    first = next(r for r in resources if r.get("id") == HERSHEL_MTX)
    first.update(status="completed", authoredOn="2019-10-01T07:56:53+00:00")
    first["dispenseRequest"] = _supply(30, 1)
    second = copy.deepcopy(first)
    second.update(
        id="realworld-mtx-renewal",
        status="active",
        authoredOn="2019-11-29T07:56:53+00:00",
        priorPrescription={"reference": f"MedicationRequest/{HERSHEL_MTX}"},
    )
    return [*resources, second]


def _stale_then_newest(resources: list[Json]) -> list[Json]:
    """Two versions of the MTX order arrive, the stale one first: version 1 says a year's
    supply, version 2 (newer) says the order was entered in error."""
    index = next(i for i, r in enumerate(resources) if r.get("id") == HERSHEL_MTX)
    stale = copy.deepcopy(resources[index])
    stale["meta"] = {"versionId": "1", "lastUpdated": "2018-08-12T08:00:00+00:00"}
    stale["dispenseRequest"] = _supply(90, 3)
    newest = copy.deepcopy(resources[index])
    newest["meta"] = {"versionId": "2", "lastUpdated": "2020-01-30T08:00:00+00:00"}
    newest["status"] = "entered-in-error"
    return [*resources[:index], stale, newest, *resources[index + 1 :]]


def _npi_role_rheumatology(resources: list[Json]) -> list[Json]:
    for resource in resources:
        if resource.get("id") == SYNTHEA3_ROLE:
            rheum = _concept(
                "http://nucc.org/provider-taxonomy",
                "207RR0500X",
                "Internal Medicine, Rheumatology",
            )
            resource["specialty"] = [rheum]
            resource["code"] = [copy.deepcopy(rheum)]
    return resources


def _text_sig(order: Json) -> None:
    order["dosageInstruction"] = [{"text": "inject 100 mg under the skin once daily"}]


def _r5_medication(order: Json) -> None:
    """The order as an R5 client writes it: `medication` is a CodeableReference."""
    order["medication"] = {"concept": order.pop("medicationCodeableConcept")}


def _eua_course(order: Json) -> None:
    order["dispenseRequest"] = {
        "numberOfRepeatsAllowed": 0,
        "quantity": {"value": 10, "unit": "syringe"},
        "expectedSupplyDuration": {"value": 10, "unit": "days", "system": UCUM, "code": "d"},
    }


def _hershel(
    tag: str,
    holds: str,
    why: str,
    outcome: str = "documentation-needed",
    transform: Transform | None = None,
    edit_order: OrderEdit | None = None,
    **criteria: Expected,
) -> Case:
    changes: dict[str, Expected] = {"I_A_4": unknown(MTX_NO_SUPPLY_WHY, THERAPY_LENGTH)}
    changes.update(criteria)
    return Case(
        name=f"variant/{tag}",
        chart=HERSHEL,
        holds=f"{HERSHEL_HOLDS}; {holds}",
        spec=HERSHEL_SPEC,
        section="I.A",
        outcome=outcome,
        why=why,
        criteria=ra_criteria(**changes),
        transform=transform,
        edit_order=edit_order,
    )


VARIANT_CASES: Final[tuple[Case, ...]] = (
    _hershel(
        "hershel-mtx-validity-period-only",
        "the MTX order's dispenseRequest has only a one-year validityPeriod.",
        "How long a prescription may be filled is not how long MTX was taken.",
        transform=_edit(
            HERSHEL_MTX,
            lambda r: r.update(
                dispenseRequest={"validityPeriod": {"start": "2018-08-12", "end": "2019-08-12"}}
            ),
        ),
        I_A_4=unknown("Only a validity window: MTX exposure not documented.", THERAPY_LENGTH),
    ),
    _hershel(
        "hershel-mtx-dispenses",
        "four monthly MTX dispenses (28 days each) from 2019-09-01.",
        "Dispenses document 112 days of MTX; the rest is still missing.",
        transform=_add(
            _mtx_dispense("realworld-mtx-fill-1", "2019-09-01"),
            _mtx_dispense("realworld-mtx-fill-2", "2019-09-29"),
            _mtx_dispense("realworld-mtx-fill-3", "2019-10-27"),
            _mtx_dispense("realworld-mtx-fill-4", "2019-11-24"),
        ),
        I_A_4=met("Four 28-day MTX fills in a row: 112 consecutive days.", DISPENSES),
    ),
    _hershel(
        "hershel-mtx-renewals",
        "the MTX order renewed once: two 60-day orders (30 days + 1 refill) back to back.",
        "Renewals of the same drug make one 119-day MTX run.",
        transform=_renewals,
        I_A_4=met("Two back-to-back 60-day MTX orders: 119 consecutive days.", RENEWALS),
    ),
    _hershel(
        "hershel-adalimumab-dispense",
        "a Humira dispense (28 days) handed over two weeks before the order.",
        "A biologic dispensed 14 days ago is current therapy: combination not covered.",
        outcome="criteria-not-met",
        transform=_add(
            {
                "resourceType": "MedicationDispense",
                "id": "realworld-humira-fill",
                "status": "completed",
                "medicationCodeableConcept": _concept(RXNORM, "353484", "Humira"),
                "subject": {"reference": HERSHEL_PATIENT},
                "quantity": {"value": 2, "unit": "pen"},
                "daysSupply": {"value": 28, "unit": "days", "system": UCUM, "code": "d"},
                "whenHandedOver": "2020-01-21",
            }
        ),
        I_A_5=unknown("Humira is not a listed preferred product and 28 days is not 3 months."),
        I_A_7=not_met("Adalimumab dispensed for 28 days on 2020-01-21.", DISPENSES),
        III_B=not_met("Adalimumab dispensed for 28 days on 2020-01-21.", DISPENSES),
    ),
    _hershel(
        "hershel-unresolved-medication",
        "an active order whose medicationReference names a Medication the EHR does not have.",
        "An active medication nobody can identify may be a biologic: ask.",
        transform=_add(
            {
                "resourceType": "MedicationRequest",
                "id": "realworld-unknown-med",
                "status": "active",
                "intent": "order",
                "medicationReference": {"reference": "Medication/realworld-not-sent"},
                "subject": {"reference": HERSHEL_PATIENT},
                "authoredOn": "2020-01-10",
            }
        ),
        I_A_7=unknown("An active order's medication cannot be identified.", MEDICATION_IDENTITY),
        III_B=unknown("An active order's medication cannot be identified.", MEDICATION_IDENTITY),
    ),
    _hershel(
        "hershel-provisional-ra",
        "the RA Condition's verificationStatus is provisional.",
        "A provisional RA diagnosis is confirmed by documentation, not sent off-label.",
        transform=_edit(
            HERSHEL_RA,
            lambda r: r.update(
                verificationStatus=_concept(
                    "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "provisional",
                    "Provisional",
                )
            ),
        ),
        I_A_1=unknown("RA is recorded as provisional: confirm the diagnosis.", DIAGNOSES),
    ),
    _hershel(
        "hershel-ra-text-only",
        "the RA Condition carries only the text 'Rheumatoid arthritis', no code.",
        "An uncoded RA diagnosis is confirmed by documentation, not sent off-label.",
        transform=_edit(HERSHEL_RA, lambda r: r.update(code={"text": "Rheumatoid arthritis"})),
        I_A_1=unknown("RA recorded as text only: send the coded diagnosis.", DIAGNOSES),
    ),
    _hershel(
        "hershel-stale-version-first",
        "two versions of the MTX order, the stale one (a year's supply) before the newest "
        "(entered in error).",
        "The newest version counts: the MTX order was entered in error.",
        transform=_stale_then_newest,
        I_A_4=unknown("The MTX order's newest version is entered-in-error.", RECORD_IDENTITY),
    ),
    _hershel(
        "hershel-idless-cdai",
        "a CDAI of 25 (2020-01-27) sent without an id.",
        "A resource without an id is still part of the chart: CDAI documented.",
        transform=_add(_cdai({"valueQuantity": {"value": 25, "unit": "{score}"}}, None)),
        I_A_6=met("CDAI 25 on 2020-01-27 (high activity).", RECORD_IDENTITY),
    ),
    _hershel(
        "hershel-cdai-value-string",
        "a CDAI recorded as valueString '12.5' (2020-01-27).",
        "A plain number in valueString is read: CDAI documented.",
        transform=_add(_cdai({"valueString": "12.5"}, "realworld-cdai-string")),
        I_A_6=met("CDAI 12.5 on 2020-01-27 (moderate activity).", VALUE_SHAPES),
    ),
    _hershel(
        "hershel-careteam-rheumatologist",
        "a CareTeam listing the prescriber with SNOMED CT role 45440000 (rheumatologist).",
        "The prescriber is the patient's rheumatologist on the care team.",
        transform=_add(
            {
                "resourceType": "CareTeam",
                "id": "realworld-careteam",
                "status": "active",
                "subject": {"reference": HERSHEL_PATIENT},
                "participant": [
                    {
                        "role": [_concept(SNOMED, "45440000", "Rheumatologist")],
                        "member": {"reference": f"Practitioner/{HERSHEL_PRESCRIBER}"},
                    }
                ],
            }
        ),
        I_A_2=met("Prescriber is on the care team as rheumatologist (SNOMED CT).", ROLES),
    ),
    _hershel(
        "hershel-text-only-sig",
        "the Kineret order's sig is text only: 'inject 100 mg under the skin once daily'.",
        "An unambiguous text sig is read: 100 mg once daily.",
        edit_order=_text_sig,
        I_A_8=met("Text sig: 100 mg once daily; 28 syringes for 28 days.", VALUE_SHAPES),
    ),
    Case(
        name="variant/hershel-r5-shaped-order",
        chart=HERSHEL,
        holds=f"{HERSHEL_HOLDS}; the Kineret order is R5-shaped (medication.concept).",
        spec=HERSHEL_SPEC,
        section="",
        outcome=NOT_EVALUATED,
        why="An order the service cannot read gets a card saying it was not checked, never none.",
        criteria={},
        edit_order=_r5_medication,
        pathway="",
        shape=REQUEST_SHAPES,
    ),
    Case(
        name="variant/hershel-record-unreadable",
        chart=HERSHEL,
        holds=f"{HERSHEL_HOLDS}; the EHR sends no prefetch and its FHIR server is down.",
        spec=HERSHEL_SPEC,
        section="",
        outcome=NOT_EVALUATED,
        why="The record cannot be read: a card says what could not be checked, not a bare 412.",
        criteria={},
        pathway="",
        record_unreadable=True,
    ),
    Case(
        name="variant/asa-snomed-cirrhosis-cyclosporine",
        chart=ASA,
        holds=(
            "Asa Hermiston's chart; cirrhosis of liver coded in SNOMED CT (2019-12), the MTX "
            "order stopped, the 2017 cyclosporine order given 30 days + 3 refills, completed."
        ),
        spec=spec(
            "2020-06-10",
            "6d705d81-8546-43b2-b336-31a282128f2d",
            "6eff6fb0-a484-4072-bdfd-d6200489a7fa",
        ),
        section="I.A",
        outcome="documentation-needed",
        why="MTX contraindicated by liver cirrhosis and 120 days of cyclosporine: I.A.4(b) met.",
        criteria=ra_criteria(
            I_A_4=met(
                "Cirrhosis (SNOMED CT) contraindicates MTX; cyclosporine taken 120 days.",
                CONTRAINDICATIONS,
            )
        ),
        transform=_chain(
            _add(
                _condition(
                    "realworld-cirrhosis",
                    ASA_PATIENT,
                    _concept(SNOMED, "19943007", "Cirrhosis of liver"),
                    "2019-12-01",
                )
            ),
            _edit(ASA_MTX, lambda r: r.update(status="stopped")),
            _edit(
                ASA_CYCLOSPORINE,
                lambda r: r.update(status="completed", dispenseRequest=_supply(30, 3)),
            ),
        ),
    ),
    Case(
        name="variant/synthea3-npi-linked-rheumatologist",
        chart=SYNTHEA3,
        holds=(
            "The Synthea 3 chart with an active RA diagnosis (SNOMED) added and the "
            "prescriber's PractitionerRole, which names the practitioner only by NPI, given "
            "the NUCC rheumatology specialty; the EHR signs as that role."
        ),
        spec=spec(
            "2022-04-11",
            SYNTHEA3_PRESCRIBER,
            product="rxnorm-scd",
            user=f"PractitionerRole/{SYNTHEA3_ROLE}",
        ),
        section="I.A",
        outcome="documentation-needed",
        why="The role found through the prescriber's NPI is rheumatology; MTX etc. missing.",
        criteria=ra_criteria(
            I_A_2=met("The prescriber's role (linked by NPI) is NUCC 207RR0500X.", ROLES)
        ),
        transform=_chain(
            _add(
                _condition(
                    "realworld-ra",
                    SYNTHEA3_PATIENT,
                    _concept(SNOMED, "69896004", "Rheumatoid arthritis"),
                    "2015-03-02",
                )
            ),
            _npi_role_rheumatology,
        ),
    ),
    Case(
        name="variant/amy-covid-no-encounter",
        chart=AMY,
        holds=(
            "Amy Shaw's chart with COVID-19 (U07.1) diagnosed 2025-08-30; a 10-day EUA course "
            "ordered with no encounter in the request."
        ),
        spec=spec("2025-09-02", "Practitioner-1011", product="rxnorm-scd"),
        section="I.D",
        outcome="documentation-needed",
        why="No encounter: the setting is unknown, so ask whether the patient is hospitalized.",
        criteria={
            "I.D.1": unknown("No encounter: hospital admission not known.", CARE_SETTING),
            "III.B": met(NO_COMBINATION),
            "IV.C": met(NO_HYPERSENSITIVITY),
        },
        transform=_add(
            _condition(
                "realworld-covid",
                "Patient/example",
                _concept("http://hl7.org/fhir/sid/icd-10-cm", "U07.1", "COVID-19"),
                "2025-08-30",
            )
        ),
        edit_order=_eua_course,
    ),
    Case(
        name="variant/pat014-ra-quantity-refills",
        chart=PAT014,
        holds=(
            "Da Vinci pat014 with RA (ICD-10-CM M05.79) added: methotrexate 2.5 mg, 90 tablets "
            "+ 3 refills at 7.5 mg daily from 2020-07-11 (no supply duration), an active MTX "
            "statement since 2020-07-10, azathioprine order and dispense."
        ),
        spec=spec("2020-11-16", "pra1234", product="ndc"),
        section="I.A",
        outcome="documentation-needed",
        why="90 MTX tablets x 4 fills at 3 a day is 120 days; the rest missing.",
        criteria=ra_criteria(
            I_A_4=met("90 tablets x 4 fills at 3 tablets a day: 120 days of MTX.", THERAPY_LENGTH),
            I_A_7=met("Methotrexate and azathioprine are conventional DMARDs."),
            III_B=met("Methotrexate and azathioprine are conventional DMARDs."),
        ),
        transform=_add(
            _condition(
                "realworld-ra-m05",
                "Patient/pat014",
                _concept(
                    "http://hl7.org/fhir/sid/icd-10-cm",
                    "M05.79",
                    "Rheumatoid arthritis with rheumatoid factor of multiple sites without "
                    "organ or systems involvement",
                ),
                "2019-05-01",
            )
        ),
    ),
)
