"""Authentication wired into the service: real ES384 / RS384 tokens through the HTTP layer.

Every failure is the same bare 401 on discovery, on the service and on feedback; the reason
is logged and the token never is. The replay record lives in the audit database, so two
app instances sharing one SQLite file (two workers) refuse a token the other accepted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from cryptography.hazmat.primitives import serialization
from flask import Flask
from flask.testing import FlaskClient

from cds_service import create_app
from tests.conftest import PINNED_NOW, base_config, load_example

from .conftest import Signer, jwks, make_signer

ISS = "https://ehr.example.org"
ROTATING_ISS = "https://rotating.example.org"
ROTATING_JWKS = "https://rotating.example.org/.well-known/jwks.json"
JKU = "https://ehr.example.org/keys/jku.json"
FHIR = "https://ehr.example.org/fhir"
HOST = "http://localhost"
SIGN = "/cds-services/anakinra-order-sign"
DISCOVERY = "/cds-services"
FEEDBACK = "/cds-services/anakinra-order-sign/feedback"
BARE_401 = {"error": "unauthorized", "message": "authentication required"}


@dataclass
class MovingClock:
    now: datetime = PINNED_NOW

    def __call__(self) -> datetime:
        return self.now

    @property
    def ts(self) -> int:
        return int(self.now.timestamp())


@dataclass
class Keys:
    es384: Signer
    rs384: Signer
    jku_key: Signer
    rotating_old: Signer
    rotating_new: Signer


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys(
        es384=make_signer("ES384", "app-es384"),
        rs384=make_signer("RS384", "app-rs384"),
        jku_key=make_signer("ES384", "app-jku"),
        rotating_old=make_signer("ES384", "rot-1"),
        rotating_new=make_signer("ES384", "rot-2"),
    )


@pytest.fixture
def issuers_file(tmp_path: Path, keys: Keys) -> Path:
    (tmp_path / "ehr-jwks.json").write_text(json.dumps(jwks(keys.es384, keys.rs384)))
    config = {
        "issuers": [
            {
                "iss": ISS,
                "jwks_file": "ehr-jwks.json",
                "jku_allowlist": [JKU],
                "tenant": "tenant-a",
                "fhir_servers": [FHIR],
            },
            {"iss": ROTATING_ISS, "jwks_url": ROTATING_JWKS, "fhir_servers": [FHIR]},
        ]
    }
    path = tmp_path / "trusted-issuers.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def clock() -> MovingClock:
    return MovingClock()


@pytest.fixture
def net() -> Iterator[responses.RequestsMock]:
    """Every outbound HTTP call of the test (key sets, FHIR); unmatched calls fail."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def build(issuers_file: Path, tmp_path: Path, clock: MovingClock) -> Callable[..., Flask]:
    def make(**overrides: Any) -> Flask:
        config = base_config(
            CDS_AUTH="enabled",
            CDS_TRUSTED_ISSUERS=str(issuers_file),
            CDS_PUBLIC_BASE_URL=HOST,
            CDS_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.sqlite'}",
            CLOCK=clock,
        )
        config.update(overrides)
        return create_app(config)

    return make


@pytest.fixture
def client(build: Callable[..., Flask]) -> FlaskClient:
    return build().test_client()


_jti = iter(range(1, 1_000_000))


def claims(clock: MovingClock, path: str, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": HOST + path,
        "iat": clock.ts,
        "exp": clock.ts + 300,
        "jti": f"jti-{next(_jti)}",
        "tenant": "tenant-a",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    unsigned = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b"" if key is None else hmac.new(key, unsigned.encode(), hashlib.sha256).digest()
    return f"{unsigned}.{b64(signature)}"


def call(client: FlaskClient, path: str, token: str | None) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if path == DISCOVERY:
        return client.get(path, headers=headers)
    if path == FEEDBACK:
        body = {
            "feedback": [
                {
                    "card": "00000000-0000-4000-8000-000000000001",
                    "outcome": "accepted",
                    "acceptedSuggestions": [{"id": "s1"}],
                    "outcomeTimestamp": "2026-11-29T15:00:00Z",
                }
            ]
        }
        return client.post(path, json=body, headers=headers)
    return client.post(path, json=load_example("order-sign-prefetch.json"), headers=headers)


def assert_bare_401(response: Any) -> None:
    assert response.status_code == 401
    assert response.get_json() == BARE_401
    assert response.headers["WWW-Authenticate"] == "Bearer"


ENDPOINTS = [DISCOVERY, SIGN, FEEDBACK]


# --- accepted ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_valid_token_is_accepted_on_every_endpoint(
    client: FlaskClient, keys: Keys, clock: MovingClock, path: str, alg: str
) -> None:
    signer = keys.es384 if alg == "ES384" else keys.rs384
    response = call(client, path, signer.sign(claims(clock, path)))
    assert response.status_code == 200
    assert response.is_json


