"""The call's primary Coverage (CRD hook-13 / resp-44 / resp-45), the payer modes, billing
options (billopt-3) and stated assumptions (impl-5)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from cds_service.crd.coverage import PackBilling, choose_billing
from cds_service.crd.payer import (
    ANSWER_WITHOUT,
    IN_FORCE,
    NOT_HANDLED,
    NOT_IN_FORCE,
    OTHER_MEMBER,
    REJECT,
    STATUS_UNKNOWN,
    load_payer,
    primary_coverage,
)
from fhir_mappings.coverage import read_all_coverages
from tests.conftest import load_example

TODAY = date(2026, 12, 3)
PATIENT = "Patient/pt-1"
OURS = "Organization/org-plan-1"
SIGN = "/cds-services/prior-auth-order-sign"


def _coverage(cid: str, payor: str | None = OURS, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Coverage",
        "id": cid,
        "status": "active",
        "beneficiary": {"reference": PATIENT},
        "payor": [{"reference": payor}] if payor else [],
    }
    body.update(extra)
    return {k: v for k, v in body.items() if v is not None}


def _primary(*coverages: dict[str, Any], order: dict[str, Any] | None = None) -> Any:
    return primary_coverage(
        read_all_coverages(coverages), load_payer(), order or {}, PATIENT, TODAY
    )


def test_the_single_coverage_of_ours_in_force() -> None:
    got = _primary(_coverage("a"))
    assert (got.state, got.coverage.ref) == (IN_FORCE, "Coverage/a")


@pytest.mark.parametrize("status", ["cancelled", "draft", "entered-in-error"])
def test_ours_not_active_is_not_in_force(status: str) -> None:
    got = _primary(_coverage("a", status=status))
    assert got.state == NOT_IN_FORCE
    assert status in got.reason


def test_ours_with_its_period_over_is_not_in_force() -> None:
    got = _primary(_coverage("a", period={"end": "2026-12-02"}))
    assert got.state == NOT_IN_FORCE
    assert _primary(_coverage("a", period={"end": "2026-12-03"})).state == IN_FORCE


def test_ours_without_status_is_never_taken_as_in_force() -> None:
    assert _primary(_coverage("a", status=None)).state == STATUS_UNKNOWN


def test_another_members_coverage_named_by_the_order() -> None:
    other = _coverage("a", beneficiary={"reference": "Patient/pt-2"})
    got = _primary(other, order={"insurance": [{"reference": "Coverage/a"}]})
    assert got.state == OTHER_MEMBER


@pytest.mark.parametrize(
    ("coverages", "words"),
    [
        ((), "no Coverage of the patient"),
        ((_coverage("x", "Organization/acme"),), "another payer"),
        ((_coverage("x", None),), "names no payer"),
        (
            (_coverage("x", "Organization/a"), _coverage("y", "Organization/b")),
            "cannot be told",
        ),
    ],
)
def test_what_this_payer_does_not_handle(coverages: tuple[dict[str, Any], ...], words: str) -> None:
    got = _primary(*coverages)
    assert got.state == NOT_HANDLED
    assert words in got.reason


def test_the_order_s_insurance_and_coverage_order_pick_the_primary() -> None:
    ours, other = _coverage("a"), _coverage("b", "Organization/acme", order=1)
    assert _primary(ours, other).coverage.ref == "Coverage/b"  # Coverage.order 1
    named = {"insurance": [{"reference": "Coverage/a"}]}
    assert _primary(ours, other, order=named).coverage.ref == "Coverage/a"
    assert _primary(ours, _coverage("b", "Organization/acme")).coverage.ref == "Coverage/a"


def test_a_payer_file_rejects_unless_it_says_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "payer.json"
    path.write_text(json.dumps({"name": "Acme", "organizations": {"names": ["Acme"]}}))
    assert load_payer(path).other_payers == REJECT
    assert load_payer().other_payers == ANSWER_WITHOUT  # the packaged demo payer


def _payer_file(tmp_path: Path, mode: str) -> str:
    path = tmp_path / "payer.json"
    data = {"name": "Acme", "other_payers": mode, "organizations": {"references": [OURS]}}
    path.write_text(json.dumps(data))
    return str(path)


def _other_payers_call() -> dict[str, Any]:
    body = load_example("order-sign-prefetch.json")
    body["prefetch"]["coverage"]["entry"][0]["resource"]["payor"] = [
        {"reference": "Organization/acme-other"}
    ]
    return body


def test_reject_mode_answers_400_with_an_operation_outcome(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_app(CDS_PAYER_FILE=_payer_file(tmp_path, REJECT))
    response = app.test_client().post(SIGN, json=_other_payers_call())
    assert response.status_code == 400
    body = response.get_json()
    assert body["error"] == "coverage-not-handled"
    (issue,) = body["operationOutcome"]["issue"]
    assert "Coverage/cov-1" in issue["diagnostics"]
    assert "another payer" in issue["diagnostics"]
    assert issue["expression"] == ["/prefetch/coverage"]


def test_demo_mode_answers_with_cards_and_no_coverage_information(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    app = make_app(CDS_PAYER_FILE=_payer_file(tmp_path, ANSWER_WITHOUT))
    response = app.test_client().post(SIGN, json=_other_payers_call())
    assert response.status_code == 200
    body = response.get_json()
    assert "systemActions" not in body
    # Criteria met and no coverage information: the criteria-met card says so instead.
    assert [c["source"]["topic"]["code"] for c in body["cards"]] == ["guideline"]
    (entry,) = body["extension"]["com.anakinra-cds.evaluation"]
    assert entry["coverageInformation"]["status"] == "not-sent"


def test_cancelled_coverage_of_ours_is_not_covered_with_both_reason_codes(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    body = load_example("order-sign-prefetch.json")
    body["prefetch"]["coverage"]["entry"][0]["resource"]["status"] = "cancelled"
    app = make_app(CDS_PAYER_FILE=_payer_file(tmp_path, REJECT))
    answer = app.test_client().post(SIGN, json=body).get_json()
    (action,) = answer["systemActions"]
    (ext,) = action["resource"]["extension"]
    parts = {p["url"]: p for p in ext["extension"]}
    assert parts["covered"]["valueCode"] == "not-covered"
    assert "pa-needed" not in parts
    codings = parts["reason"]["valueCodeableConcept"]["coding"]
    assert [(c["system"].rsplit("/", 1)[-1], c["code"]) for c in codings] == [
        ("temp", "no-active-coverage"),
        ("v3-ActReason", "no-active-coverage"),
    ]


BILLING = PackBilling("1", hcpcs=("J2793",), ndc=("61755-0001-01", "73604-0914-01"))
OPTIONS = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options"


def _order(*codes: tuple[str, str]) -> dict[str, Any]:
    option = {
        "url": OPTIONS,
        "valueCodeableConcept": {"coding": [{"system": s, "code": c} for s, c in codes]},
    }
    return {
        "resourceType": "MedicationRequest",
        "medicationCodeableConcept": {"extension": [option]},
    }


def test_billing_options_sent_narrow_the_billing_codes() -> None:
    got = choose_billing(_order(("http://hl7.org/fhir/sid/ndc", "73604091401")), BILLING)
    assert got.ndc == ("73604-0914-01",)
    assert got.hcpcs == ("J2793",)
    assert any("J2793 assumed" in a for a in got.assumptions)


def test_billing_options_outside_the_policy_are_named_as_considered() -> None:
    hcpcs = "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
    got = choose_billing(_order((hcpcs, "J3490")), BILLING)
    assert got.hcpcs == ("J2793",)
    assert got.ndc == BILLING.ndc
    said = " ".join(got.assumptions)
    assert "J3490" in said
    assert "every package" in said
    assert "network" in said


def test_no_billing_options_all_assumed() -> None:
    got = choose_billing({"resourceType": "MedicationRequest"}, BILLING)
    assert (got.hcpcs, got.ndc) == (BILLING.hcpcs, BILLING.ndc)
    assert len(got.assumptions) == 3
