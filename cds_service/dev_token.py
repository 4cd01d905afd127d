"""`cds-service dev-token`: a signing key and a trusted issuer for trying the service with
authentication on, on one machine, offline.

The first call creates an EC P-384 key under `var/dev-issuer/` (the private key readable by
its owner only) and writes `var/dev-issuer/trusted-issuers.json`, which trusts that key
(inline, so nothing is fetched) for the local FHIR sandbox. Every call prints one fresh
token (ES384, five minutes, a new `jti`) whose `aud` is the service URL it will be sent to,
for `curl -H "Authorization: Bearer $TOKEN"`. Local testing only: never trust this issuer
in production.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

DEV_ISSUER: Final = "urn:cds-service:dev-token"
"""The `iss` of the tokens made here (a name, not a URL: nothing is fetched from it)."""
DEFAULT_FOLDER: Final = Path("var") / "dev-issuer"
KEY_FILE: Final = "signing-key.pem"
ISSUERS_FILE: Final = "trusted-issuers.json"
TOKEN_LIFETIME_S: Final = 300
DEFAULT_FHIR_SERVERS: Final = ("http://127.0.0.1:8090/fhir", "http://localhost:8090/fhir")
"""The project's FHIR sandbox (`python -m sandbox.fhir_sandbox serve`)."""


@dataclass(frozen=True)
class DevIssuer:
    """The local signing key and where its trusted-issuers file is."""

    key: ec.EllipticCurvePrivateKey
    kid: str
    issuers_file: Path
    created: bool
    """True when this call made the key (the first one)."""


def key_id(public_jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 thumbprint of an EC public key (base64url SHA-256): stable per key."""
    members = {name: public_jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    digest = hashlib.sha256(canonical).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_jwk(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk = {name: jwk[name] for name in ("kty", "crv", "x", "y")}
    return {**jwk, "kid": key_id(jwk), "use": "sig", "alg": "ES384"}


def issuers_document(jwk: Mapping[str, Any], fhir_servers: Sequence[str]) -> dict[str, Any]:
    """A trusted-issuers file trusting `jwk` (inline) as the dev-token issuer."""
    return {
        "description": (
            "Written by `cds-service dev-token` for local testing with authentication on. "
            "Never use it in production."
        ),
        "issuers": [
            {
                "iss": DEV_ISSUER,
                "description": "The local signing key of cds-service dev-token (offline).",
                "jwks": {"keys": [dict(jwk)]},
                "algorithms": ["ES384"],
                "fhir_servers": list(fhir_servers),
            }
        ],
    }


def claims_for(audience: str, now: float, jti: str) -> dict[str, Any]:
    """The claims of one CDS Hooks client token for a call to `audience` (the URL called)."""
    return {
        "iss": DEV_ISSUER,
        "sub": "dev-token",
        "aud": audience,
        "iat": int(now),
        "exp": int(now) + TOKEN_LIFETIME_S,
        "jti": jti,
    }


def sign(issuer: DevIssuer, audience: str, now: float, jti: str | None = None) -> str:
    claims = claims_for(audience, now, jti or str(uuid.uuid4()))
    return jwt.encode(
        claims, issuer.key, algorithm="ES384", headers={"kid": issuer.kid, "typ": "JWT"}
    )


def audience_for(base_url: str, path: str) -> str:
    """`base_url` plus `path`, as the service compares it with `CDS_PUBLIC_BASE_URL`."""
    return base_url.rstrip("/") + "/" + path.lstrip("/")


# -- files (the I/O edge) ----------------------------------------------------------------------


def _load_or_create_key(path: Path) -> tuple[ec.EllipticCurvePrivateKey, bool]:
    if path.exists():
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey) or loaded.curve.name != "secp384r1":
            raise ValueError(f"{path} is not an EC P-384 private key: remove it to make a new one")
        return loaded, False
    key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    return key, True


def prepare(folder: Path, fhir_servers: Sequence[str]) -> DevIssuer:
    """The dev issuer of `folder`: its key (created once) and its trusted-issuers file
    (written when missing or when its content would change)."""
    key, created = _load_or_create_key(folder / KEY_FILE)
    jwk = public_jwk(key)
    text = json.dumps(issuers_document(jwk, fhir_servers), indent=2) + "\n"
    issuers_file = folder / ISSUERS_FILE
    if not issuers_file.exists() or issuers_file.read_text("utf-8") != text:
        issuers_file.write_text(text, "utf-8")
    return DevIssuer(key=key, kid=str(jwk["kid"]), issuers_file=issuers_file, created=created)


def start_hint(issuer: DevIssuer, base_url: str) -> str:
    """What to set to start the service trusting this issuer (shown once, on stderr)."""
    return (
        f"dev-token: created a local signing key and {issuer.issuers_file}; start the service "
        f"with authentication on: CDS_TRUSTED_ISSUERS={issuer.issuers_file} make run "
        f"(or CDS_AUTH=enabled CDS_TRUSTED_ISSUERS={issuer.issuers_file} "
        f"CDS_PUBLIC_BASE_URL={base_url.rstrip('/')} cds-service serve)"
    )
