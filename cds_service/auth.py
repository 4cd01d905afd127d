"""Authentication of CDS clients (CDS Hooks 2.0.1, "Trusting CDS Clients") and FHIR-server pinning.

A CDS client (an EHR) signs every call with a short-lived JWT in ``Authorization: Bearer``.
We accept a call only when all of these hold:

* the token's ``iss`` is a client we trust (``TrustedIssuers``, loaded from a JSON file that is
  validated at start-up against ``hooks/schemas/trusted-issuers.schema.json``);
* its ``alg`` is one that client may use (ES384 / RS384 by default; ES256 / RS256 on request;
  never ``none`` and never a shared-secret HS* algorithm);
* its ``kid`` names a key of that client: from the configured key set (file, inline or
  ``jwks_url``) or from the ``jku`` URL in the token header, and only when that URL is on the
  client's allowlist. An unknown ``kid`` makes us refetch the client's remote key sets (key
  rotation), at most once per ``key_refresh_min_interval`` seconds per client;
* the signature verifies; ``aud`` is the URL that was called; ``exp`` and ``iat`` are present and
  sane (with ``leeway_seconds`` of clock skew); ``tenant`` and ``sub`` match when the client's
  entry pins them; ``jti`` has not been seen before while the token could still be valid.

The unverified payload is read only to choose the key set; every claim we act on is read again
from the verified token. Failures raise ``AuthError`` whose ``reason`` is safe to log: it never
holds the token. The caller answers a bare 401.

The second half, ``fhir_server_allowed`` and ``same_base``, decides which FHIR servers a request
may make us call. A client could otherwise point us at any URL (an internal address, or a server
that would receive the access token it hands us), so each trusted client lists its FHIR base URLs
and ``fhirServer`` must be one of them, or lie under one.

Choices made here where the specification leaves room:

* ``sub`` is optional in the token (the specification's own example token has none); an issuer
  entry with ``subjects`` makes it required and pinned.
* ``aud`` may be a string or a list of strings (RFC 7519); one entry must equal the called URL
  after dropping a trailing slash and lower-casing the scheme and host.
* tokens whose ``exp - iat`` exceeds ``max_token_lifetime_seconds`` (default one hour; the CDS
  Hooks sandbox uses five minutes) are refused, so a leaked token cannot be replayed for years
  and the replay guard never has to remember a ``jti`` for long. ``None`` turns the check off.
* fetched key sets are kept per URL and refetched after ``key_cache_ttl`` seconds so that a key
  the client withdraws stops being trusted; if that refetch fails the known keys stay in use.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import SplitResult, unquote, urlsplit

import jsonschema
import jwt
import requests

from cds_service.resources import trusted_issuers_schema

logger = logging.getLogger(__name__)

SUPPORTED_ALGORITHMS: tuple[str, ...] = ("ES384", "RS384", "ES256", "RS256")
DEFAULT_ALGORITHMS: tuple[str, ...] = ("ES384", "RS384")

DEFAULT_SCHEMA_PATH = trusted_issuers_schema()
"""The schema shipped with the service (package data, or `hooks/` of a source checkout)."""

# Key type (and curve) each algorithm needs.
_KEY_SHAPE: dict[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
}
# JWK members that only a private or symmetric key has: never part of a trust store.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

_JWKS_MAX_BYTES = 256 * 1024
MAX_JTI_LENGTH = 256
_FETCH_TIMEOUT = (3.05, 5.0)  # (connect, read) seconds

JWK = dict[str, Any]
FetchJwks = Callable[[str], Mapping[str, Any]]


# --------------------------------------------------------------------------------------------
# Errors and results


class ConfigError(ValueError):
    """The trusted-issuers file (or a key file it names) is unusable. Raised at start-up."""


class AuthError(Exception):
    """The call is not authenticated. ``reason`` is for the log, never for the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """Who made an authenticated call, and which FHIR servers the call may make us read."""

    iss: str
    sub: str | None
    jti: str
    tenant: str | None
    fhir_servers: tuple[str, ...]
    shows_coverage_information: bool = True
    """False: the client does not show coverage information (CRD system actions) to the
    prescriber, so the card that says the order meets the criteria is kept beside it."""


