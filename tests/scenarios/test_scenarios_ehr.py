"""What real EHRs and the CDS Hooks sandbox send, posted to the real service.

Each file in `ehr/` is one CDS Hooks request shaped the way a real client shapes it (Epic,
Oracle Health, the CDS Hooks sandbox, the hook library's examples): medicationReference
instead of a code, product codes without display, 11-digit NDCs, typed doseAndRate, timing
codes, `category` as one object, no encounterId, prefetch values that are `null`, an
OperationOutcome, searchsets with `include` / `outcome` entries or a `total` and no entries,
several draft orders, the same resource under two keys. The clinical chart is the one of
`hooks/examples/order-sign-prefetch.json` (an RA patient whose Kineret order meets I.A), so
each file differs from a known answer by the one shape it tests. Expectations come from the
CDS Hooks 2.0.1 specification, FHIR R4, DESIGN.md and INTERPRETATION.md, not from our answers:

    "_expect": {
      "status": 200,                       # or 400 / 412, or a list of acceptable statuses
      "outcome": "criteria-met",           # or a list of acceptable outcomes; "not-evaluated"
      "section": "I.A",                    # optional
      "criteria": {"I.A.8": "met"},        # statuses that must be exactly these
      "cards": ["info"],                   # indicators of the order's cards (sorted)
      "order": "MedicationRequest/...",    # the order checked (default below)
      "also_evaluated": ["MedicationRequest/..."],  # other anakinra orders that must not vanish
      "no_evaluation": true,               # the answer must be exactly {"cards": []}
      "why": "..."
    }

Every 200 answer must validate against `hooks/schemas/response.schema.json`, and every
anakinra order named must get exactly one evaluation (and, at order-sign, a card): none is
dropped in silence. Where the service disagrees with the documents the file keeps the right
answer and is listed in KNOWN_GAPS (strict xfail).

The last tests sign calls the way the CDS Hooks sandbox signs them (ES384, iss
https://sandbox.cds-hooks.org, kid, jku, jti, aud = the service URL, 5 minutes) with a key
made here, against an app whose trusted-issuers file names that key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from jwt.algorithms import ECAlgorithm

from cds_service import create_app
from tests.conftest import HOOKS_DIR, PINNED_NOW, base_config

SCENARIO_DIR = Path(__file__).resolve().parent / "ehr"
SCENARIO_FILES = sorted(SCENARIO_DIR.glob("*.json"))
DEFAULT_ORDER = "MedicationRequest/draft-anakinra-1"
EVALUATION_KEY = "com.anakinra-cds.evaluation"
ASSOCIATED_KEY = "davinci-crd.associated-resource"
SERVICES = {"order-sign": "anakinra-order-sign", "order-select": "anakinra-order-select"}
OUTCOMES = {
    "criteria-met",
    "criteria-not-met",
    "documentation-needed",
    "off-label-review",
    "not-evaluated",
}
STATUSES = {"met", "not-met", "unknown"}
INDICATORS = {"info", "warning", "critical"}
RESPONSE_SCHEMA = Draft202012Validator(
    json.loads((HOOKS_DIR / "schemas" / "response.schema.json").read_text("utf-8"))
)

KNOWN_GAPS: dict[str, str] = {}


def _load(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    body: dict[str, Any] = json.loads(path.read_text("utf-8"))
    expect: dict[str, Any] = body.pop("_expect")
    return body, expect


def _params() -> list[Any]:
    params = []
    for path in SCENARIO_FILES:
        marks = []
        if path.stem in KNOWN_GAPS:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[path.stem]))
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _cards_for(response: dict[str, Any], order: str) -> list[dict[str, Any]]:
    cards: list[dict[str, Any]] = response.get("cards", [])
    return [
        card
        for card in cards
        if {"reference": order} in card.get("extension", {}).get(ASSOCIATED_KEY, [])
    ]


def _evaluations(response: dict[str, Any], order: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [
        e for e in response.get("extension", {}).get(EVALUATION_KEY, []) if e.get("order") == order
    ]
    return found


def _schema_problems(response: Any) -> list[str]:
    return [
        f"response schema: /{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in RESPONSE_SCHEMA.iter_errors(response)
    ]


def _not_dropped(response: dict[str, Any], order: str, hook: str) -> list[str]:
    """The order has exactly one evaluation and, at order-sign, at least one card."""
    count = len(_evaluations(response, order))
    if count != 1:
        return [f"expected one evaluation of {order}, got {count}"]
    if hook == "order-sign" and not _cards_for(response, order):
        return [f"no card for {order} at order-sign"]
    return []


def _differences(response: dict[str, Any], expect: dict[str, Any], hook: str) -> list[str]:
    diffs = _schema_problems(response)
    if expect.get("no_evaluation"):
        if response != {"cards": []}:
            diffs.append(f'expected exactly {{"cards": []}}, got {json.dumps(response)[:300]}')
        return diffs
    order = expect.get("order", DEFAULT_ORDER)
    for other in [order, *expect.get("also_evaluated", [])]:
        diffs.extend(_not_dropped(response, other, hook))
    evaluations = _evaluations(response, order)
    if len(evaluations) != 1:
        return diffs
    evaluation = evaluations[0]
    if evaluation.get("outcome") not in _as_list(expect["outcome"]):
        diffs.append(f"outcome: got {evaluation.get('outcome')}, expected {expect['outcome']}")
    if "section" in expect and evaluation.get("section") != expect["section"]:
        diffs.append(f"section: got {evaluation.get('section')}, expected {expect['section']}")
    found = {c["id"]: c for c in evaluation.get("criteria", [])}
    for criterion, status in expect.get("criteria", {}).items():
        got = found.get(criterion)
        if got is None or got["status"] != status:
            actual = "absent" if got is None else f"{got['status']} ({got.get('reason')})"
            diffs.append(f"{criterion}: got {actual}, expected {status}")
    if "cards" in expect:
        indicators = sorted(card["indicator"] for card in _cards_for(response, order))
        if indicators != sorted(expect["cards"]):
            diffs.append(f"cards: got {indicators}, expected {sorted(expect['cards'])}")
    return diffs


@pytest.mark.parametrize("path", _params())
def test_ehr_request_is_answered_as_the_documents_say(client: FlaskClient, path: Path) -> None:
    body, expect = _load(path)
    response = client.post(f"/cds-services/{SERVICES[body['hook']]}", json=body)
    allowed = _as_list(expect.get("status", 200))
    assert response.status_code < 500, response.get_data(as_text=True)[:500]
    assert response.status_code in allowed, (
        f"{path.stem} ({expect['why']}): status {response.status_code}, expected {allowed}: "
        + response.get_data(as_text=True)[:500]
    )
    data = response.get_json()
    if response.status_code == 412:
        assert data["resourceType"] == "OperationOutcome"
        assert data["issue"], data
        return
    if response.status_code != 200:
        assert "error" in data, data
        return
    diffs = _differences(data, expect, body["hook"])
    assert not diffs, f"{path.stem} ({expect['why']}):\n" + "\n".join(diffs)


def test_ehr_scenario_files_are_well_formed() -> None:
    """Every expectation uses known words, and every known gap names an existing file."""
    assert 25 <= len(SCENARIO_FILES) <= 40
    for path in SCENARIO_FILES:
        body, expect = _load(path)
        assert body["hook"] in SERVICES, path.stem
        assert body["hookInstance"] == f"ehr-{path.stem}", path.stem
        assert expect["why"], path.stem
        statuses = set(_as_list(expect.get("status", 200)))
        assert statuses <= {200, 400, 412}, path.stem
        if 200 in statuses and not expect.get("no_evaluation"):
            assert set(_as_list(expect["outcome"])) <= OUTCOMES, path.stem
        assert set(expect.get("criteria", {}).values()) <= STATUSES, path.stem
        assert set(expect.get("cards", [])) <= INDICATORS, path.stem
    assert set(KNOWN_GAPS) <= {p.stem for p in SCENARIO_FILES}


# --- calls signed the way the CDS Hooks sandbox signs them ------------------------------

SANDBOX_ISS = "https://sandbox.cds-hooks.org"
SANDBOX_JKU = "https://sandbox.cds-hooks.org/.well-known/jwks.json"
SANDBOX_FHIR = "https://launch.smarthealthit.org/v/r4/fhir"
PUBLIC_BASE = "https://cds.example.org"
SANDBOX_KID = "sandbox-test-es384"


@pytest.fixture(scope="module")
def sandbox_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def signed_app(tmp_path: Path, sandbox_key: ec.EllipticCurvePrivateKey) -> Flask:
    """Authentication on, trusting the sandbox issuer with the key made for this test."""
    public = ECAlgorithm.to_jwk(sandbox_key.public_key(), as_dict=True)
    issuers = {
        "issuers": [
            {
                "iss": SANDBOX_ISS,
                "jwks": {"keys": [{**public, "kid": SANDBOX_KID, "use": "sig", "alg": "ES384"}]},
                "jku_allowlist": [SANDBOX_JKU],
                "algorithms": ["ES384"],
                "fhir_servers": [SANDBOX_FHIR],
            }
        ]
    }
    path = tmp_path / "trusted-issuers.json"
    path.write_text(json.dumps(issuers), encoding="utf-8")
    return create_app(
        base_config(
            CDS_AUTH="enabled",
            CDS_TRUSTED_ISSUERS=str(path),
            CDS_PUBLIC_BASE_URL=PUBLIC_BASE,
            CDS_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.sqlite'}",
        )
    )


@pytest.fixture
def no_network() -> Iterator[responses.RequestsMock]:
    """Any outbound HTTP call (a key set, a FHIR read) fails the call it belongs to."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def sandbox_token(key: ec.EllipticCurvePrivateKey, audience: str, jti: str | None = None) -> str:
    """A token shaped as the sandbox's jwt-generator shapes it, signed with `key`."""
    now = int(PINNED_NOW.timestamp())
    claims = {
        "iss": SANDBOX_ISS,
        "sub": "48163c5e-88b5-4cb3-92d3-23b800caa927",
        "aud": audience,
        "exp": now + 300,
        "iat": now,
        "jti": jti or str(uuid.uuid4()),
    }
    headers = {"typ": "JWT", "kid": SANDBOX_KID, "jku": SANDBOX_JKU}
    return jwt.encode(claims, key, algorithm="ES384", headers=headers)


