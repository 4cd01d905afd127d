"""Coverage information through the HTTP API: our payer only, idempotent, never re-sent,
and the policy text at its stable URL."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cds_service.auth import AuthError, Principal
from cds_service.config import SettingsError
from cds_service.crd.codes import COVERAGE_INFORMATION_URL
from cds_service.policy.packs import default_registry
from tests.conftest import load_example
from tests.crd.invariants import violations

SIGN = "/cds-services/prior-auth-order-sign"
EVALUATION = "com.anakinra-cds.evaluation"


def _request(*coverages: dict[str, Any]) -> dict[str, Any]:
    body = load_example("order-sign-prefetch.json")
    entries = [{"resource": c} for c in coverages]
    body["prefetch"]["coverage"] = {"resourceType": "Bundle", "type": "searchset", "entry": entries}
    return body


def _coverage(cid: str, payor: str, order: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "resourceType": "Coverage",
        "id": cid,
        "status": "active",
        "beneficiary": {"reference": "Patient/pt-ra-1001"},
        "payor": [{"reference": payor}],
    }
    if order is not None:
        body["order"] = order
    return body


OURS = _coverage("cov-ours", "Organization/org-plan-1")
OTHER = _coverage("cov-other", "Organization/acme-insurance", order=1)


def _post(client: FlaskClient, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(SIGN, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer: dict[str, Any] = response.get_json()
    return answer


def _note(answer: dict[str, Any]) -> dict[str, Any]:
    (entry,) = answer["extension"][EVALUATION]
    note: dict[str, Any] = entry["coverageInformation"]
    return note


def _extensions(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        ext
        for action in answer.get("systemActions", [])
        for ext in action["resource"].get("extension", [])
        if ext["url"] == COVERAGE_INFORMATION_URL
    ]


def test_another_payers_coverage_only_gets_no_assertion(client: FlaskClient) -> None:
    answer = _post(client, _request(OTHER))
    assert "systemActions" not in answer
    assert _note(answer)["status"] == "not-sent"
    assert "another payer" in _note(answer)["reason"]
    assert answer["cards"]  # the prescriber still gets the policy's cards


def test_another_payers_primary_coverage_gets_no_assertion_for_ours_either(
    client: FlaskClient,
) -> None:
    # CRD hook-13: the call is about its primary Coverage (Coverage.order 1: the other
    # payer's); the demo payer answers with cards and no coverage information.
    answer = _post(client, _request(OTHER, OURS))
    assert "systemActions" not in answer
    assert _note(answer)["status"] == "not-sent"
    assert "Coverage/cov-other" in _note(answer)["reason"]


def test_two_payers_assert_for_ours_only(client: FlaskClient) -> None:
    other = {k: v for k, v in OTHER.items() if k != "order"}
    answer = _post(client, _request(other, OURS))
    (ext,) = _extensions(answer)
    assert ext["extension"][0] == {
        "url": "coverage",
        "valueReference": {"reference": "Coverage/cov-ours"},
    }
    assert "cov-other" not in json.dumps(answer["systemActions"])
    assert _note(answer) | {"reason": ""} == {
        "status": "sent",
        "coverage": "Coverage/cov-ours",
        "reason": "",
    }
    assert violations(ext) == []


def test_no_coverage_gives_no_assertion_and_says_why(client: FlaskClient) -> None:
    answer = _post(client, _request())
    assert "systemActions" not in answer
    assert "no Coverage of the patient" in _note(answer)["reason"]


def test_identical_calls_return_byte_identical_coverage_information(
    make_app: Callable[..., Flask],
) -> None:
    texts = []
    for _ in range(2):
        with make_app().test_client() as client:
            texts.append(json.dumps(_post(client, _request(OURS))["systemActions"]))
    assert texts[0] == texts[1]
    assert '"coverage-assertion-id"' in texts[0]


def test_the_same_assertion_already_on_the_draft_is_not_sent_again(client: FlaskClient) -> None:
    body = _request(OURS)
    first = _post(client, body)
    (action,) = first["systemActions"]
    again = copy.deepcopy(body)
    again["context"]["draftOrders"]["entry"][0]["resource"] = action["resource"]
    second = _post(client, again)
    assert "systemActions" not in second
    assert _note(second)["status"] == "unchanged"
    assert [c["summary"] for c in second["cards"]] == [c["summary"] for c in first["cards"]]


def test_the_policy_link_uses_the_public_base_url(make_app: Callable[..., Flask]) -> None:
    app = make_app(CDS_PUBLIC_BASE_URL="https://cds.plan.example.org/base")
    with app.test_client() as client:
        (ext,) = _extensions(_post(client, _request(OURS)))
    links = [
        part["extension"][2]["valueUrl"]
        for part in ext["extension"]
        if part["url"] == "detail"
        and part["extension"][1]["valueCodeableConcept"]["coding"][0]["code"] == "policy-link"
    ]
    assert links == ["https://cds.plan.example.org/base/policies/NH.PHAR.244"]
    with make_app().test_client() as client:
        served = client.get("/policies/NH.PHAR.244")
    assert served.status_code == 200


def test_a_payer_file_names_who_gets_assertions(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    path = tmp_path / "payer.json"
    path.write_text(
        json.dumps(
            {"name": "Acme", "organizations": {"references": ["Organization/acme-insurance"]}}
        )
    )
    with make_app(CDS_PAYER_FILE=str(path)).test_client() as client:
        answer = _post(client, _request(OURS, OTHER))
    (ext,) = _extensions(answer)
    assert ext["extension"][0]["valueReference"]["reference"] == "Coverage/cov-other"
    assert not [p for p in ext["extension"] if p["url"] == "contact"]


def test_a_bad_payer_file_stops_start_up(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    path = tmp_path / "payer.json"
    path.write_text(json.dumps({"name": "Acme"}))
    with pytest.raises(SettingsError, match="CDS_PAYER_FILE"):
        make_app(CDS_PAYER_FILE=str(path))


def test_start_up_announces_the_demo_payer(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    make_app()
    assert any(getattr(r, "event", None) == "payer-demo" for r in caplog.records)


class _Refuse:
    def authenticate(self, authorization_header: str | None, audience: str) -> Principal:
        raise AuthError("no token")


@pytest.mark.parametrize("pack_id", sorted(default_registry().packs))
def test_each_pack_policy_text_is_served_without_a_token(
    make_app: Callable[..., Flask], pack_id: str
) -> None:
    pack = default_registry().packs[pack_id]
    app = make_app(CDS_AUTH="enabled", AUTHENTICATOR=_Refuse())
    with app.test_client() as client:
        assert client.get("/cds-services").status_code == 401
        for path in (f"/policies/{pack_id}", f"/policies/{pack_id}/{pack.version}"):
            served = client.get(path, headers={"Origin": "https://ehr.example.org"})
            assert served.status_code == 200
            assert served.mimetype == "text/plain"
            assert served.get_data(as_text=True) == (pack.directory / "source.txt").read_text(
                "utf-8"
            )
            assert served.headers["Access-Control-Allow-Origin"] == "https://ehr.example.org"
        assert client.get(f"/policies/{pack_id}/1900-01").status_code == 404
        assert client.get("/policies/NO.SUCH.POLICY").status_code == 404