# --------------------------------------------------------------------------------------------
# URLs


def is_loopback_host(host: str | None) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    host = host.lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class _Url:
    scheme: str
    host: str
    port: int
    path: str  # without trailing slash; "" for the root


def _parse_url(url: str) -> _Url | None:
    """Split an absolute http(s) URL into comparable parts; None when it is not one we accept.

    Refused: other schemes, no host, user info (``https://good@evil``), backslashes, control
    characters, and paths with ``.`` or ``..`` segments (also percent-encoded, double-encoded,
    or with a ``;`` parameter as in ``..;``), since a server may resolve those to somewhere
    outside the pinned base.
    """
    if not isinstance(url, str) or not url or "\\" in url or any(ord(c) < 0x21 for c in url):
        return None
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    if port is None:
        port = 443 if scheme == "https" else 80
    path = parts.path
    decoded = path
    for _ in range(3):  # catch double encoding too (%252e%252e)
        decoded = unquote(decoded)
    if any(seg.split(";", 1)[0] in (".", "..") for seg in decoded.split("/")):
        return None
    return _Url(scheme=scheme, host=parts.hostname.lower(), port=port, path=path.rstrip("/"))


def _transport_ok(parsed: _Url) -> bool:
    return parsed.scheme == "https" or is_loopback_host(parsed.host)


def normalise_url(url: str) -> str:
    """Scheme and host lower-cased, default port dropped, trailing slash dropped."""
    parsed = _parse_url(url)
    if parsed is None:
        return url.rstrip("/")
    default = 443 if parsed.scheme == "https" else 80
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    port = "" if parsed.port == default else f":{parsed.port}"
    query = urlsplit(url).query
    return f"{parsed.scheme}://{host}{port}{parsed.path}" + (f"?{query}" if query else "")


def same_base(url: str, base: str) -> bool:
    """True when ``url`` is ``base`` or lies under it (path-segment wise, same scheme/host/port).

    Use it for ``fhirServer`` against the pinned bases and for every Bundle ``next`` link we are
    about to follow. ``https://ehr.example.org/fhir-other`` is not under
    ``https://ehr.example.org/fhir``, nor is ``https://ehr.example.org.evil.com/fhir``. A query
    string on ``url`` is allowed (paging links carry one); a fragment is not.
    """
    u = _parse_url(url)
    b = _parse_url(base)
    if u is None or b is None or urlsplit(url).fragment:
        return False
    if (u.scheme, u.host, u.port) != (b.scheme, b.host, b.port):
        return False
    return u.path == b.path or u.path.startswith(b.path + "/")


def fhir_server_allowed(
    principal: Principal | None,
    fhir_server: str,
    *,
    auth_disabled_allowlist: Sequence[str],
) -> bool:
    """May this request make us call ``fhir_server``?

    * With a principal: it must equal, or lie under, one of its issuer's pinned FHIR bases, and
      use https unless the host is a loopback address.
    * With authentication disabled (``principal is None``): it must lie under an entry of
      ``auth_disabled_allowlist``; when that list is empty, only loopback hosts are allowed
      (a developer's local FHIR server), never anything reachable beyond this machine.
    """
    parsed = _parse_url(fhir_server)
    if parsed is None or not _transport_ok(parsed):
        return False
    split = urlsplit(fhir_server)
    if split.query or split.fragment:
        return False
    if principal is not None:
        return any(same_base(fhir_server, base) for base in principal.fhir_servers)
    if auth_disabled_allowlist:
        return any(same_base(fhir_server, base) for base in auth_disabled_allowlist)
    return is_loopback_host(parsed.host)


