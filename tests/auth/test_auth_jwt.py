"""Authenticating CDS clients: real ES384 / RS384 tokens checked against trusted-issuer files."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from cds_service.auth import (
    Authenticator,
    AuthError,
    InMemoryReplayGuard,
    Principal,
    TrustedIssuers,
)

from .conftest import (
    AUD,
    DATA,
    FHIR,
    ISS,
    NOW,
    FakeClock,
    FakeFetcher,
    Signer,
    WriteConfig,
    claims,
    jwks,
    make_signer,
)

JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"


def bearer(token: str) -> str:
    return f"Bearer {token}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes) -> str:
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(payload).encode())
    return f"{head}.{body}.{b64(signature)}"


def file_issuer(*signers: Signer, **extra: Any) -> dict[str, Any]:
    return {"iss": ISS, "jwks_file": "ehr-jwks.json", "fhir_servers": [FHIR], **extra}


@pytest.fixture
def authenticator(
    write_config: WriteConfig,
    es384: Signer,
    rs384: Signer,
    clock: FakeClock,
    fetcher: FakeFetcher,
) -> Authenticator:
    issuers = write_config(
        file_issuer(tenant="tenant-a"),
        key_files={"ehr-jwks.json": jwks(es384, rs384)},
    )
    return Authenticator(
        issuers,
        replay=InMemoryReplayGuard(clock=clock),
        fetch_jwks=fetcher,
        clock=clock,
    )


def tenant_claims(**overrides: Any) -> dict[str, Any]:
    return claims(**{"tenant": "tenant-a", **overrides})


def reject_reason(auth: Authenticator, header: str | None, audience: str = AUD) -> str:
    with pytest.raises(AuthError) as caught:
        auth.authenticate(header, audience)
    return caught.value.reason


# ---------------------------------------------------------------------------- accepted tokens


def test_valid_es384_token_gives_the_principal(authenticator: Authenticator, es384: Signer):
    principal = authenticator.authenticate(bearer(es384.sign(tenant_claims())), AUD)

    assert principal == Principal(
        iss=ISS,
        sub="anakinra-cds-client",
        jti="jti-0001",
        tenant="tenant-a",
        fhir_servers=(FHIR,),
    )


def test_valid_rs384_token_is_accepted(authenticator: Authenticator, rs384: Signer):
    principal = authenticator.authenticate(bearer(rs384.sign(tenant_claims(jti="rs-1"))), AUD)

    assert principal.jti == "rs-1"


@pytest.mark.parametrize(
    "aud",
    [AUD + "/", [AUD], ["https://cds.example.org/cds-services", AUD], AUD.upper()[:5] + AUD[5:]],
)
def test_audience_forms_that_name_the_called_url_are_accepted(
    authenticator: Authenticator, es384: Signer, aud: Any
):
    token = es384.sign(tenant_claims(aud=aud))

    assert authenticator.authenticate(bearer(token), AUD).iss == ISS


def test_lower_case_bearer_scheme_is_accepted(authenticator: Authenticator, es384: Signer):
    assert authenticator.authenticate("bearer " + es384.sign(tenant_claims()), AUD).iss == ISS


def test_clock_skew_within_leeway_is_tolerated(
    authenticator: Authenticator, es384: Signer, clock: FakeClock
):
    # Our clock runs 20 s behind the client's: iat looks 20 s in the future.
    clock.now = NOW - 20
    assert authenticator.authenticate(bearer(es384.sign(tenant_claims(jti="a"))), AUD)
    # Our clock runs ahead: the token expired 20 s ago by our reckoning.
    clock.now = NOW + 300 + 20
    assert authenticator.authenticate(bearer(es384.sign(tenant_claims(jti="b"))), AUD)


# ---------------------------------------------------------------------------- time claims


def test_expired_token_is_rejected(authenticator: Authenticator, es384: Signer, clock: FakeClock):
    clock.now = NOW + 300 + 31

    assert reject_reason(authenticator, bearer(es384.sign(tenant_claims()))) == "token expired"


def test_token_issued_in_the_future_is_rejected(authenticator: Authenticator, es384: Signer):
    token = es384.sign(tenant_claims(iat=int(NOW) + 120, exp=int(NOW) + 400))

    assert "future" in reject_reason(authenticator, bearer(token))


def test_token_not_yet_valid_by_nbf_is_rejected(authenticator: Authenticator, es384: Signer):
    token = es384.sign(tenant_claims(nbf=int(NOW) + 120))

    assert "nbf" in reject_reason(authenticator, bearer(token))


@pytest.mark.parametrize("missing", ["exp", "iat", "jti"])
def test_required_claims_must_be_present(authenticator: Authenticator, es384: Signer, missing: str):
    token = es384.sign(tenant_claims(**{missing: None}))

    assert missing in reject_reason(authenticator, bearer(token))


def test_token_living_longer_than_an_hour_is_rejected(authenticator: Authenticator, es384: Signer):
    token = es384.sign(tenant_claims(exp=int(NOW) + 7200))

    assert "lifetime" in reject_reason(authenticator, bearer(token))


# ---------------------------------------------------------------------------- who and where


@pytest.mark.parametrize(
    "aud",
    [
        "https://cds.example.org/cds-services/other-service",
        "https://cds.example.org/cds-services",
        AUD + "-evil",
        "https://evil.example.com/cds-services/anakinra-order-sign",
        [],
        None,
    ],
)
def test_wrong_audience_is_rejected(authenticator: Authenticator, es384: Signer, aud: Any):
    token = es384.sign(tenant_claims(aud=aud))

    assert "aud" in reject_reason(authenticator, bearer(token))


def test_unknown_issuer_is_rejected(authenticator: Authenticator, es384: Signer):
    token = es384.sign(tenant_claims(iss="https://other-ehr.example.net"))

    assert "not trusted" in reject_reason(authenticator, bearer(token))


def test_tenant_mismatch_and_missing_tenant_are_rejected(
    authenticator: Authenticator, es384: Signer
):
    wrong = es384.sign(claims(tenant="tenant-b", jti="t1"))
    missing = es384.sign(claims(jti="t2"))

    assert "tenant" in reject_reason(authenticator, bearer(wrong))
    assert "tenant" in reject_reason(authenticator, bearer(missing))


def test_subject_is_checked_when_the_issuer_pins_it(
    write_config: WriteConfig, es384: Signer, clock: FakeClock
):
    issuers = write_config(
        file_issuer(subjects=["anakinra-cds-client"]),
        key_files={"ehr-jwks.json": jwks(es384)},
    )
    auth = Authenticator(issuers, replay=InMemoryReplayGuard(clock), clock=clock)

    assert auth.authenticate(bearer(es384.sign(claims(jti="s1"))), AUD).sub == (
        "anakinra-cds-client"
    )
    assert "sub" in reject_reason(auth, bearer(es384.sign(claims(sub="intruder", jti="s2"))))
    assert "sub" in reject_reason(auth, bearer(es384.sign(claims(sub=None, jti="s3"))))


# ---------------------------------------------------------------------------- algorithms


def test_alg_none_is_rejected(authenticator: Authenticator, es384: Signer):
    token = hand_made_token({"alg": "none", "kid": es384.kid}, tenant_claims(), b"")

    assert "algorithm" in reject_reason(authenticator, bearer(token))


def test_hs256_signed_with_the_public_key_as_secret_is_rejected(
    authenticator: Authenticator, rs384: Signer
):
    # The classic key-confusion attack: the attacker knows our public key and uses it as an
    # HMAC secret, hoping we verify with "whatever algorithm the header says".
    pem = rs384.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "kid": rs384.kid, "typ": "JWT"}
    payload = tenant_claims()
    unsigned = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = hmac.new(pem, unsigned.encode(), hashlib.sha256).digest()

    assert "algorithm" in reject_reason(authenticator, bearer(f"{unsigned}.{b64(signature)}"))


def test_algorithm_outside_the_issuers_list_is_rejected(
    write_config: WriteConfig, es384: Signer, rs384: Signer, clock: FakeClock
):
    issuers = write_config(
        file_issuer(algorithms=["ES384"]), key_files={"ehr-jwks.json": jwks(es384, rs384)}
    )
    auth = Authenticator(issuers, replay=InMemoryReplayGuard(clock), clock=clock)

    assert "RS384" in reject_reason(auth, bearer(rs384.sign(claims())))


def test_token_whose_alg_does_not_fit_the_key_is_rejected(
    authenticator: Authenticator, rs384: Signer, es384: Signer
):
    # An ES384 signature presented under the kid of an RSA key.
    token = es384.sign(tenant_claims(), kid=rs384.kid)

    assert "does not fit" in reject_reason(authenticator, bearer(token))


def test_forged_signature_under_a_known_kid_is_rejected(
    authenticator: Authenticator, es384: Signer, es384_other: Signer
):
    forged = es384_other.sign(tenant_claims(), kid=es384.kid)

    assert reject_reason(authenticator, bearer(forged)) == "token signature does not verify"


def test_tampered_payload_is_rejected(authenticator: Authenticator, es384: Signer):
    head, _, sig = es384.sign(tenant_claims()).split(".")
    body = b64(json.dumps(tenant_claims(sub="someone-else")).encode())

    assert "signature" in reject_reason(authenticator, bearer(f"{head}.{body}.{sig}"))


# ---------------------------------------------------------------------------- the header


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "no Authorization header"),
        ("", "no Authorization header"),
        ("Basic dXNlcjpwYXNz", "not Bearer"),
        ("Bearer", "empty or malformed"),
        ("Bearer    ", "empty or malformed"),
        ("Bearer not-a-jwt", "well-formed"),
        ("Bearer aaa.bbb.ccc", "well-formed"),
        ("Bearer two tokens", "empty or malformed"),
    ],
)
def test_missing_or_malformed_authorization_is_rejected(
    authenticator: Authenticator, header: str | None, expected: str
):
    assert expected in reject_reason(authenticator, header)


# ---------------------------------------------------------------------------- replay


def test_replayed_jti_is_rejected_but_a_fresh_one_is_accepted(
    authenticator: Authenticator, es384: Signer
):
    token = es384.sign(tenant_claims(jti="once"))
    authenticator.authenticate(bearer(token), AUD)

    assert "replay" in reject_reason(authenticator, bearer(token))
    assert authenticator.authenticate(bearer(es384.sign(tenant_claims(jti="twice"))), AUD)


def test_a_rejected_token_does_not_use_up_its_jti(authenticator: Authenticator, es384: Signer):
    wrong_aud = es384.sign(tenant_claims(jti="j", aud="https://cds.example.org/other"))
    reject_reason(authenticator, bearer(wrong_aud))

    assert authenticator.authenticate(bearer(es384.sign(tenant_claims(jti="j"))), AUD)


def test_in_memory_replay_guard_forgets_a_jti_once_its_token_has_expired():
    clock = FakeClock()
    guard = InMemoryReplayGuard(clock)

    assert guard.remember(ISS, "j1", NOW + 60) is True
    assert guard.remember(ISS, "j1", NOW + 60) is False
    assert guard.remember("https://other.example.org", "j1", NOW + 60) is True
    clock.now = NOW + 61
    assert guard.remember(ISS, "j1", NOW + 120) is True


# ------------------------------------------------------------------------ keys: kid, jku, rotation


def url_issuer_auth(
    write_config: WriteConfig, fetcher: FakeFetcher, clock: FakeClock, **extra: Any
) -> Authenticator:
    issuers = write_config({"iss": ISS, "jwks_url": JWKS_URL, "fhir_servers": [FHIR], **extra})
    return Authenticator(
        issuers,
        replay=InMemoryReplayGuard(clock),
        fetch_jwks=fetcher,
        clock=clock,
        key_refresh_min_interval=60,
    )


def test_unknown_kid_with_only_a_key_file_is_rejected_without_fetching(
    authenticator: Authenticator, es384_other: Signer, fetcher: FakeFetcher
):
    token = es384_other.sign(tenant_claims())

    assert "unknown kid" in reject_reason(authenticator, bearer(token))
    assert fetcher.calls == []


def test_key_rotation_refetches_once_then_rate_limits(
    write_config: WriteConfig,
    fetcher: FakeFetcher,
    clock: FakeClock,
    es384: Signer,
    es384_other: Signer,
):
    auth = url_issuer_auth(write_config, fetcher, clock)
    fetcher.sets[JWKS_URL] = jwks(es384)

    auth.authenticate(bearer(es384.sign(claims(jti="1"))), AUD)
    assert len(fetcher.calls) == 1
    auth.authenticate(bearer(es384.sign(claims(jti="2"))), AUD)
    assert len(fetcher.calls) == 1  # cached

    # The EHR rotates in a new key: the unknown kid triggers one refetch, and is accepted.
    clock.now += 5
    fetcher.sets[JWKS_URL] = jwks(es384, es384_other)
    assert auth.authenticate(bearer(es384_other.sign(claims(jti="3"))), AUD).jti == "3"
    assert len(fetcher.calls) == 2

    # A second unknown kid inside the refresh interval does not make us fetch again.
    stranger = make_signer("ES384", "never-published")
    clock.now += 10
    assert "unknown kid" in reject_reason(auth, bearer(stranger.sign(claims(jti="4"))))
    assert len(fetcher.calls) == 2

    # Once the interval has passed, an unknown kid may refresh again.
    clock.now += 60
    assert "unknown kid" in reject_reason(auth, bearer(stranger.sign(claims(jti="5"))))
    assert len(fetcher.calls) == 3


def test_withdrawn_key_stops_working_after_the_cache_expires(
    write_config: WriteConfig,
    fetcher: FakeFetcher,
    clock: FakeClock,
    es384: Signer,
    es384_other: Signer,
):
    auth = url_issuer_auth(write_config, fetcher, clock)
    fetcher.sets[JWKS_URL] = jwks(es384, es384_other)
    auth.authenticate(bearer(es384.sign(claims(jti="1"))), AUD)

    fetcher.sets[JWKS_URL] = jwks(es384_other)  # es384 withdrawn (say, compromised)
    clock.now = NOW + 3601

    token = es384.sign(claims(jti="2", iat=int(clock.now), exp=int(clock.now) + 300))
    assert "unknown kid" in reject_reason(auth, bearer(token))


def test_unreachable_key_set_is_reported_and_not_hammered(
    write_config: WriteConfig, fetcher: FakeFetcher, clock: FakeClock, es384: Signer
):
    auth = url_issuer_auth(write_config, fetcher, clock)  # fetcher has no set: every call fails

    assert "could not be fetched" in reject_reason(auth, bearer(es384.sign(claims(jti="1"))))
    calls_after_first = len(fetcher.calls)
    clock.now += 5
    assert "could not be fetched" in reject_reason(auth, bearer(es384.sign(claims(jti="2"))))
    assert len(fetcher.calls) == calls_after_first

    clock.now += 60
    fetcher.sets[JWKS_URL] = jwks(es384)
    token = es384.sign(claims(jti="3", iat=int(clock.now), exp=int(clock.now) + 300))
    assert auth.authenticate(bearer(token), AUD).jti == "3"


def test_jku_on_the_allowlist_is_used(
    write_config: WriteConfig, fetcher: FakeFetcher, clock: FakeClock, es384: Signer
):
    jku = "https://ehr.example.org/keys/cds.json"
    issuers = write_config({"iss": ISS, "jku_allowlist": [jku], "fhir_servers": [FHIR]})
    auth = Authenticator(
        issuers, replay=InMemoryReplayGuard(clock), fetch_jwks=fetcher, clock=clock
    )
    fetcher.sets[jku] = jwks(es384)

    assert auth.authenticate(bearer(es384.sign(claims(), jku=jku)), AUD).iss == ISS
    assert fetcher.calls == [jku]


def test_jku_off_the_allowlist_is_rejected_without_fetching_it(
    write_config: WriteConfig, fetcher: FakeFetcher, clock: FakeClock, es384: Signer
):
    allowed = "https://ehr.example.org/keys/cds.json"
    evil = "https://attacker.example.com/keys.json"
    issuers = write_config(
        {"iss": ISS, "jku_allowlist": [allowed], "fhir_servers": [FHIR]},
    )
    auth = Authenticator(
        issuers, replay=InMemoryReplayGuard(clock), fetch_jwks=fetcher, clock=clock
    )
    fetcher.sets[evil] = jwks(es384)  # the attacker serves the key that signed the token

    assert "allowlist" in reject_reason(auth, bearer(es384.sign(claims(), jku=evil)))
    assert fetcher.calls == []


def test_jku_is_rejected_when_the_issuer_allows_none(
    authenticator: Authenticator, es384: Signer, fetcher: FakeFetcher
):
    token = es384.sign(tenant_claims(), jku="https://ehr.example.org/.well-known/jwks.json")

    assert "allowlist" in reject_reason(authenticator, bearer(token))
    assert fetcher.calls == []


# ---------------------------------------------------------------------------- reasons are safe


def test_no_rejection_reason_contains_the_token(
    authenticator: Authenticator, es384: Signer, es384_other: Signer
):
    tokens = [
        es384.sign(tenant_claims(aud="https://elsewhere.example.org")),
        es384.sign(tenant_claims(iss="https://unknown.example.org")),
        es384_other.sign(tenant_claims()),
        es384_other.sign(tenant_claims(), kid=es384.kid),
        es384.sign(tenant_claims(tenant="x")),
        es384.sign(tenant_claims(), jku="https://x.example.org/jwks"),
        es384.sign(tenant_claims(jti="dup")),
        es384.sign(tenant_claims(jti="dup")),
    ]
    authenticator.authenticate(bearer(es384.sign(tenant_claims(jti="dup"))), AUD)
    for token in tokens:
        reason = reject_reason(authenticator, bearer(token))
        for part in token.split("."):
            assert part not in reason


# ---------------------------------------------------------------------------- real-world vectors


SPEC_ISS = "https://fhir-ehr.example.com/"
SPEC_JKU = "https://fhir-ehr.example.com/jwk_uri"
SPEC_AUD = "https://cds.example.org/cds-services/some-service"
SPEC_IAT = 1311280970


def spec_example() -> tuple[TrustedIssuers, FakeFetcher, str]:
    header = json.loads((DATA / "spec-example-token.json").read_text())["authorization_header"]
    issuers = TrustedIssuers.from_dict(
        {
            "issuers": [
                {
                    "iss": SPEC_ISS,
                    "jku_allowlist": [SPEC_JKU],
                    "tenant": "2ddd6c3a-8e9a-44c6-a305-52111ad302a2",
                    "fhir_servers": ["https://fhir-ehr.example.com/fhir"],
                }
            ]
        },
        base_dir=DATA,
    )
    fetcher = FakeFetcher({SPEC_JKU: json.loads((DATA / "spec-example-jwks.json").read_text())})
    return issuers, fetcher, header


def test_spec_example_token_is_rejected_today_as_expired():
    issuers, fetcher, header = spec_example()
    auth = Authenticator(issuers, replay=InMemoryReplayGuard(), fetch_jwks=fetcher, clock=time.time)

    assert reject_reason(auth, header, SPEC_AUD) == "token expired"


def test_spec_example_token_verifies_when_time_is_pinned_to_its_iat():
    issuers, fetcher, header = spec_example()
    clock = FakeClock(float(SPEC_IAT))
    auth = Authenticator(
        issuers,
        replay=InMemoryReplayGuard(clock),
        fetch_jwks=fetcher,
        clock=clock,
        max_token_lifetime_seconds=None,  # the example lives for three years
    )

    principal = auth.authenticate(header, SPEC_AUD)

    assert principal.iss == SPEC_ISS
    assert principal.jti == "ee22b021-e1b7-4611-ba5b-8eec6a33ac1e"
    assert principal.tenant == "2ddd6c3a-8e9a-44c6-a305-52111ad302a2"
    assert principal.sub is None
    assert fetcher.calls == [SPEC_JKU]


def test_spec_example_token_fails_against_another_key_with_its_kid():
    issuers, fetcher, header = spec_example()
    impostor = make_signer("ES384", "example-kid")
    fetcher.sets[SPEC_JKU] = jwks(impostor)
    clock = FakeClock(float(SPEC_IAT))
    auth = Authenticator(
        issuers,
        replay=InMemoryReplayGuard(clock),
        fetch_jwks=fetcher,
        clock=clock,
        max_token_lifetime_seconds=None,
    )

    assert reject_reason(auth, header, SPEC_AUD) == "token signature does not verify"


def test_sandbox_key_file_loads_and_its_key_is_the_one_checked(tmp_path: Path, clock: FakeClock):
    sandbox_kid = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"
    config = tmp_path / "trusted.json"
    config.write_text(
        json.dumps(
            {
                "issuers": [
                    {
                        "iss": "https://sandbox.cds-hooks.org",
                        "jwks_file": str(DATA / "sandbox-public-jwks.json"),
                        "jku_allowlist": ["https://sandbox.cds-hooks.org/.well-known/jwks.json"],
                        "fhir_servers": ["https://launch.smarthealthit.org/v/r4/fhir"],
                    }
                ]
            }
        )
    )
    issuers = TrustedIssuers.load(config)
    sandbox = issuers.get("https://sandbox.cds-hooks.org")
    assert sandbox is not None
    assert list(sandbox.keys) == [sandbox_kid]
    assert sandbox.keys[sandbox_kid]["crv"] == "P-384"

    # We do not hold the sandbox's private key: a token under its kid signed by anyone else fails.
    impostor = make_signer("ES384", sandbox_kid)
    token = impostor.sign(
        claims(iss="https://sandbox.cds-hooks.org", sub=None),
        jku="https://sandbox.cds-hooks.org/.well-known/jwks.json",
    )
    auth = Authenticator(issuers, replay=InMemoryReplayGuard(clock), clock=clock)
    assert reject_reason(auth, bearer(token)) == "token signature does not verify"
