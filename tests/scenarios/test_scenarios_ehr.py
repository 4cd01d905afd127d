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
from tests.scenarios import harness

SCENARIO_FILES = harness.scenario_files("ehr")
DEFAULT_ORDER = "MedicationRequest/draft-anakinra-1"
EHR_OUTCOMES = harness.OUTCOMES | {"not-evaluated"}
RESPONSE_SCHEMA = Draft202012Validator(
    json.loads((HOOKS_DIR / "schemas" / "response.schema.json").read_text("utf-8"))
)

KNOWN_GAPS: dict[str, str] = {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _schema_problems(response: Any) -> list[str]:
    return [
        f"response schema: /{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in RESPONSE_SCHEMA.iter_errors(response)
    ]


def _not_dropped(response: dict[str, Any], order: str, hook: str) -> list[str]:
    """The order has exactly one evaluation and, at order-sign, at least one card or (criteria
    met) the coverage-information system action, which no card repeats (CRD resp-12)."""
    evaluations = harness.evaluations_of(response, order)
    if len(evaluations) != 1:
        return [f"expected one evaluation of {order}, got {len(evaluations)}"]
    informed = (evaluations[0].get("coverageInformation") or {}).get("status") == "sent"
    if hook == "order-sign" and not harness.cards_for(response, order) and not informed:
        return [f"no card and no coverage information for {order} at order-sign"]
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
    evaluations = harness.evaluations_of(response, order)
    if len(evaluations) != 1:
        return diffs
    evaluation = evaluations[0]
    if evaluation.get("outcome") not in _as_list(expect["outcome"]):
        diffs.append(f"outcome: got {evaluation.get('outcome')}, expected {expect['outcome']}")
    diffs += harness.field_differences(evaluation, expect, optional=("section",))
    return diffs + harness.order_differences(response, evaluation, order, expect)


@pytest.mark.parametrize("path", harness.scenario_params(SCENARIO_FILES, KNOWN_GAPS))
def test_ehr_request_is_answered_as_the_documents_say(client: FlaskClient, path: Path) -> None:
    body, expect = harness.load(path)
    response = client.post(f"/cds-services/{harness.SERVICES[body['hook']]}", json=body)
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
    harness.assert_no_differences(path, expect, _differences(data, expect, body["hook"]))


def test_ehr_scenario_files_are_well_formed() -> None:
    """Every expectation uses known words, and every known gap names an existing file."""
    for path, body, expect in harness.well_formed(
        SCENARIO_FILES, KNOWN_GAPS, at_least=25, at_most=60
    ):
        assert body["hookInstance"] == f"ehr-{path.stem}", path.stem
        statuses = set(_as_list(expect.get("status", 200)))
        assert statuses <= {200, 400, 412}, path.stem
        if 200 in statuses and not expect.get("no_evaluation"):
            assert set(_as_list(expect["outcome"])) <= EHR_OUTCOMES, path.stem


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
    body, _ = harness.load(harness.SCENARIOS_DIR / "ehr" / f"{name}.json")
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
    (evaluation,) = harness.evaluations_of(data, "MedicationRequest/request-123")
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