# --------------------------------------------------------------------------------------------
# Trusted issuers


@dataclass(frozen=True)
class IssuerConfig:
    """One trusted CDS client, as configured."""

    iss: str
    fhir_servers: tuple[str, ...]
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    keys: Mapping[str, JWK] = field(default_factory=dict)  # from jwks_file or inline jwks
    jwks_url: str | None = None
    jku_allowlist: tuple[str, ...] = ()
    tenant: str | None = None
    subjects: tuple[str, ...] | None = None
    shows_coverage_information: bool = True
    """False (`shows_coverage_information` in the file): this client does not show
    coverage information (system actions), e.g. the official CDS Hooks sandbox."""

    def __post_init__(self) -> None:
        unsupported = [a for a in self.algorithms if a not in SUPPORTED_ALGORITHMS]
        if unsupported or not self.algorithms:
            raise ConfigError(
                f"issuer {self.iss!r}: algorithms must be a non-empty subset of "
                f"{', '.join(SUPPORTED_ALGORITHMS)} (got {', '.join(self.algorithms) or 'none'})"
            )


def _issuer_key(iss: str) -> str:
    return iss.rstrip("/")


class TrustedIssuers:
    """The trusted CDS clients, looked up by the ``iss`` claim (a trailing slash is ignored)."""

    def __init__(self, issuers: Sequence[IssuerConfig]) -> None:
        by_iss: dict[str, IssuerConfig] = {}
        for issuer in issuers:
            key = _issuer_key(issuer.iss)
            if key in by_iss:
                raise ConfigError(f"issuer {issuer.iss!r} is listed twice")
            by_iss[key] = issuer
        self._by_iss = by_iss

    def get(self, iss: str) -> IssuerConfig | None:
        return self._by_iss.get(_issuer_key(iss))

    def __iter__(self) -> Iterator[IssuerConfig]:
        return iter(self._by_iss.values())

    def __len__(self) -> int:
        return len(self._by_iss)

    @classmethod
    def load(cls, path: str | Path, *, schema_path: str | Path | None = None) -> TrustedIssuers:
        """Read and check a trusted-issuers file; any problem raises ``ConfigError``."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read trusted issuers file ({exc.strerror})") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from exc
        return cls.from_dict(data, base_dir=path.parent, source=str(path), schema_path=schema_path)

    @classmethod
    def from_dict(
        cls,
        data: Any,
        *,
        base_dir: Path,
        source: str = "trusted issuers",
        schema_path: str | Path | None = None,
    ) -> TrustedIssuers:
        _validate_schema(data, source, Path(schema_path or DEFAULT_SCHEMA_PATH))
        issuers = [
            _issuer_from_entry(entry, base_dir, f"{source}: issuers[{index}]")
            for index, entry in enumerate(data["issuers"])
        ]
        try:
            return cls(issuers)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from exc


def _validate_schema(data: Any, source: str, schema_path: Path) -> None:
    try:
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the trusted issuers schema {schema_path}: {exc}") from exc
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for error in errors[:10]:
            where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            lines.append(f"  at {where}: {_schema_message(error)}")
        raise ConfigError(f"{source} does not match the schema:\n" + "\n".join(lines))


def _schema_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "pattern":
        return (
            f"{error.instance!r} is not an allowed URL "
            "(https required, http only for localhost / 127.x / [::1])"
        )
    if error.validator == "anyOf" and "jwks_file" in json.dumps(error.schema):
        return "no key source: give one of jwks_file, jwks_url, jwks or a non-empty jku_allowlist"
    if error.validator == "not" and "jwks_file" in json.dumps(error.schema):
        return "give at most one of jwks_file, jwks_url and jwks"
    return error.message


def _check_url(url: str, where: str) -> str:
    parsed = _parse_url(url)
    if parsed is None:
        raise ConfigError(f"{where}: {url!r} is not an absolute http(s) URL we can use")
    if not _transport_ok(parsed):
        raise ConfigError(f"{where}: {url!r} must use https (http only on a loopback host)")
    split = urlsplit(url)
    if split.query or split.fragment:
        raise ConfigError(f"{where}: {url!r} must not carry a query or fragment")
    return url


def _issuer_from_entry(entry: Mapping[str, Any], base_dir: Path, where: str) -> IssuerConfig:
    iss = str(entry["iss"])
    where = f"{where} ({iss})"
    fhir_servers = tuple(
        _check_url(u, f"{where} fhir_servers").rstrip("/") for u in entry["fhir_servers"]
    )
    jku_allowlist = tuple(
        _check_url(u, f"{where} jku_allowlist") for u in entry.get("jku_allowlist", [])
    )
    jwks_url = entry.get("jwks_url")
    if jwks_url is not None:
        _check_url(jwks_url, f"{where} jwks_url")
    keys: dict[str, JWK] = {}
    if "jwks_file" in entry:
        key_path = base_dir / entry["jwks_file"]
        try:
            key_data = json.loads(key_path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(
                f"{where}: cannot read jwks_file {key_path} ({exc.strerror})"
            ) from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: jwks_file {key_path} is not valid JSON") from exc
        keys = parse_jwks(key_data, strict=True, where=f"{where} jwks_file {key_path}")
        if not keys:
            raise ConfigError(f"{where}: jwks_file {key_path} holds no keys")
    elif "jwks" in entry:
        keys = parse_jwks(entry["jwks"], strict=True, where=f"{where} jwks")
        if not keys:
            raise ConfigError(f"{where}: jwks holds no keys")
    subjects = entry.get("subjects")
    return IssuerConfig(
        iss=iss,
        fhir_servers=fhir_servers,
        algorithms=tuple(entry.get("algorithms", DEFAULT_ALGORITHMS)),
        keys=keys,
        jwks_url=jwks_url,
        jku_allowlist=jku_allowlist,
        tenant=entry.get("tenant"),
        subjects=tuple(subjects) if subjects is not None else None,
        shows_coverage_information=bool(entry.get("shows_coverage_information", True)),
    )


def parse_jwks(data: Any, *, strict: bool, where: str = "key set") -> dict[str, JWK]:
    """The usable public signing keys of a JWK Set, by ``kid``.

    A key is usable when it has a ``kid``, is EC or RSA, is not marked for encryption only, holds
    no private or symmetric material and can be loaded. With ``strict`` (our own configuration) a
    key that fails any of these is an error; otherwise (a set fetched from a client) it is skipped.
    """

    def reject(message: str) -> None:
        if strict:
            raise ConfigError(f"{where}: {message}")
        logger.warning("ignoring a key in a fetched key set: %s", message)

    if not isinstance(data, Mapping) or not isinstance(data.get("keys"), list):
        if strict:
            raise ConfigError(f"{where}: not a JWK Set (an object with a 'keys' list)")
        return {}
    keys: dict[str, JWK] = {}
    for index, raw in enumerate(data["keys"]):
        if not isinstance(raw, Mapping):
            reject(f"keys[{index}] is not an object")
            continue
        jwk_data = dict(raw)
        kid = jwk_data.get("kid")
        if not isinstance(kid, str) or not kid:
            reject(f"keys[{index}] has no kid")
            continue
        if jwk_data.get("kty") not in ("EC", "RSA"):
            reject(f"key {kid!r} is not an EC or RSA key")
            continue
        if jwk_data.get("use", "sig") != "sig":
            reject(f"key {kid!r} is not a signing key")
            continue
        if _PRIVATE_MEMBERS & jwk_data.keys():
            reject(f"key {kid!r} holds private key material; publish only public keys")
            continue
        if kid in keys:
            reject(f"kid {kid!r} appears twice")
            continue
        try:
            jwt.PyJWK(jwk_data)
        except jwt.PyJWTError as exc:
            reject(f"key {kid!r} cannot be loaded ({type(exc).__name__})")
            continue
        keys[kid] = jwk_data
    return keys


# --------------------------------------------------------------------------------------------
# Replay protection


class ReplayGuard(Protocol):
    """Remembers each (issuer, jti) until the token expires."""

    def remember(self, issuer: str, jti: str, expires_at: float) -> bool:
        """Record the pair; False when it was already recorded (a replay)."""
        ...


class InMemoryReplayGuard:
    """A ``ReplayGuard`` for tests and a single process (each worker would have its own)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def remember(self, issuer: str, jti: str, expires_at: float) -> bool:
        now = self._clock()
        with self._lock:
            expired = [pair for pair, until in self._seen.items() if until < now]
            for pair in expired:
                del self._seen[pair]
            if (issuer, jti) in self._seen:
                return False
            self._seen[(issuer, jti)] = expires_at
            return True


