"""Service settings: typed, read once from `CDS_*` environment variables.

`load_settings(os.environ)` is what the server uses; tests pass a mapping of the same
names (`{"CDS_AUTH": "disabled", ...}`) to `create_app`, whose values may already be
typed (a float for a timeout, a tuple for a list).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from cds_service.auth import ConfigError, TrustedIssuers, is_loopback_host
from cds_service.resources import default_hooks_dir, trusted_issuers_schema

ENV_PREFIX = "CDS_"

AuthMode = Literal["enabled", "disabled"]


class SettingsError(ValueError):
    """A setting has a value the service cannot use; the message names it."""


PACKAGED_PACKS_DIR: Final = Path(__file__).resolve().parent / "packs"
"""The policy packs shipped with the service."""


def _default_hooks_dir() -> Path:
    """The hook files installed with the package, else `hooks/` beside the package in a
    source checkout, else `./hooks` (`cds_service.resources`)."""
    return default_hooks_dir()


def _default_database_url() -> str:
    return "sqlite:///" + str(Path.cwd() / "var" / "cds.sqlite")


@dataclass(frozen=True)
class Settings:
    """Every tunable of the service. Field `x` is read from `CDS_X`."""

    fhir_connect_timeout: float = 2.0
    """Seconds to open a connection to the client's FHIR server."""
    fhir_read_timeout: float = 3.0
    """Seconds to wait between bytes from the client's FHIR server."""
    request_deadline: float = 4.0
    """Seconds one CDS Hooks call may spend, counted from its arrival: reads from the FHIR
    server stop by then (cut mid-answer), and data that arrives later is not evaluated."""
    replay_fallback_seconds: float = 300.0
    """With authentication on, seconds a worker keeps answering while the database that
    records token ids cannot be reached, checking replays in its own memory only; then
    (and at once with 0) calls are refused 503 until the database answers."""
    call_deadline: float = 10.0
    """Seconds one CDS Hooks call may take from its arrival to its answer, processing
    included: fetching stops by then at the latest, and orders not decided when it passes
    get a could-not-check card ("could not be completed in time")."""
    max_next_pages: int = 5
    """Bundle `next` links followed per prefetch key."""
    max_fhir_queries: int = 30
    """FHIR HTTP requests allowed for one CDS Hooks call (pages included)."""
    max_concurrent_queries: int = 16
    """FHIR HTTP requests of one call that run at the same time."""
    max_fhir_response_bytes: int = 10 * 1024 * 1024
    """Largest FHIR response body read; a larger one counts as a failed fetch."""
    max_body_bytes: int = 5 * 1024 * 1024
    """Largest request body accepted, on the service and feedback endpoints (413 beyond)."""
    max_json_depth: int = 64
    """Deepest nesting of arrays and objects accepted in a request body (400 beyond)."""
    max_draft_orders: int = 100
    """Most entries accepted in `context.draftOrders` (400 `too-many-draft-orders` beyond)."""
    public_base_url: str = ""
    """The service's own external base URL (JWT audience, links); empty: from the request."""
    database_url: str = ""
    """Audit and feedback store. Empty means `sqlite:///<cwd>/var/cds.sqlite`."""
    database_connect_timeout: float = 3.0
    """Seconds to connect to the database (or wait for a pooled connection)."""
    database_timeout: float = 5.0
    """Seconds one database operation may take (PostgreSQL `statement_timeout`, SQLite
    busy timeout, and a client-side limit that ends a hung connection)."""
    audit_queue_size: int = 10000
    """Audit records a worker keeps queued while the database cannot be written; beyond
    that a call's record is dropped (counted and logged)."""
    audit_shutdown_timeout: float = 10.0
    """Seconds a stopping worker waits to write its queued audit records."""
    max_fhir_call_bytes: int = 10 * 1024 * 1024
    """Most bytes read from the FHIR server for one call, all its answers together; a
    fetch that would go beyond counts as failed (`too-costly`)."""
    cors_origins: tuple[str, ...] = ("*",)
    auth: AuthMode = "enabled"
    """`enabled`: every call (discovery, service, feedback) must carry a JWT from a trusted
    issuer; `disabled`: local testing only (announced loudly at start)."""
    trusted_issuers: Path = Path()
    """JSON file of the trusted CDS clients (`hooks/schemas/trusted-issuers.schema.json`):
    their keys and the FHIR servers each may make us read. Required when auth is enabled."""
    auth_clock_skew: float = 30.0
    """Seconds of clock difference allowed when checking a token's `exp` / `iat` / `nbf`."""
    auth_max_token_lifetime: float = 3600.0
    """Longest `exp - iat` accepted, in seconds (bounds how long a jti is remembered)."""
    jwks_refresh_interval: float = 60.0
    """Least seconds between two refetches of an issuer's key sets for an unknown `kid`."""
    jwks_cache_ttl: float = 3600.0
    """Seconds a fetched key set is used before it is fetched again."""
    fhir_servers: tuple[str, ...] = ()
    """With auth disabled only: FHIR base URLs the service may read from. Empty: loopback
    hosts only. With auth enabled, each trusted issuer's `fhir_servers` decide instead."""
    hooks_dir: Path = Path()
    """Folder holding `services/`, `schemas/` and `examples/`. Empty: the default."""
    policy_packs_dir: Path = Path()
    """Folder of policy packs (one subfolder per pack, each with a `pack.json`). Empty:
    the packs packaged with the service (`cds_service/packs/`)."""
    log_level: str = "INFO"
    plan_name: str = "Example Health Plan"
    """The plan's name, shown on every card's source label."""
    policy_url: str = ""
    """Where the plan publishes the policy (a link on the cards); empty: no link."""
    documentation_form_url: str = ""
    """A web form for sending missing documentation (a link on documentation cards)."""
    smart_app_url: str = ""
    """A SMART app for sending missing documentation; preferred over the form when set."""
    payer_file: Path = Path()
    """JSON file of the payer coverage information is given for
    (`cds_service/crd/payer.schema.json`); empty: the packaged demo payer (announced)."""
    header_timeout: int = 5
    """Seconds a client has to send a request's line and headers (and an idle keep-alive
    connection is kept); the connection is closed after that."""
    body_timeout: float = 10.0
    """Seconds a client has to send a request's whole body once the service reads it
    (408 and the connection closed after that)."""
    max_connections: int = 1000
    """Open client connections per worker process; more wait in the listen queue."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses of the front proxies whose `X-Forwarded-*` headers are believed (`*`:
    any). Empty: none, the headers are ignored."""
    ready_timeout: float = 1.0
    """Seconds `/health/ready` waits for the audit database to answer."""
    reports_token: str = ""
    """Secret that opens the operator's report page `GET /reports/overrides` (HTTP Basic
    password or Bearer); empty: the page is off (404)."""
    client_shows_coverage_information: bool = True
    """With authentication off only (with it on, each trusted issuer's
    `shows_coverage_information` decides): false when the calling clients do not show the
    CRD coverage-information system action (the official CDS Hooks sandbox): an order that
    meets the criteria then also gets its short criteria-met card, never no card at all."""
    sandbox_fhir_url: str = ""
    """The test FHIR server of synthetic patients (`sandbox/fhir_sandbox.py`): the form view
    (`GET /forms/<pack id>?patient=<id>`, `CDS_REPORTS_TOKEN`) shows the prefilled form for its
    patients only; empty: no patient is shown. Never a server with real patients."""
    prefetch: str = "full"
    """What discovery asks EHRs to prefetch (`cds_service/crd/prefetch_choice.py`): `full`
    (every template; works without FHIR server access) or `minimal` (patient and coverage;
    the rest is queried from the EHR's FHIR server for orders of a policy drug only)."""

    def __post_init__(self) -> None:
        if not self.database_url:
            object.__setattr__(self, "database_url", _default_database_url())
        if self.hooks_dir == Path():
            object.__setattr__(self, "hooks_dir", _default_hooks_dir())
        if self.policy_packs_dir == Path():
            object.__setattr__(self, "policy_packs_dir", PACKAGED_PACKS_DIR)
        for name in (
            "fhir_connect_timeout",
            "fhir_read_timeout",
            "request_deadline",
            "call_deadline",
            "database_connect_timeout",
            "database_timeout",
            "audit_shutdown_timeout",
            "auth_max_token_lifetime",
            "jwks_cache_ttl",
            "body_timeout",
            "ready_timeout",
        ):
            if not getattr(self, name) > 0:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be greater than 0")
        for name in (
            "max_fhir_queries",
            "max_concurrent_queries",
            "max_fhir_response_bytes",
            "max_body_bytes",
            "max_json_depth",
            "max_draft_orders",
            "header_timeout",
            "max_connections",
            "audit_queue_size",
            "max_fhir_call_bytes",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be at least 1")
        for name in (
            "max_next_pages",
            "auth_clock_skew",
            "jwks_refresh_interval",
            "replay_fallback_seconds",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"{ENV_PREFIX}{name.upper()} must not be negative")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise SettingsError(
                f"{ENV_PREFIX}LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL"
            )
        if self.auth not in ("enabled", "disabled"):
            raise SettingsError(f"{ENV_PREFIX}AUTH must be 'enabled' or 'disabled'")
        for server in self.fhir_servers:
            parts = urlsplit(server)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SettingsError(
                    f"{ENV_PREFIX}FHIR_SERVERS entries must be http(s) base URLs, got {server!r}"
                )
            if parts.scheme == "http" and not is_loopback_host(parts.hostname):
                raise SettingsError(
                    f"{ENV_PREFIX}FHIR_SERVERS entries must use https (http only on a loopback "
                    f"host), got {server!r}"
                )
        if self.sandbox_fhir_url:
            parts = urlsplit(self.sandbox_fhir_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise SettingsError(f"{ENV_PREFIX}SANDBOX_FHIR_URL must be an http(s) URL")
        if self.prefetch not in ("full", "minimal"):
            raise SettingsError(f"{ENV_PREFIX}PREFETCH must be 'full' or 'minimal'")
        for name in ("public_base_url", "policy_url", "documentation_form_url", "smart_app_url"):
            value = getattr(self, name)
            if value:
                parts = urlsplit(value)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise SettingsError(f"{ENV_PREFIX}{name.upper()} must be an http(s) URL")


_BOOLEANS: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _convert(name: str, kind: str, raw: Any) -> Any:
    """`raw` (a string from the environment, or an already typed test value) as `kind`."""
    env_name = ENV_PREFIX + name.upper()
    try:
        if kind == "float":
            return float(raw)
        if kind == "int":
            if isinstance(raw, bool):
                raise ValueError(raw)
            return int(raw)
        if kind == "tuple[str, ...]":
            if isinstance(raw, str):
                return tuple(item.strip() for item in raw.split(",") if item.strip())
            return tuple(str(item) for item in raw)
        if kind == "Path":
            return Path(raw) if str(raw) else Path()
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            flag = str(raw).strip().lower()
            if flag not in _BOOLEANS:
                raise ValueError(raw)
            return _BOOLEANS[flag]
        if kind == "AuthMode":
            value = str(raw).strip().lower()
            aliases = {"true": "enabled", "1": "enabled", "false": "disabled", "0": "disabled"}
            return aliases.get(value, value)
        return str(raw).strip()
    except (TypeError, ValueError) as exc:
        expected = {"float": "a number", "int": "a whole number", "bool": "true or false"}.get(
            kind, "a valid value"
        )
        raise SettingsError(f"{env_name} has an invalid value: set it to {expected}") from exc


def load_settings(source: Mapping[str, Any]) -> Settings:
    """Settings from a mapping of `CDS_*` names (the environment, or test overrides).

    Unknown `CDS_*` names are ignored so that other parts of the product may add their
    own; a value that cannot be converted raises `SettingsError` naming the variable.
    """
    values: dict[str, Any] = {}
    for spec in fields(Settings):
        env_name = ENV_PREFIX + spec.name.upper()
        if env_name in source and source[env_name] is not None:
            values[spec.name] = _convert(spec.name, str(spec.type), source[env_name])
    return Settings(**values)


AUTH_MISSING_ISSUERS = (
    f"{ENV_PREFIX}AUTH is enabled but {ENV_PREFIX}TRUSTED_ISSUERS is not set: point it at a "
    "trusted-issuers JSON file (see hooks/trusted-issuers.example.json) listing the CDS "
    f"clients allowed to call this service, or set {ENV_PREFIX}AUTH=disabled for local "
    "testing only"
)


def load_trusted_issuers(settings: Settings) -> TrustedIssuers | None:
    """The trusted issuers of `settings`, read and validated; None with auth disabled.

    Raises `SettingsError` when auth is enabled and no file is configured, or when the
    file (or a key file it names) is unusable: the service must not start then.
    """
    if settings.auth == "disabled":
        return None
    if settings.trusted_issuers == Path():
        raise SettingsError(AUTH_MISSING_ISSUERS)
    try:
        return TrustedIssuers.load(
            settings.trusted_issuers, schema_path=trusted_issuers_schema(settings.hooks_dir)
        )
    except ConfigError as exc:
        raise SettingsError(
            f"{ENV_PREFIX}TRUSTED_ISSUERS: {exc} (fix the file, or point "
            f"{ENV_PREFIX}TRUSTED_ISSUERS at one like hooks/trusted-issuers.example.json)"
        ) from exc


def auth_warning(settings: Settings) -> str | None:
    """The line to announce at start when authentication is off; None when it is on."""
    if settings.auth != "disabled":
        return None
    return (
        f"WARNING: {ENV_PREFIX}AUTH=disabled: any caller can use this service and no token "
        "is checked. For local testing only; never expose this server to a network."
    )


PUBLIC_BASE_URL_MISSING = (
    f"{ENV_PREFIX}AUTH is enabled but {ENV_PREFIX}PUBLIC_BASE_URL is not set: set it to this "
    "service's external base URL (e.g. https://cds.example.org), the URL callers' tokens "
    "name as their audience"
)


def require_public_base_url(settings: Settings) -> None:
    """With auth on, token audiences are checked against `CDS_PUBLIC_BASE_URL` alone, never
    against the Host or `X-Forwarded-*` headers a caller sends: without it the service
    does not start (`SettingsError`)."""
    if settings.auth != "disabled" and not settings.public_base_url:
        raise SettingsError(PUBLIC_BASE_URL_MISSING)


COVERAGE_SHOWN_WITH_AUTH = (
    f"{ENV_PREFIX}CLIENT_SHOWS_COVERAGE_INFORMATION=false is for authentication off only: "
    f"with {ENV_PREFIX}AUTH enabled each client is known by its token, so set "
    '"shows_coverage_information": false on that client\'s entry in the trusted-issuers '
    f"file ({ENV_PREFIX}TRUSTED_ISSUERS) and unset {ENV_PREFIX}CLIENT_SHOWS_COVERAGE_INFORMATION"
)


def require_client_setting_fits_auth(settings: Settings) -> None:
    """The service-wide "clients do not show coverage information" setting applies with
    authentication off only; with it on it would be silently ignored, so the service does
    not start (`SettingsError` naming the per-client field to use instead)."""
    if settings.auth != "disabled" and not settings.client_shows_coverage_information:
        raise SettingsError(COVERAGE_SHOWN_WITH_AUTH)


def one_line(message: str) -> str:
    """`message` on one line: a start-up refusal is read in a terminal or a log, whole."""
    return "; ".join(part.strip() for part in message.splitlines() if part.strip()).replace(
        ":; ", ": "
    )


def _database_place(url: str) -> str:
    """Where `url` points, never its password: a SQLite file or `host:port/database`."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {parsed.database}" if parsed.database else "in-memory SQLite"
    host = parsed.host or "localhost"
    return f"PostgreSQL at {host}:{parsed.port or 5432}/{parsed.database or ''}"


def _driver_reason(exc: BaseException) -> str:
    """The database driver's own reason, on one line and short (it names no password)."""
    origin = getattr(exc, "orig", None) or exc
    text = one_line(str(origin)) or type(origin).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def check_database(settings: Settings) -> str:
    """Open the audit database as the service will (SQLite: its folder and file are created;
    PostgreSQL: connected within `CDS_DATABASE_CONNECT_TIMEOUT`) and create or migrate its
    tables. Returns where it is; raises `SettingsError` naming `CDS_DATABASE_URL` and the
    fix when it cannot be used."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from cds_service.store import AuditStore

    name = f"{ENV_PREFIX}DATABASE_URL"
    try:
        backend = make_url(settings.database_url).get_backend_name()
    except ArgumentError as exc:
        raise SettingsError(
            f"{name} is not a database URL: use sqlite:///path/to/cds.sqlite or "
            "postgresql+psycopg://user@host:5432/database"
        ) from exc
    if backend not in ("sqlite", "postgresql"):
        raise SettingsError(
            f"{name} names a {backend} database: use sqlite:///path/to/cds.sqlite or "
            "postgresql+psycopg://user@host:5432/database"
        )
    place = _database_place(settings.database_url)
    try:
        store = AuditStore(
            settings.database_url,
            connect_timeout=settings.database_connect_timeout,
            timeout=settings.database_timeout,
        )
    except OSError as exc:
        raise SettingsError(
            f"{name}: cannot create the folder of the {place} ({exc.strerror}): create it, "
            f"or point {name} at a writable place"
        ) from exc
    except ImportError as exc:
        raise SettingsError(
            f"{name} names PostgreSQL but its driver is not installed: install the service "
            "with its postgres extra (psycopg)"
        ) from exc
    try:
        store.create_schema()
    except SQLAlchemyError as exc:
        if backend == "sqlite":
            fix = f"make sure the file can be created and written, or point {name} elsewhere"
        else:
            fix = (
                "check that the server runs and that the URL's host, port, user, password "
                f"and database are right (connect timeout {settings.database_connect_timeout:g} "
                f"s: {ENV_PREFIX}DATABASE_CONNECT_TIMEOUT)"
            )
        raise SettingsError(
            f"{name}: cannot use the {place} ({_driver_reason(exc)}): {fix}"
        ) from exc
    except RuntimeError as exc:  # a database written by a newer version of the service
        raise SettingsError(f"{name}: {place}: {exc}: upgrade the service") from exc
    finally:
        store.dispose()
    return place


def validate_startup(settings: Settings, *, database: bool = True) -> TrustedIssuers | None:
    """Everything `cds-service serve` needs of its settings before it starts, and what
    `cds-service check` checks (the same function, the same defaults): the trusted issuers
    with authentication on, the public base URL with it on, the payer file and the audit
    database. Raises `SettingsError` with one line naming the setting and the fix."""
    from cds_service.crd.payer import PayerFileError, load_payer

    try:
        if settings.auth == "disabled" and settings.trusted_issuers != Path():
            raise SettingsError(
                f"{ENV_PREFIX}TRUSTED_ISSUERS is set but {ENV_PREFIX}AUTH=disabled turns "
                f"authentication off: unset {ENV_PREFIX}AUTH (or set it to enabled) to check "
                f"tokens, or unset {ENV_PREFIX}TRUSTED_ISSUERS"
            )
        require_client_setting_fits_auth(settings)
        issuers = load_trusted_issuers(settings)
        require_public_base_url(settings)
        try:
            load_payer(None if settings.payer_file == Path() else settings.payer_file)
        except PayerFileError as exc:
            raise SettingsError(f"{ENV_PREFIX}PAYER_FILE: {exc}") from exc
        if database:
            check_database(settings)
    except SettingsError as exc:
        raise SettingsError(one_line(str(exc))) from exc
    return issuers
