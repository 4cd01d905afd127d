"""The payer configuration and the choice of the payer's own Coverage (pure functions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cds_service.crd.payer import PayerFileError, choose_coverage, load_payer
from fhir_mappings.coverage import CoverageRecord, Payor, read_coverages

PATIENT = "Patient/p1"


def _coverage(cid: str, *payors: Any, order: int | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Coverage",
        "id": cid,
        "status": "active",
        "beneficiary": {"reference": PATIENT},
        "payor": list(payors),
        **extra,
    }
    if order is not None:
        body["order"] = order
    return body


def _records(*resources: dict[str, Any]) -> tuple[CoverageRecord, ...]:
    return read_coverages(list(resources), PATIENT)


def test_the_demo_payer_is_packaged_and_valid() -> None:
    payer = load_payer()
    assert payer.source == "demo"
    assert payer.contact is not None
    assert payer.contact.phone


@pytest.mark.parametrize(
    "payor",
    [
        {"reference": "Organization/org-plan"},
        {"reference": "https://ehr.example.org/fhir/Organization/org-plan-1"},
        {
            "identifier": {
                "system": "https://anakinra-cds.example.org/fhir/sid/payer-id",
                "value": "EXAMPLE-PLAN",
            }
        },
        {"reference": "Organization/x", "display": "example  health PLAN"},
    ],
)
def test_each_way_a_coverage_names_the_payer(payor: dict[str, Any]) -> None:
    (record,) = _records(_coverage("c1", payor))
    assert load_payer().owns(record)


def test_the_payor_organization_sent_with_the_data_is_read() -> None:
    organization = {
        "resourceType": "Organization",
        "id": "cms",
        "name": "Centers for Medicare and Medicaid Services",
    }
    (record,) = _records(_coverage("c1", {"reference": "Organization/cms"}), organization)
    assert record.payors[0].organization_name == organization["name"]
    assert load_payer().owns(record)


def test_another_payer_is_not_ours() -> None:
    (record,) = _records(
        _coverage("c1", {"reference": "Organization/acme", "display": "Acme Health"})
    )
    assert not load_payer().owns(record)
    choice = choose_coverage((record,), load_payer(), {})
    assert choice.coverage is None
    assert "another payer" in choice.reason


def test_no_coverage_at_all_says_so() -> None:
    choice = choose_coverage((), load_payer(), {})
    assert choice.coverage is None
    assert "no active Coverage" in choice.reason


def test_inactive_coverages_and_other_patients_are_left_out() -> None:
    ours = {"reference": "Organization/org-plan"}
    cancelled = _coverage("c1", ours, status="cancelled")
    someone_else = _coverage("c2", ours, beneficiary={"reference": "Patient/p2"})
    assert _records(cancelled, someone_else) == ()


def test_several_of_ours_pick_the_one_the_order_names_then_the_primary_then_by_reference() -> None:
    ours = {"reference": "Organization/org-plan"}
    other = _coverage("c0", {"reference": "Organization/acme"}, order=1)
    records = _records(
        other, _coverage("c3", ours, order=2), _coverage("c2", ours, order=1), _coverage("c9", ours)
    )
    payer = load_payer()
    named = {"insurance": [{"reference": "Coverage/c3"}]}
    assert choose_coverage(records, payer, named).coverage.ref == "Coverage/c3"  # type: ignore[union-attr]
    assert choose_coverage(records, payer, {}).coverage.ref == "Coverage/c2"  # type: ignore[union-attr]
    unordered = _records(_coverage("c9", ours), _coverage("c4", ours))
    assert choose_coverage(unordered, payer, {}).coverage.ref == "Coverage/c4"  # type: ignore[union-attr]
    assert choose_coverage(tuple(reversed(unordered)), payer, {}).coverage.ref == "Coverage/c4"  # type: ignore[union-attr]


def test_plans_narrow_the_payer_to_listed_classes(tmp_path: Path) -> None:
    path = tmp_path / "payer.json"
    path.write_text(
        json.dumps(
            {
                "name": "Plan",
                "organizations": {"references": ["Organization/org-plan"]},
                "plans": [{"type": "plan", "value": "MEDICAID-STD"}],
            }
        )
    )
    payer = load_payer(path)
    plan = {"type": {"coding": [{"code": "plan"}]}, "value": "MEDICAID-STD"}
    other_plan = {"type": {"coding": [{"code": "plan"}]}, "value": "COMMERCIAL"}
    ours = {"reference": "Organization/org-plan"}
    (listed,) = _records({**_coverage("c1", ours), "class": [plan]})
    (unlisted,) = _records({**_coverage("c2", ours), "class": [other_plan]})
    assert payer.owns(listed)
    assert not payer.owns(unlisted)
    assert payer.contact is None


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        json.dumps({"name": "Plan"}),
        json.dumps({"name": "Plan", "organizations": {}}),
        json.dumps({"name": "Plan", "organizations": {"references": ["Coverage/x"]}}),
        json.dumps({"name": "Plan", "organizations": {"names": ["x"]}, "colour": "red"}),
    ],
)
def test_a_bad_payer_file_is_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "payer.json"
    path.write_text(content)
    with pytest.raises(PayerFileError, match=r"payer\.json"):
        load_payer(path)


def test_a_missing_payer_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PayerFileError, match="cannot be read"):
        load_payer(tmp_path / "absent.json")


def test_payor_record_keeps_the_logical_identifier() -> None:
    (record,) = _records(_coverage("c1", {"identifier": {"system": "s", "value": "v"}}))
    assert record.payors == (Payor(reference=None, identifier=("s", "v"), display=None),)