class JtiStore(Protocol):
    """Where JWT ids are kept (``cds_service.store.AuditStore`` is one)."""

    def remember_jti(self, issuer: str, jti: str, expires_at: datetime) -> bool: ...


class StoreReplayGuard:
    """A ``ReplayGuard`` kept in the shared database, so that a token accepted by one worker
    (or one replica) is refused by every other one while it could still be valid."""

    def __init__(self, store: JtiStore) -> None:
        self._store = store

    def remember(self, issuer: str, jti: str, expires_at: float) -> bool:
        return self._store.remember_jti(issuer, jti, datetime.fromtimestamp(expires_at, UTC))


# --------------------------------------------------------------------------------------------
# Key sets


def fetch_jwks_with_requests(url: str) -> Mapping[str, Any]:
    """Fetch a JWK Set over HTTP: timeouts, no redirects, 200 only, at most 256 KiB."""
    with requests.get(
        url,
        timeout=_FETCH_TIMEOUT,
        allow_redirects=False,
        stream=True,
        headers={"Accept": "application/json, application/jwk-set+json"},
    ) as response:
        if response.status_code != 200:
            raise ValueError(f"key set answered HTTP {response.status_code}")
        body = b""
        for chunk in response.iter_content(chunk_size=16384):
            body += chunk
            if len(body) > _JWKS_MAX_BYTES:
                raise ValueError("key set is too large")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("key set is not a JSON object")
    return cast("dict[str, Any]", data)


