"""CDS Hooks service for health plan drug policies, each a policy pack (`cds_service/packs/`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("cds_service")

_STATE_OVERRIDES = {
    "CLOCK": "clock",
    "UUID_FACTORY": "uuid_factory",
    "MONOTONIC": "monotonic",
    "FHIR_CLIENT_FACTORY": "fhir_client_factory",
    "AUTHENTICATOR": "authenticator",
    "ORDER_FILTER": "order_filter",
}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """The Flask application.

    Without `config`, settings come from the `CDS_*` environment variables. With it
    (tests), from the mapping alone: `CDS_*` names for settings, and `CLOCK` (returns an
    aware datetime), `UUID_FACTORY`, `MONOTONIC`, `FHIR_CLIENT_FACTORY`, `AUTHENTICATOR`,
    `ORDER_FILTER` to pin what is otherwise real; other upper-case keys go to
    `app.config` (e.g. `TESTING`).

    Authentication: with `CDS_AUTH=enabled` (the default) one `cds_service.auth.
    Authenticator` per process checks every call, with the issuers of
    `CDS_TRUSTED_ISSUERS` and a replay record kept in the audit store (shared by every
    worker); `AUTHENTICATOR` replaces it (tests). `CDS_AUTH=disabled` is logged as a
    warning.

    Policy packs are read from `CDS_POLICY_PACKS_DIR` (default: the packaged ones) and
    validated; a bad pack raises `cds_service.policy.definition.PolicyFileError` naming
    the file, the place in it and the problem.

    Raises `cds_service.hooks.HookFileError` when the hook files are invalid and
    `cds_service.config.SettingsError` when a setting is (including a missing or bad
    trusted-issuers file with auth enabled): the service does not start.
    """
    # Imported here so that `import cds_service.<module>` stays light and free of cycles.
    from flask import Flask, request
    from flask_cors import CORS

    from cds_service import errors, request_id
    from cds_service.api import EXTENSION_KEY, ServiceState, bp
    from cds_service.audit_writer import AuditWriter
    from cds_service.auth import Authenticator, StoreReplayGuard
    from cds_service.config import (
        SettingsError,
        auth_warning,
        load_settings,
        load_trusted_issuers,
        require_client_setting_fits_auth,
        require_public_base_url,
    )
    from cds_service.crd import prefetch_choice
    from cds_service.crd.payer import PayerFileError, load_payer, startup_line
    from cds_service.dtr.api import dtr_blueprint
    from cds_service.feedback import feedback_blueprint
    from cds_service.form_page import forms_blueprint
    from cds_service.health import HEALTH_KEY, DatabaseProbe, health_blueprint
    from cds_service.hooks import for_packs, load_catalog
    from cds_service.http_guard import refuse_early
    from cds_service.pipeline import build_engine, plan_card_settings
    from cds_service.policy.packs import default_registry
    from cds_service.replay_fallback import REPLAY_GUARD_KEY, FallbackReplayGuard
    from cds_service.report_page import report_blueprint
    from cds_service.store import AuditStore

    source: Mapping[str, Any] = config if config is not None else os.environ
    settings = load_settings(source)
    require_client_setting_fits_auth(settings)
    overrides = dict(config or {})
    injected_authenticator = overrides.get("AUTHENTICATOR")
    issuers = None if injected_authenticator is not None else load_trusted_issuers(settings)
    if issuers is not None:
        require_public_base_url(settings)  # the token audience never comes from the request
    registry = default_registry(settings.policy_packs_dir)  # validated: a bad pack stops start-up
    catalog = for_packs(load_catalog(settings.hooks_dir), registry)  # discovery names the packs
    catalog = prefetch_choice.for_mode(catalog, settings.prefetch)  # CDS_PREFETCH
    try:
        payer = load_payer(None if settings.payer_file == Path() else settings.payer_file)
    except PayerFileError as exc:
        raise SettingsError(f"CDS_PAYER_FILE: {exc}") from exc
    engine = build_engine(
        registry,
        lambda pack: plan_card_settings(
            pack,
            plan_name=settings.plan_name,
            policy_url=settings.policy_url or None,
            documentation_form_url=settings.documentation_form_url or None,
            smart_app_url=settings.smart_app_url or None,
        ),
        payer,
    )
    clock: Callable[[], datetime] = overrides.get("CLOCK") or (lambda: datetime.now(UTC))
    store = AuditStore(
        settings.database_url,
        clock=clock,
        connect_timeout=settings.database_connect_timeout,
        timeout=settings.database_timeout,
    )
    store.create_schema()
    store.release_connections()  # none of this process's connections go to forked workers
    audit_writer = AuditWriter(
        store.record_invocations,
        capacity=settings.audit_queue_size,
        shutdown_timeout=settings.audit_shutdown_timeout,
    )

    app = Flask(__name__)
    request_id.install(app)  # first of all: every log line of a request names it
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    state_kwargs: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in _STATE_OVERRIDES:
            state_kwargs[_STATE_OVERRIDES[key]] = value
        elif key.isupper() and not key.startswith("CDS_"):
            app.config[key] = value
    replay_guard = None
    if issuers is not None:
        # The database keeps token ids; while it cannot be reached, see replay_fallback.
        replay_guard = FallbackReplayGuard(
            StoreReplayGuard(store),
            window_seconds=settings.replay_fallback_seconds,
            wall_clock=lambda: clock().timestamp(),
        )
        state_kwargs["authenticator"] = Authenticator(
            issuers,
            leeway_seconds=settings.auth_clock_skew,
            replay=replay_guard,
            clock=lambda: clock().timestamp(),
            key_refresh_min_interval=settings.jwks_refresh_interval,
            key_cache_ttl=settings.jwks_cache_ttl,
            max_token_lifetime_seconds=settings.auth_max_token_lifetime,
        )
    app.extensions[EXTENSION_KEY] = ServiceState(
        settings=settings,
        catalog=catalog,
        engine=engine,
        store=store,
        audit_writer=audit_writer,
        **state_kwargs,
    )
    app.extensions["audit_store"] = store
    app.extensions[HEALTH_KEY] = DatabaseProbe(store.engine, settings.ready_timeout)
    app.extensions["audit_writer"] = audit_writer  # see cds_service.audit_writer.audit_status
    app.extensions[REPLAY_GUARD_KEY] = replay_guard  # see cds_service.replay_fallback
    app.config["CDS_SERVICE_IDS"] = catalog.ids  # aliases take feedback too
    app.config["CDS_HOOKS_DIR"] = str(settings.hooks_dir)

    warning = auth_warning(settings)
    if warning is not None:
        log.warning(warning, extra={"event": "auth-disabled"})
    elif not settings.public_base_url:
        log.warning(
            "CDS_PUBLIC_BASE_URL is not set: token audiences are checked against the URL "
            "as received (its Host header); set it to this service's public base URL",
            extra={"event": "public-base-url-unset"},
        )
    if payer.source == "demo":
        log.warning(startup_line(payer), extra={"event": "payer-demo"})
    else:
        log.info(startup_line(payer), extra={"event": "payer"})
    # Libraries below must not log request URLs (they carry patient ids) or headers.
    logging.getLogger("urllib3").setLevel(logging.WARNING)

    errors.register(app)
    # First of all: refuse from the headers alone what cannot be a valid call (before
    # authentication, before a byte of the body is read).
    app.before_request(lambda: refuse_early(request.environ, settings.max_body_bytes))
    app.register_blueprint(bp)
    app.register_blueprint(feedback_blueprint)
    app.register_blueprint(health_blueprint)
    app.register_blueprint(dtr_blueprint)  # /fhir: documentation templates (Da Vinci DTR)
    app.register_blueprint(report_blueprint)  # GET /reports/overrides (CDS_REPORTS_TOKEN)
    app.register_blueprint(forms_blueprint)  # GET /forms/<pack id> (patients: CDS_REPORTS_TOKEN)
    app.config["CDS_REPORTS_TOKEN"] = settings.reports_token
    CORS(
        app,
        resources={r"/cds-services": {}, r"/cds-services/*": {}, r"/policies/*": {}},
        origins=list(settings.cors_origins),
        allow_headers=["Authorization", "Content-Type"],
        methods=["GET", "POST", "OPTIONS"],
        max_age=600,
    )
    return app


__all__ = ["create_app"]
