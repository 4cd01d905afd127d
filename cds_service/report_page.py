"""`GET /reports/overrides`: the operator's report page (`cds_service.reports`), HTML.

Protected by its own secret, `CDS_REPORTS_TOKEN`, not by the CDS clients' JWTs (a browser
cannot sign those): unset, the page does not exist (404); set, a request must carry it as
HTTP Basic password (any user name: the browser asks for it) or as `Authorization: Bearer`,
else 401. The page shows counts only, never patient data. `?since=YYYY-MM-DD&until=...`
choose the period (default: the last 30 days).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import UTC, date, datetime

from flask import Blueprint, Response, current_app, request

from cds_service.reports import build_report, default_period, render_html
from cds_service.store import AuditStore

report_blueprint = Blueprint("cds_reports", __name__)

REALM = 'Basic realm="cds-service reports", charset="UTF-8"'


def presented_secret(authorization: str | None) -> str | None:
    """The secret of a Basic (its password) or Bearer Authorization header."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


def allowed(expected: str, authorization: str | None) -> bool:
    given = presented_secret(authorization)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def _day(name: str, fallback: date) -> date:
    raw = request.args.get(name)
    return date.fromisoformat(raw) if raw else fallback


def _page(body: str, status: int, **headers: str) -> Response:
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.update(headers)
    return response


@report_blueprint.get("/reports/overrides")
def overrides_page() -> Response:
    token = current_app.config.get("CDS_REPORTS_TOKEN") or ""
    if not token:
        return _page("<p>Not found</p>", 404)
    if not allowed(token, request.headers.get("Authorization")):
        return _page("<p>Authentication required</p>", 401, **{"WWW-Authenticate": REALM})
    since, until = default_period(datetime.now(UTC).date())
    try:
        since, until = _day("since", since), _day("until", until)
    except ValueError:
        return _page("<p>since and until must be YYYY-MM-DD dates</p>", 400)
    if since > until or (until - since).days > 366:
        return _page("<p>the period must run forward and span at most 367 days</p>", 400)
    store = current_app.extensions.get("audit_store")
    if not isinstance(store, AuditStore):
        return _page("<p>The audit store is not available</p>", 503)
    return _page(render_html(build_report(store, since, until)), 200)
