"""`cds-service evaluate` and `cds-service audit`, run as a user would from the shell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cds_service import create_app
from cds_service.cli import main
from tests.conftest import HOOKS_DIR, base_config, load_example, wait_for_audit

ROOT = Path(__file__).resolve().parents[2]
PATIENTS = ROOT / "sandbox" / "patients"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_evaluate_request_file_prints_criteria_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["evaluate", str(HOOKS_DIR / "examples" / "order-sign-prefetch.json")], capsys
    )
    assert code == 0
    assert "Outcome:  criteria-met" in out
    assert "Approval: 6 months" in out
    for criterion in ("I.A.1", "I.A.4", "I.A.8", "III.B", "IV.C"):
        assert f"\n{criterion} " in out


def test_evaluate_bundle_and_order_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        [
            "evaluate",
            str(PATIENTS / "ra-dose-200mg.json"),
            "--order",
            str(PATIENTS / "ra-dose-200mg.order.json"),
            "--json",
        ],
        capsys,
    )
    assert code == 0
    (evaluation,) = json.loads(out)["evaluations"]
    assert evaluation["outcome"] == "criteria-not-met"
    statuses = {c["id"]: c["status"] for c in evaluation["criteria"]}
    assert statuses["I.A.8"] == "not-met"
    dose = next(c for c in evaluation["criteria"] if c["id"] == "I.A.8")
    assert dose["details"]["ordered_mg_per_day"] == 200


def test_evaluate_uses_the_date_given_for_orders_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = load_example("order-sign-prefetch.json")
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    order.pop("authoredOn", None)
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request), encoding="utf-8")
    # The patient was born in 1971 (age 55 at the example's date); in 1980 she is 9.
    code, out, _ = run(["evaluate", str(path), "--today", "1980-06-01", "--json"], capsys)
    assert code == 0
    (evaluation,) = json.loads(out)["evaluations"]
    age = next(c for c in evaluation["criteria"] if c["id"] == "I.A.3")
    assert age["status"] == "not-met"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["evaluate", "/no/such/file.json"], "cannot read"),
        (["evaluate", str(PATIENTS / "ra-dose-200mg.json")], "--order"),
        (
            ["evaluate", str(HOOKS_DIR / "examples" / "order-sign-prefetch.json"), "--today", "x"],
            "YYYY-MM-DD",
        ),
    ],
)
def test_evaluate_bad_input_is_a_clear_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert message in err


def test_evaluate_file_without_anakinra_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    request = load_example("order-sign-prefetch.json")
    order = request["context"]["draftOrders"]["entry"][0]["resource"]
    order["medicationCodeableConcept"] = {"text": "amoxicillin 500 mg capsule"}
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request), encoding="utf-8")
    code, out, _ = run(["evaluate", str(path)], capsys)
    assert code == 0
    # Every packaged pack's drug is named (the order is none of them).
    assert "No anakinra / rilonacept order found" in out


def test_audit_lists_what_the_service_decided(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    app = create_app(base_config(CDS_DATABASE_URL=database))
    response = app.test_client().post(
        "/cds-services/anakinra-order-sign", json=load_example("order-sign-prefetch.json")
    )
    assert response.status_code == 200
    wait_for_audit(app)
    monkeypatch.setenv("CDS_DATABASE_URL", database)
    code, out, _ = run(["audit", "--limit", "5"], capsys)
    assert code == 0
    assert "MedicationRequest/draft-anakinra-1" in out
    assert "criteria-met" in out


def test_evaluate_treats_prefetch_the_request_lacks_as_unavailable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Offline, a prefetch key the request does not carry (or answers with an
    OperationOutcome) is data that could not be read, as the service would see it after a
    failed FHIR read: the criteria resting on its absence are unknown, never met."""
    request = load_example("order-sign-prefetch.json")
    del request["prefetch"]["allergies"]
    request["prefetch"]["medicationStatements"] = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "timeout"}],
    }
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request), encoding="utf-8")
    code, out, _ = run(["evaluate", str(path), "--json"], capsys)
    assert code == 0
    (evaluation,) = json.loads(out)["evaluations"]
    statuses = {c["id"]: c["status"] for c in evaluation["criteria"]}
    assert evaluation["outcome"] == "documentation-needed"
    assert statuses["IV.C"] == "unknown"
    assert statuses["I.A.7"] == "unknown"
    assert statuses["III.B"] == "unknown"