# --- refused: each one a bare 401, everywhere -------------------------------------

Forge = Callable[[Keys, MovingClock, str], "str | None"]


def _hs256_with_public_key(keys: Keys, clock: MovingClock, path: str) -> str:
    pem = keys.es384.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hand_made({"alg": "HS256", "kid": keys.es384.kid}, claims(clock, path), pem)


FORGERIES: dict[str, Forge] = {
    "missing-header": lambda k, c, p: None,
    "expired": lambda k, c, p: k.es384.sign(claims(c, p, iat=c.ts - 900, exp=c.ts - 600)),
    "future-iat": lambda k, c, p: k.es384.sign(claims(c, p, iat=c.ts + 600, exp=c.ts + 900)),
    "wrong-aud": lambda k, c, p: k.es384.sign(
        claims(c, p, aud="https://other-cds.example.org" + p)
    ),
    "aud-of-another-endpoint": lambda k, c, p: k.es384.sign(
        claims(c, p, aud=HOST + ("/cds-services/anakinra-order-select" if p != SIGN else FEEDBACK))
    ),
    "unknown-iss": lambda k, c, p: k.es384.sign(claims(c, p, iss="https://evil.example.org")),
    "unknown-kid": lambda k, c, p: make_signer("ES384", "nobody-knows-me").sign(claims(c, p)),
    "jku-off-allowlist": lambda k, c, p: k.jku_key.sign(
        claims(c, p), jku="https://evil.example.org/jwks.json"
    ),
    "alg-none": lambda k, c, p: hand_made({"alg": "none", "kid": k.es384.kid}, claims(c, p), None),
    "hs256-public-key-secret": _hs256_with_public_key,
    "wrong-tenant": lambda k, c, p: k.es384.sign(claims(c, p, tenant="tenant-b")),
    "no-jti": lambda k, c, p: k.es384.sign(claims(c, p, jti=None)),
    "overlong-jti": lambda k, c, p: k.es384.sign(claims(c, p, jti="j" * 257)),
    "forged-signature": lambda k, c, p: Signer("ES384", k.es384.kid, k.jku_key.private_key).sign(
        claims(c, p)
    ),
    "garbage": lambda k, c, p: "not.a.jwt",
}


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("forgery", FORGERIES, ids=list(FORGERIES))
def test_every_failure_is_the_same_bare_401(
    client: FlaskClient,
    net: responses.RequestsMock,
    keys: Keys,
    clock: MovingClock,
    path: str,
    forgery: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = FORGERIES[forgery](keys, clock, path)
    response = call(client, path, token)
    assert_bare_401(response)
    assert len(net.calls) == 0  # no key set fetched from a URL we were handed
    failures = [r for r in caplog.records if getattr(r, "event", None) == "auth-failed"]
    assert len(failures) == 1
    assert failures[0].__dict__["reason"]  # the reason is in the log...
    if token is not None:
        logged = caplog.text + json.dumps([r.__dict__ for r in caplog.records], default=str)
        for part in (token, *token.split(".")):  # ...the token is not, nor any part of it
            assert len(part) < 12 or part not in logged


def test_feedback_is_stored_only_from_an_authenticated_caller(
    build: Callable[..., Flask], keys: Keys, clock: MovingClock
) -> None:
    client = build().test_client()
    # No scores on file: a documentation card the prescriber can override.
    body = load_example("order-sign-prefetch.json")
    body["prefetch"]["observations"] = {"resourceType": "Bundle", "type": "searchset"}
    signed = {"Authorization": f"Bearer {keys.es384.sign(claims(clock, SIGN))}"}
    answer = client.post(SIGN, json=body, headers=signed).get_json()
    card = answer["cards"][0]["uuid"]
    feedback = {
        "feedback": [
            {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-29T15:05:00Z"}
        ]
    }
    forged = Signer("ES384", keys.es384.kid, keys.jku_key.private_key)
    for token in (None, forged.sign(claims(clock, FEEDBACK))):
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        assert_bare_401(client.post(FEEDBACK, json=feedback, headers=headers))
    store = client.application.extensions["audit_store"]
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from feedback").scalar() == 0
    good = {"Authorization": f"Bearer {keys.es384.sign(claims(clock, FEEDBACK))}"}
    assert client.post(FEEDBACK, json=feedback, headers=good).status_code == 200
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("select count(*) from feedback").scalar() == 1


def test_jku_on_the_allowlist_is_fetched_and_honoured(
    client: FlaskClient, net: responses.RequestsMock, keys: Keys, clock: MovingClock
) -> None:
    net.get(JKU, json=jwks(keys.jku_key))
    token = keys.jku_key.sign(claims(clock, DISCOVERY), jku=JKU)
    assert call(client, DISCOVERY, token).status_code == 200
    assert [c.request.url for c in net.calls] == [JKU]


# --- key rotation -----------------------------------------------------------------


def test_unknown_kid_refetches_the_key_set_at_most_once_a_minute(
    client: FlaskClient, net: responses.RequestsMock, keys: Keys, clock: MovingClock
) -> None:
    key_set = net.get(ROTATING_JWKS, json=jwks(keys.rotating_old))

    def token(signer: Signer) -> str:
        return signer.sign(claims(clock, DISCOVERY, iss=ROTATING_ISS, tenant=None))

    assert call(client, DISCOVERY, token(keys.rotating_old)).status_code == 200
    assert key_set.call_count == 1
    # A kid not in the set: one refetch (the client may have rotated), still unknown.
    assert_bare_401(call(client, DISCOVERY, token(keys.rotating_new)))
    assert key_set.call_count == 2
    # The client publishes its new key; within the minute we do not refetch again.
    net.replace(responses.GET, ROTATING_JWKS, json=jwks(keys.rotating_old, keys.rotating_new))
    clock.now += timedelta(seconds=30)
    assert_bare_401(call(client, DISCOVERY, token(keys.rotating_new)))
    assert sum(1 for c in net.calls if c.request.url == ROTATING_JWKS) == 2
    # A minute on, the unknown kid triggers a refetch and the rotated key is trusted.
    clock.now += timedelta(seconds=31)
    assert call(client, DISCOVERY, token(keys.rotating_new)).status_code == 200
    assert sum(1 for c in net.calls if c.request.url == ROTATING_JWKS) == 3
    # Old tokens keep working while the old key is still published.
    assert call(client, DISCOVERY, token(keys.rotating_old)).status_code == 200


# --- replay -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_token_is_accepted_once(
    client: FlaskClient, keys: Keys, clock: MovingClock, path: str
) -> None:
    token = keys.es384.sign(claims(clock, path))
    assert call(client, path, token).status_code == 200
    assert_bare_401(call(client, path, token))


def test_replay_is_refused_across_two_workers_sharing_the_database(
    build: Callable[..., Flask], keys: Keys, clock: MovingClock
) -> None:
    worker_a, worker_b = build().test_client(), build().test_client()
    token = keys.rs384.sign(claims(clock, SIGN))
    assert call(worker_a, SIGN, token).status_code == 200
    assert_bare_401(call(worker_b, SIGN, token))
    fresh = keys.rs384.sign(claims(clock, SIGN))
    assert call(worker_b, SIGN, fresh).status_code == 200
    assert_bare_401(call(worker_a, SIGN, fresh))


def test_replay_record_is_kept_until_the_token_could_no_longer_be_valid(
    build: Callable[..., Flask], keys: Keys, clock: MovingClock
) -> None:
    app = build()
    token = keys.es384.sign(claims(clock, DISCOVERY))
    assert call(app.test_client(), DISCOVERY, token).status_code == 200
    clock.now += timedelta(seconds=290)  # still valid: still refused
    assert_bare_401(call(app.test_client(), DISCOVERY, token))
    store = app.extensions["audit_store"]
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql("select issuer, jti from jwt_ids").all()
    assert len(rows) == 1
    assert rows[0][0] == ISS


def test_replay_store_failure_is_503_not_a_pass(
    build: Callable[..., Flask], keys: Keys, clock: MovingClock
) -> None:
    # With the outage fallback off (docs/operations.md, "Authentication while the
    # database is down"): refused at once, with when to try again.
    app = build(CDS_REPLAY_FALLBACK_SECONDS=0)
    app.extensions["audit_store"].drop_schema()
    response = call(app.test_client(), DISCOVERY, keys.es384.sign(claims(clock, DISCOVERY)))
    assert response.status_code == 503
    assert response.get_json()["error"] == "unavailable"
    assert response.headers["Retry-After"] == "2"


def test_replay_store_failure_within_the_fallback_window_still_refuses_replays(
    build: Callable[..., Flask], keys: Keys, clock: MovingClock
) -> None:
    app = build()  # the default window
    app.extensions["audit_store"].drop_schema()
    client = app.test_client()
    token = keys.es384.sign(claims(clock, DISCOVERY))
    assert call(client, DISCOVERY, token).status_code == 200
    assert call(client, DISCOVERY, token).status_code == 401
    ready = client.get("/health/ready").get_json()["replay"]
    assert (ready["store"], ready["accepted_during_outage"]) == ("failing", 1)


# --- FHIR server pinning ----------------------------------------------------------


def _needs_server(base: str) -> dict[str, Any]:
    body = load_example("order-sign-prefetch.json")
    body["fhirServer"] = base
    body["fhirAuthorization"] = {
        "access_token": "pinned-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "user/*.read",
        "subject": "anakinra-cds",
    }
    del body["prefetch"]["patient"]  # required: must be read, or the record is unreadable
    return body


@pytest.mark.parametrize(
    "server",
    [
        "https://other-ehr.example.net/fhir",
        "https://ehr.example.org/fhir-other",
        "http://ehr.example.org/fhir",
        "http://127.0.0.1:8081/fhir",
    ],
)
def test_fhir_server_not_pinned_for_the_issuer_is_never_contacted(
    client: FlaskClient,
    net: responses.RequestsMock,
    keys: Keys,
    clock: MovingClock,
    server: str,
) -> None:
    trap = net.get(re.compile(r".*"), json={"resourceType": "Patient", "id": "pt-ra-1001"})
    response = client.post(
        SIGN,
        json=_needs_server(server),
        headers={"Authorization": f"Bearer {keys.es384.sign(claims(clock, SIGN))}"},
    )
    assert response.status_code == 200  # a could-not-check card (issue 12; was 412)
    [evaluation] = response.get_json()["extension"]["com.anakinra-cds.evaluation"]
    assert evaluation["outcome"] == "not-evaluated"
    assert evaluation["missingData"][0]["issue"] == "forbidden"
    assert "pinned-access-token" not in response.get_data(as_text=True)
    assert trap.call_count == 0
    assert len(net.calls) == 0


def test_pinned_fhir_server_is_read_with_the_access_token(
    client: FlaskClient, net: responses.RequestsMock, keys: Keys, clock: MovingClock
) -> None:
    net.get(f"{FHIR}/Patient/pt-ra-1001", json={"resourceType": "Patient", "id": "pt-ra-1001"})
    response = client.post(
        SIGN,
        json=_needs_server(FHIR),
        headers={"Authorization": f"Bearer {keys.es384.sign(claims(clock, SIGN))}"},
    )
    assert response.status_code == 200
    (fetched,) = net.calls
    assert fetched.request.headers["Authorization"] == "Bearer pinned-access-token"


def test_next_link_off_the_pinned_base_is_not_followed(
    client: FlaskClient, net: responses.RequestsMock, keys: Keys, clock: MovingClock
) -> None:
    body = load_example("order-sign-prefetch.json")
    body["fhirServer"] = FHIR
    del body["prefetch"]["conditions"]
    net.get(
        re.compile(re.escape(f"{FHIR}/Condition?")),
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "link": [{"relation": "next", "url": "https://evil.example.org/fhir/Condition?p=2"}],
            "entry": [{"resource": {"resourceType": "Condition", "id": "c1"}}],
        },
    )
    evil = net.get(re.compile(r"https://evil\.example\.org/.*"), json={})
    response = client.post(
        SIGN, json=body, headers={"Authorization": f"Bearer {keys.es384.sign(claims(clock, SIGN))}"}
    )
    assert response.status_code == 200
    assert evil.call_count == 0


# --- start-up ---------------------------------------------------------------------


def test_disabled_auth_is_announced(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(base_config())
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "auth-disabled"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "CDS_AUTH=disabled" in warnings[0].getMessage()
    assert app.test_client().get(DISCOVERY).status_code == 200


def test_auth_warning_text() -> None:
    from cds_service.config import Settings, auth_warning

    assert auth_warning(Settings(auth="enabled")) is None
    text = auth_warning(Settings(auth="disabled"))
    assert text is not None
    assert "CDS_AUTH=disabled" in text
    assert text.startswith("WARNING")


def test_token_lifetimes_use_the_configured_clock_skew(
    build: Callable[..., Flask], keys: Keys, clock: MovingClock
) -> None:
    app = build(CDS_AUTH_CLOCK_SKEW=5)
    late = keys.es384.sign(claims(clock, DISCOVERY, iat=clock.ts - 400, exp=clock.ts - 10))
    assert_bare_401(call(app.test_client(), DISCOVERY, late))
    lenient = build(CDS_AUTH_CLOCK_SKEW=60)
    late = keys.es384.sign(claims(clock, DISCOVERY, iat=clock.ts - 400, exp=clock.ts - 10))
    assert call(lenient.test_client(), DISCOVERY, late).status_code == 200
