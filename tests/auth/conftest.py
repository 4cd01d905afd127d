"""Shared helpers for the authentication tests: real keys, real signed tokens, a fake clock."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from cds_service.auth import TrustedIssuers

DATA = Path(__file__).parent / "data"

ISS = "https://ehr.example.org"
AUD = "https://cds.example.org/cds-services/anakinra-order-sign"
NOW = 1_750_000_000.0
FHIR = "https://ehr.example.org/fhir"


@dataclass
class Signer:
    """A private key that signs tokens, and the public JWK that verifies them."""

    alg: str
    kid: str
    private_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

    def public_jwk(self) -> dict[str, Any]:
        public = self.private_key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": self.alg}

    def sign(self, claims: Mapping[str, Any], **headers: Any) -> str:
        return jwt.encode(
            dict(claims),
            self.private_key,
            algorithm=self.alg,
            headers={"kid": self.kid, "typ": "JWT", **headers},
        )


def make_signer(alg: str, kid: str) -> Signer:
    if alg.startswith("ES"):
        curve = ec.SECP384R1() if alg == "ES384" else ec.SECP256R1()
        return Signer(alg, kid, ec.generate_private_key(curve))
    return Signer(alg, kid, rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture(scope="session")
def es384() -> Signer:
    return make_signer("ES384", "ehr-es384-1")


@pytest.fixture(scope="session")
def rs384() -> Signer:
    return make_signer("RS384", "ehr-rs384-1")


@pytest.fixture(scope="session")
def es384_other() -> Signer:
    """A second ES384 key: for rotation, and for forging a token under a known kid."""
    return make_signer("ES384", "ehr-es384-2")


def jwks(*signers: Signer) -> dict[str, Any]:
    return {"keys": [s.public_jwk() for s in signers]}


def claims(**overrides: Any) -> dict[str, Any]:
    """A valid claim set at NOW; pass name=None to drop a claim."""
    base: dict[str, Any] = {
        "iss": ISS,
        "sub": "anakinra-cds-client",
        "aud": AUD,
        "iat": int(NOW),
        "exp": int(NOW) + 300,
        "jti": "jti-0001",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@dataclass
class FakeClock:
    now: float = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@dataclass
class FakeFetcher:
    """Serves JWK Sets by URL, like the clients' web servers would, and counts the calls."""

    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def __call__(self, url: str) -> Mapping[str, Any]:
        self.calls.append(url)
        if url not in self.sets:
            raise ConnectionError(f"no route to {url}")
        return self.sets[url]


@pytest.fixture
def fetcher() -> FakeFetcher:
    return FakeFetcher()


WriteConfig = Callable[..., TrustedIssuers]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Write a trusted-issuers file (and the key files it names) and load it for real."""

    def write(
        *issuers: dict[str, Any], key_files: Mapping[str, Any] | None = None
    ) -> TrustedIssuers:
        for name, content in (key_files or {}).items():
            (tmp_path / name).write_text(json.dumps(content), encoding="utf-8")
        path = tmp_path / "trusted-issuers.json"
        path.write_text(json.dumps({"issuers": list(issuers)}), encoding="utf-8")
        return TrustedIssuers.load(path)

    return write