@dataclass
class _CachedKeys:
    keys: dict[str, JWK]
    fetched_at: float


class Authenticator:
    """Checks the ``Authorization`` header of a CDS Hooks call; see the module docstring."""

    def __init__(
        self,
        issuers: TrustedIssuers,
        *,
        leeway_seconds: float = 30,
        replay: ReplayGuard,
        fetch_jwks: FetchJwks | None = None,
        clock: Callable[[], float] = time.time,
        key_refresh_min_interval: float = 60,
        key_cache_ttl: float = 3600,
        max_token_lifetime_seconds: float | None = 3600,
    ) -> None:
        self._issuers = issuers
        self._leeway = leeway_seconds
        self._replay = replay
        self._fetch = fetch_jwks or fetch_jwks_with_requests
        self._clock = clock
        self._refresh_interval = key_refresh_min_interval
        self._cache_ttl = key_cache_ttl
        self._max_lifetime = max_token_lifetime_seconds
        self._cache: dict[str, _CachedKeys] = {}
        self._failed_at: dict[str, float] = {}
        self._refreshed_at: dict[str, float] = {}
        self._lock = threading.Lock()

    # -- the check ---------------------------------------------------------------------------

    def authenticate(self, authorization_header: str | None, audience: str) -> Principal:
        token = _bearer_token(authorization_header)
        header, unverified = _peek(token)

        iss = unverified.get("iss")
        if not isinstance(iss, str) or not iss:
            raise AuthError("token has no iss claim")
        issuer = self._issuers.get(iss)
        if issuer is None:
            raise AuthError(f"issuer {_safe(iss)} is not trusted")

        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in issuer.algorithms:
            raise AuthError(f"algorithm {_safe(alg)} is not accepted from {issuer.iss}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("token header has no kid")
        jku = header.get("jku")
        if jku is not None and (not isinstance(jku, str) or jku not in issuer.jku_allowlist):
            raise AuthError(f"jku {_safe(jku)} is not on the allowlist of {issuer.iss}")

        key = self._find_key(issuer, kid, jku)
        claims = _verify_signature(token, key, alg, kid)
        return self._check_claims(claims, issuer, audience)

    def _check_claims(
        self, claims: Mapping[str, Any], issuer: IssuerConfig, audience: str
    ) -> Principal:
        iss = claims.get("iss")
        if not isinstance(iss, str) or _issuer_key(iss) != _issuer_key(issuer.iss):
            raise AuthError("token iss does not match the issuer whose key verified it")
        now = self._clock()
        leeway = self._leeway

        exp = _number_claim(claims, "exp")
        iat = _number_claim(claims, "iat")
        if now > exp + leeway:
            raise AuthError("token expired")
        if iat > now + leeway:
            raise AuthError("token iat is in the future")
        if "nbf" in claims and _number_claim(claims, "nbf") > now + leeway:
            raise AuthError("token is not valid yet (nbf)")
        if exp <= iat:
            raise AuthError("token exp is not after iat")
        if self._max_lifetime is not None and exp - iat > self._max_lifetime:
            raise AuthError("token lifetime (exp - iat) is longer than allowed")

        if not _audience_matches(claims.get("aud"), audience):
            raise AuthError("token aud does not match the called URL")

        tenant = claims.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise AuthError("token tenant is not a string")
        if issuer.tenant is not None and tenant != issuer.tenant:
            raise AuthError(f"token tenant does not match the tenant configured for {issuer.iss}")

        sub = claims.get("sub")
        if sub is not None and not isinstance(sub, str):
            raise AuthError("token sub is not a string")
        if issuer.subjects is not None and sub not in issuer.subjects:
            raise AuthError(f"token sub is not allowed for {issuer.iss}")

        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise AuthError("token has no jti")
        if len(jti) > MAX_JTI_LENGTH:  # the replay record keeps at most this many characters
            raise AuthError("token jti is too long")
        if not self._replay.remember(issuer.iss, jti, exp + leeway):
            raise AuthError(f"token jti was already used (replay) for {issuer.iss}")

        return Principal(
            iss=issuer.iss,
            sub=sub,
            jti=jti,
            tenant=tenant,
            fhir_servers=issuer.fhir_servers,
            shows_coverage_information=issuer.shows_coverage_information,
        )

    # -- keys --------------------------------------------------------------------------------

    def _find_key(self, issuer: IssuerConfig, kid: str, jku: str | None) -> JWK:
        if kid in issuer.keys:
            return issuer.keys[kid]
        remote = list(dict.fromkeys(u for u in (issuer.jwks_url, jku) if u is not None))
        if not remote:
            raise AuthError(f"unknown kid {_safe(kid)} for {issuer.iss}")
        with self._lock:
            now = self._clock()
            found: dict[str, dict[str, JWK] | None] = {}
            for url in remote:
                found[url] = self._cached_or_fetched(url, now)
                keys = found[url]
                if keys is not None and kid in keys:
                    return keys[kid]
            # Not found: the client may have rotated its keys. Refetch, but not too often.
            last = self._refreshed_at.get(issuer.iss)
            if last is None or now - last >= self._refresh_interval:
                self._refreshed_at[issuer.iss] = now
                for url in remote:
                    keys = self._fetch_into_cache(url, now)
                    if keys is not None:
                        found[url] = keys
                        if kid in keys:
                            return keys[kid]
        if all(keys is None for keys in found.values()):
            raise AuthError(f"key set of {issuer.iss} could not be fetched")
        raise AuthError(f"unknown kid {_safe(kid)} for {issuer.iss}")

    def _cached_or_fetched(self, url: str, now: float) -> dict[str, JWK] | None:
        cached = self._cache.get(url)
        if cached is not None and now - cached.fetched_at < self._cache_ttl:
            return cached.keys
        failed = self._failed_at.get(url)
        if failed is not None and now - failed < self._refresh_interval:
            return cached.keys if cached is not None else None
        fresh = self._fetch_into_cache(url, now)
        if fresh is None and cached is not None:
            return cached.keys  # keep using the keys we had while the client's server is down
        return fresh

    def _fetch_into_cache(self, url: str, now: float) -> dict[str, JWK] | None:
        try:
            data = self._fetch(url)
        except Exception as exc:
            self._failed_at[url] = now
            logger.warning("could not fetch key set %s: %s", url, type(exc).__name__)
            return None
        keys = parse_jwks(data, strict=False, where=url)
        self._cache[url] = _CachedKeys(keys=keys, fetched_at=now)
        self._failed_at.pop(url, None)
        return keys


# --------------------------------------------------------------------------------------------
# Helpers (pure)


_BEARER = re.compile(r"^Bearer +(\S+) *$", re.IGNORECASE)


def _bearer_token(header: str | None) -> str:
    if header is None or not header.strip():
        raise AuthError("no Authorization header")
    match = _BEARER.match(header.strip())
    if match is None:
        scheme = header.strip().split(" ", 1)[0]
        if scheme.lower() == "bearer":
            raise AuthError("Bearer token is empty or malformed")
        raise AuthError(f"Authorization scheme {_safe(scheme[:20])} is not Bearer")
    return match.group(1)


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload, unverified: used only to choose the key set."""
    try:
        header = jwt.get_unverified_header(token)
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise AuthError("token is not a well-formed JWT") from None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        raise AuthError("token is not a well-formed JWT")
    return header, payload


def _verify_signature(token: str, jwk_data: JWK, alg: str, kid: str) -> dict[str, Any]:
    shape = _KEY_SHAPE.get(alg)
    if shape is None:  # unreachable with a validated IssuerConfig; never verify with HS*/none
        raise AuthError(f"algorithm {_safe(alg)} is not supported")
    kty, crv = shape
    if jwk_data.get("kty") != kty or (crv is not None and jwk_data.get("crv") != crv):
        raise AuthError(f"key {_safe(kid)} does not fit algorithm {alg}")
    if "alg" in jwk_data and jwk_data["alg"] != alg:
        raise AuthError(f"key {_safe(kid)} is for {_safe(jwk_data['alg'])}, token uses {alg}")
    try:
        key = jwt.PyJWK(jwk_data, algorithm=alg)
        claims = jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
                "enforce_minimum_key_length": True,
            },
        )
    except jwt.InvalidSignatureError:
        raise AuthError("token signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise AuthError(f"token rejected ({type(exc).__name__})") from None
    return claims


def _number_claim(claims: Mapping[str, Any], name: str) -> float:
    value = claims.get(name)
    if value is None:
        raise AuthError(f"token has no {name} claim")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthError(f"token {name} claim is not a number")
    return float(value)


def _audience_matches(aud: Any, called_url: str) -> bool:
    wanted = normalise_url(called_url)
    if isinstance(aud, str):
        candidates = [aud]
    elif isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        candidates = aud
    else:
        return False
    return any(normalise_url(a) == wanted for a in candidates)


def _safe(value: Any) -> str:
    """A short, printable rendering of an attacker-controlled value for a log line."""
    text = value if isinstance(value, str) else repr(value)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return repr(text[:80] + ("..." if len(text) > 80 else ""))
