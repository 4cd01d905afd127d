"""The policy-neutral patient record (`fhir_mappings.build_record`), read from public sample
charts nobody here wrote (a Synthea 2 RA patient, the Da Vinci test EHR's pat014, and two
real-world variants that add roles in the shapes EHRs write them), with a draft Kineret
order as the EHR sends it; and the per-order facts `build_facts` derives from it."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import fhir_mappings
from fhir_mappings import build_record, medications
from fhir_mappings.record import PatientRecord
from tests.mappings.mapping_builders import (
    RXNORM,
    cc,
    context,
    dosage,
    every,
    med_request,
    statement,
    weight,
)
from tests.realworld.cases import prepare
from tests.realworld.ehr import ORDER_REF, draft_order, hook_context
from tests.realworld.variants import SYNTHEA3_ROLE
from tests.routed import build_facts

ASA = "synthea-v2/Asa_Hermiston"
ASA_PATIENT = "Patient/c79b748f-a792-4aea-bca5-c7c9c5b188cd"
ASA_RA = "Condition/81f2012b-7bea-4b0c-a16b-dbeec26e6732"
ASA_MTX = "MedicationRequest/4249567c-78a8-4054-8717-4ffec60b040a"
ASA_CYCLOSPORINE = "MedicationRequest/6f69ee56-2498-4109-a630-e083d82685a6"
ASA_NAPROXEN = (
    "MedicationRequest/54940f35-8bdc-4953-94b2-4b8ab294b8f9",
    "MedicationRequest/f711808c-9cb9-4c31-a589-9cfc9f34b7c4",
    "MedicationRequest/d7a184e3-8edc-49cf-9b3b-4a2067e5c297",
)
PAT014 = "davinci-test-ehr/pat014"

Json = dict[str, Any]


def _chart(name: str) -> tuple[Json, list[Json], date]:
    """The hook context (with the draft Kineret order), the chart's resources and the
    order date of a real-world case."""
    prepared = prepare(name)
    ctx = hook_context(prepared.chart, prepared.spec, draft_order(prepared.chart, prepared.spec))
    return ctx, prepared.chart.fresh_resources(), prepared.spec.order_date


def _record(name: str) -> tuple[PatientRecord, date]:
    ctx, resources, order_date = _chart(name)
    return build_record(ctx, resources, as_of=order_date), order_date


# --- what a reader of the chart expects ---------------------------------------------------------


def test_synthea_ra_chart_record_holds_the_patient_diagnosis_and_orders() -> None:
    record, _ = _record(ASA)
    assert record.patient_ref == ASA_PATIENT
    assert record.birth_date == date(1971, 3, 3)
    assert [(sorted(d.valuesets), d.verification, d.refs) for d in record.diagnoses] == [
        (["rheumatoid-arthritis"], "confirmed", (ASA_RA,))
    ]
    assert record.conditions_on_file == 7
    assert record.encounter is not None
    assert record.encounter.setting == "ambulatory"
    weights = [m for m in record.measurements if m.kind == "body-weight"]
    assert len(weights) == 5
    assert {m.unit for m in weights} == {"kg"}
    assert all(60 < (m.value or 0) < 120 for m in weights)
    assert record.problems == ()


def test_synthea_ra_chart_medications_and_exposures_per_ingredient() -> None:
    record, order_date = _record(ASA)
    chart_records = {(m.ref, m.drug) for m in record.medications if not m.is_draft_order}
    # Naproxen is in a value set too (NSAIDs, read by the rilonacept pack's pericarditis
    # criteria): its three orders are records of the chart, not of the anakinra policy.
    assert chart_records == {
        (ASA_MTX, "methotrexate"),
        (ASA_CYCLOSPORINE, "cyclosporine"),
        *((ref, "naproxen") for ref in ASA_NAPROXEN),
    }
    # The draft order is in the record, marked as one; it is never exposure.
    drafts = [m for m in record.medications if m.is_draft_order]
    assert [(m.ref, m.drug) for m in drafts] == [(ORDER_REF, "anakinra")]
    assert all(m.mg_per_day is None for m in record.medications)
    # Synthea writes no supply fields: the length of each order is unknown, never one day.
    exposures = {(e.record.drug, e.measured.certainty) for e in record.exposures}
    assert exposures == {
        ("methotrexate", "unknown"),
        ("cyclosporine", "unknown"),
        ("naproxen", "unknown"),
    }
    runs = {r.drug: r for r in record.runs(order_date)}
    assert runs["methotrexate"].certainty == "unknown"
    assert runs["methotrexate"].open_ended
    assert runs["methotrexate"].refs == (ASA_MTX,)


def test_synthea_ra_chart_draft_order_is_an_ordered_drug() -> None:
    record, order_date = _record(ASA)
    (order,) = record.orders
    assert order.ref == ORDER_REF
    assert order.authored_on == order_date
    assert [(i.drug, i.matched_by) for i in order.identities] == [("anakinra", "product-code")]
    assert order.is_for("anakinra") is not None
    assert order.is_for("methotrexate") is None
    assert order.unidentified is None
    assert order.dose.mg_per_day == 100
    assert order.dose.administrations_per_day == 1
    assert (order.quantity, order.quantity_unit) == (28, "syringe")
    assert (order.expected_supply_days, order.refills) == (28, 5)
    assert order.supply.certainty == "documented"
    assert order.supply.basis == "expected supply 28 days, 5 refills"
    assert order.requester_ref == record.user_ref
    assert order.weight is not None
    assert order.weight.ref.startswith("Observation/")
    assert record.unreadable_orders == ()
    assert record.other_draft_resources == 0


def test_davinci_pat014_exposures_with_certainty_coverage_and_care_team() -> None:
    record, order_date = _record(PAT014)
    assert record.patient_ref == "Patient/pat014"
    certainty = Counter(
        (e.record.drug, e.record.resource_type, e.measured.certainty) for e in record.exposures
    )
    # Orders with quantity + refills only (estimated), statements with a start only
    # (unknown length), an azathioprine dispense with its days supply (documented).
    assert certainty == Counter(
        {
            ("azathioprine", "MedicationRequest", "estimated"): 1,
            ("methotrexate", "MedicationRequest", "estimated"): 1,
            ("azathioprine", "MedicationStatement", "unknown"): 1,
            ("methotrexate", "MedicationStatement", "unknown"): 1,
            ("azathioprine", "MedicationDispense", "documented"): 1,
        }
    )
    runs = {r.drug: r for r in record.runs(order_date)}
    assert runs["azathioprine"].certainty == "estimated"
    assert runs["azathioprine"].days == 191
    assert runs["methotrexate"].open_ended
    assert record.coverage_refs == ("Coverage/cov014",)
    assert [ref for _, ref, _ in record.people.care_team] == ["CareTeam/pat014-hhs-careteam"]
    assert record.encounter is None  # the request names no encounter
    # Unknown fields are reported by resource and field, never by value.
    assert "PractitionerRole/prarol1234: organization : unknown field, ignored" in (record.problems)


def test_roles_linked_by_npi_are_in_the_record_and_found_for_the_order() -> None:
    ctx, resources, order_date = _chart("variant/synthea3-npi-linked-rheumatologist")
    record = build_record(ctx, resources, as_of=order_date)
    (role,) = [r for r in record.people.roles if r.specialty_valuesets]
    assert role.ref.startswith(f"PractitionerRole/{SYNTHEA3_ROLE}")
    assert role.practitioner is None
    assert role.practitioner_npi
    assert role.specialty_valuesets == {"rheumatology"}
    assert "207RR0500X" in role.specialty_codes
    facts = build_facts(ctx, resources, as_of=order_date).orders[0]
    assert facts.prescriber.specialty_valuesets == {"rheumatology"}
    assert role.ref in facts.prescriber.refs


def test_care_team_rheumatologist_is_in_the_record() -> None:
    record, _ = _record("variant/hershel-careteam-rheumatologist")
    assert [(sorted(sets), ref.split("/")[0]) for sets, ref, _ in record.people.care_team] == [
        (["rheumatology"], "CareTeam")
    ]
    assert record.people.referrals == ()


# --- the same whatever the order of the resources -----------------------------------------------


def _canonical(record: PatientRecord, order_date: date) -> dict[str, Any]:
    """What the record says, with collections compared as multisets (input order is kept
    in lists, so that a card lists records as the chart does; it is not meaning)."""

    def bag(items: Any) -> Counter[str]:
        return Counter(repr(item) for item in items)

    return {
        "patient": (record.patient_ref, record.user_ref, record.birth_date, record.as_of),
        "diagnoses": bag(record.diagnoses),
        "conditions": record.conditions_on_file,
        "intolerances": bag(record.intolerances),
        "measurements": bag(record.measurements),
        "genetics": bag(record.genetic_results),
        "medications": bag(record.medications),
        "exposures": bag(record.exposures),
        "runs": bag(record.runs(order_date)),
        "roles": bag(record.people.roles),
        "npis": bag(record.people.practitioner_npis),
        "care_team": bag(record.people.care_team),
        "referrals": bag(record.people.referrals),
        "encounter": record.encounter,
        "coverage": bag(record.coverage_refs),
        "orders": record.orders,
        "problems": bag(record.problems),
    }


@pytest.mark.parametrize("name", [ASA, PAT014, "variant/synthea3-npi-linked-rheumatologist"])
def test_record_is_the_same_whatever_the_order_of_resources(name: str) -> None:
    ctx, resources, order_date = _chart(name)
    expected = _canonical(build_record(ctx, resources, as_of=order_date), order_date)
    for seed in range(3):
        shuffled = list(resources)
        random.Random(seed).shuffle(shuffled)
        got = build_record(ctx, shuffled, as_of=order_date)
        assert _canonical(got, order_date) == expected, f"seed {seed}"
    backwards = build_record(ctx, resources[::-1], as_of=order_date)
    assert _canonical(backwards, order_date) == expected


# --- one record per call, shared by every order -------------------------------------------------

KINERET_STATEMENT = cc(RXNORM, "349325", "anakinra 100 MG/0.67 ML Prefilled Syringe [Kineret]")


def _counting(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> Callable[[], int]:
    calls = 0
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return lambda: calls


def test_two_draft_orders_share_one_record_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    records_built = _counting(monkeypatch, fhir_mappings, "build_record")
    histories_read = _counting(monkeypatch, medications, "history")
    first = med_request("k1", dosages=[dosage(timing=every())])
    second = med_request("k2", dosages=[dosage(timing=every())])
    mtx = statement("s1", cc(RXNORM, "6851", "methotrexate"), start="2025-01-01", end="2025-09-30")
    result = build_facts(context(first, second), [mtx], as_of=date(2026, 3, 1))

    assert records_built() == 1
    assert histories_read() == 1  # the chart's medications are read once, not per order
    one, two = result.orders
    assert one.record is two.record is result.record
    # Each order's view: the other draft order is a record, itself is not.
    assert [(m.ref, m.is_draft_order) for m in one.medications] == [
        ("MedicationRequest/k2", True),
        ("MedicationStatement/s1", False),
    ]
    assert [(m.ref, m.is_draft_order) for m in two.medications] == [
        ("MedicationRequest/k1", True),
        ("MedicationStatement/s1", False),
    ]
    assert one.therapy_runs == two.therapy_runs
    assert [r.drug for r in one.therapy_runs] == ["methotrexate"]


def test_the_order_view_works_out_the_ordered_drug_dose_at_the_order_weight() -> None:
    """Weight-based: the current Kineret statement's daily dose depends on the body weight
    before the order date, which the record (shared by orders of any date) does not fix."""
    current = statement("s1", KINERET_STATEMENT, status="active", start="2025-06-01")
    current["dosage"] = [dosage(2, "mg/kg", "mg/kg", timing=every())]
    kg = weight("w1", 30, "kg", "kg", "2026-02-15")
    result = build_facts(context(med_request()), [current, kg], as_of=date(2026, 3, 1))
    assert result.record is not None
    (in_record,) = result.record.medications_besides("MedicationRequest/mr1")
    assert in_record.mg_per_day is None
    assert in_record.dosages
    (in_view,) = result.orders[0].medications
    assert in_view.mg_per_day == pytest.approx(60)
    assert replace(in_view, mg_per_day=None) == in_record  # the rest is the record's


# --- nothing in the record is named after a drug, a gene, a policy or a criterion ---------------


def test_record_module_names_no_drug_gene_policy_or_criterion() -> None:
    source = (Path(fhir_mappings.__file__).parent / "record.py").read_text(encoding="utf-8")
    for word in ("anakinra", "kineret", "methotrexate", "il1rn", "nh.phar", "rheumat", "covid"):
        assert word not in source.lower(), word
    assert not re.search(r"\b(I|II|III|IV)\.[A-D]\b", source), "a policy criterion id"
    # The field names of the record speak of the chart, not of one policy.
    names = " ".join(PatientRecord.__dataclass_fields__)
    assert not re.search(r"mtx|dmard|biologic|kineret|anakinra", names, re.IGNORECASE)