def _sandbox_request(name: str) -> dict[str, Any]:
    body, _ = _load(SCENARIO_DIR / f"{name}.json")
    return body


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("name", "service"),
    [
        ("sandbox_order_sign_category_object_no_encounter", "anakinra-order-sign"),
        ("sandbox_order_select_proposal", "anakinra-order-select"),
    ],
)
def test_sandbox_signed_call_is_accepted_and_evaluated(
    signed_app: Flask, sandbox_key: ec.EllipticCurvePrivateKey, name: str, service: str
) -> None:
    path = f"/cds-services/{service}"
    token = sandbox_token(sandbox_key, PUBLIC_BASE + path)
    response = signed_app.test_client().post(
        path, json=_sandbox_request(name), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    data = response.get_json()
    assert not _schema_problems(data)
    (evaluation,) = _evaluations(data, "MedicationRequest/request-123")
    assert evaluation["outcome"] == "criteria-met"


@pytest.mark.usefixtures("no_network")
def test_sandbox_token_is_good_for_one_call_to_one_service(
    signed_app: Flask, sandbox_key: ec.EllipticCurvePrivateKey
) -> None:
    """The same jti twice is a replay; a token addressed to the other service is refused."""
    client = signed_app.test_client()
    sign = "/cds-services/anakinra-order-sign"
    body = _sandbox_request("sandbox_order_sign_category_object_no_encounter")
    token = sandbox_token(sandbox_key, PUBLIC_BASE + sign, jti="sandbox-jti-1")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post(sign, json=body, headers=headers).status_code == 200
    assert client.post(sign, json=body, headers=headers).status_code == 401
    elsewhere = sandbox_token(sandbox_key, PUBLIC_BASE + "/cds-services/anakinra-order-select")
    refused = client.post(sign, json=body, headers={"Authorization": f"Bearer {elsewhere}"})
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
