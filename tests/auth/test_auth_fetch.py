"""The default key-set fetcher: what it refuses to follow or read."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from cds_service.auth import (
    Authenticator,
    AuthError,
    InMemoryReplayGuard,
    fetch_jwks_with_requests,
)

from .conftest import AUD, FHIR, ISS, FakeClock, Signer, WriteConfig, claims, jwks

URL = "https://ehr.example.org/.well-known/jwks.json"


@responses.activate
def test_fetches_a_key_set(es384: Signer):
    responses.get(URL, json=jwks(es384))

    assert fetch_jwks_with_requests(URL)["keys"][0]["kid"] == es384.kid


@responses.activate
def test_does_not_follow_redirects(es384: Signer):
    responses.get(URL, status=302, headers={"Location": "https://evil.example.com/k.json"})
    responses.get("https://evil.example.com/k.json", json=jwks(es384))

    with pytest.raises(ValueError, match="302"):
        fetch_jwks_with_requests(URL)
    assert len(responses.calls) == 1


@responses.activate
def test_refuses_errors_and_oversized_or_odd_bodies():
    responses.get(URL, status=500)
    with pytest.raises(ValueError, match="500"):
        fetch_jwks_with_requests(URL)

    responses.replace(responses.GET, URL, body=b"x" * (300 * 1024))
    with pytest.raises(ValueError, match="too large"):
        fetch_jwks_with_requests(URL)

    responses.replace(responses.GET, URL, body=json.dumps([1, 2]))
    with pytest.raises(ValueError, match="not a JSON object"):
        fetch_jwks_with_requests(URL)


@responses.activate
def test_authenticator_uses_it_by_default_and_survives_a_timeout(
    write_config: WriteConfig, es384: Signer, clock: FakeClock
):
    issuers = write_config({"iss": ISS, "jwks_url": URL, "fhir_servers": [FHIR]})
    auth = Authenticator(issuers, replay=InMemoryReplayGuard(clock), clock=clock)
    responses.get(URL, body=requests.exceptions.ConnectTimeout())

    with pytest.raises(AuthError, match="could not be fetched"):
        auth.authenticate(f"Bearer {es384.sign(claims(jti='1'))}", AUD)

    clock.now += 61
    responses.replace(responses.GET, URL, json=jwks(es384))
    token = es384.sign(claims(jti="2", iat=int(clock.now), exp=int(clock.now) + 300))
    assert auth.authenticate(f"Bearer {token}", AUD).jti == "2"
