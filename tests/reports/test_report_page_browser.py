"""The operator's report page in a real headless Chromium (Debian's /usr/bin/chromium, driven
by Playwright for Python): the service runs in a thread (werkzeug), calls and feedback go
through its HTTP API, and the browser shows the counts and the plot, with no patient data."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from cds_service import create_app
from tests.chromium import CHROMIUM, launched
from tests.conftest import base_config, load_example, wait_for_audit

TOKEN = "operator-secret-for-tests"
TIMEOUT = 30

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)
if not CHROMIUM.exists():
    pytest.skip(
        "Chromium is not installed at /usr/bin/chromium (apt-get install chromium): the report "
        "page is checked in a real browser only",
        allow_module_level=True,
    )


@dataclass
class Running:
    url: str
    patient_ids: tuple[str, ...]


def _sign(base: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = requests.post(f"{base}/cds-services/prior-auth-order-sign", json=body, timeout=TIMEOUT)
    assert resp.status_code == 200, resp.text
    answer: dict[str, Any] = resp.json()
    return answer


def _feedback(base: str, card: dict[str, Any], outcome: str) -> None:
    item: dict[str, Any] = {
        "card": card["uuid"],
        "outcome": outcome,
        "outcomeTimestamp": "2026-03-02T16:00:00Z",
    }
    if outcome == "accepted" and card.get("suggestions"):
        item["acceptedSuggestions"] = [{"id": card["suggestions"][0]["uuid"]}]
    resp = requests.post(
        f"{base}/cds-services/prior-auth-order-sign/feedback",
        json={"feedback": [item]},
        timeout=TIMEOUT,
    )
    assert resp.status_code == 200, resp.text


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("report-page")
    config = base_config(
        CDS_DATABASE_URL=f"sqlite:///{folder / 'audit.sqlite'}", CDS_REPORTS_TOKEN=TOKEN
    )
    # The real clock (the page's default period is the last 30 days) and real card ids.
    del config["CLOCK"], config["UUID_FACTORY"]
    app = create_app(config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        request = load_example("order-sign-prefetch.json")
        # The example's patient has no allergy list: documentation is asked for (a warning).
        patient = request["prefetch"]["patient"]["id"]
        warning = load_example("order-sign-prefetch.json")
        warning["prefetch"].pop("allergies", None)
        cards: list[dict[str, Any]] = []
        for body in (request, warning, warning):
            body["hookInstance"] = f"{body['hookInstance'][:-4]}{len(cards):04d}"
            cards += _sign(base, body)["cards"]
        by_indicator: dict[str, list[dict[str, Any]]] = {}
        for card in cards:
            by_indicator.setdefault(card["indicator"], []).append(card)
        assert by_indicator.get("warning"), [c["indicator"] for c in cards]
        for card in by_indicator.get("info", []):
            _feedback(base, card, "overridden")  # closed: a dismissal, not an override
        _feedback(base, by_indicator["warning"][0], "overridden")
        wait_for_audit(app)
        yield Running(base, (patient,))
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched(sync_api) as chromium:
        yield chromium


def _opens(context: Any, url: str) -> bool:
    """Whether the page opens with the report (Chromium either shows the 401 answer or,
    when it had credentials to try, gives up with an authentication error)."""
    page = context.new_page()
    try:
        response = page.goto(url)
    except sync_api.Error as exc:
        if "INVALID_AUTH_CREDENTIALS" not in str(exc):
            raise
        return False
    assert response is not None
    shown: bool = response.status == 200 and page.locator("#by-card-type").count() == 1
    return shown


def test_the_page_needs_the_operator_secret(running: Running, browser: Any) -> None:
    url = f"{running.url}/reports/overrides"
    refused = requests.get(url, timeout=TIMEOUT)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    assert "NH.PHAR.244" not in refused.text
    bearer = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=TIMEOUT)
    assert bearer.status_code == 200
    assert bearer.headers["Cache-Control"] == "no-store"
    # In the browser: without the secret, or with a wrong one, the page does not open.
    for credentials in (None, {"username": "ops", "password": "wrong"}):
        context = browser.new_context(http_credentials=credentials)
        try:
            assert not _opens(context, url)
        finally:
            context.close()


def test_the_page_shows_counts_and_the_plot(running: Running, browser: Any) -> None:
    context = browser.new_context(http_credentials={"username": "ops", "password": TOKEN})
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", lambda r: errors.append(r.url))
        response = page.goto(f"{running.url}/reports/overrides")
        assert response is not None
        assert response.status == 200
        assert page.title() == "Card outcomes and overrides"
        rows = page.locator("#by-card-type tbody tr")
        cells = [rows.nth(i).locator("td").all_inner_texts() for i in range(rows.count())]
        by_group = {row[1]: row for row in cells}
        warning = next(row for group, row in by_group.items() if group.endswith("/ warning"))
        # columns: policy, group, shown, answered, accepted, overridden, dismissed, rates
        assert warning[0] == "NH.PHAR.244"
        assert (warning[2], warning[5]) == ("2", "1")
        assert warning[8] == "100%"
        for group, row in by_group.items():
            if group.endswith("/ info"):
                assert row[5] == "0"  # closing an info card is not an override
                assert row[6] == "1"
                assert row[8] == "-"
        assert page.locator("#by-criterion tbody tr").count() >= 1
        plot = page.locator("svg#outcomes-plot")
        assert plot.is_visible()
        box = plot.bounding_box()
        assert box is not None
        assert box["width"] > 300
        assert page.locator("svg#outcomes-plot rect.bar").count() >= 2
        assert page.locator("svg#outcomes-plot circle.override").count() == 1
        text = page.inner_text("body")
        for patient in running.patient_ids:
            assert patient not in page.content()
        assert "MedicationRequest/" not in text
        assert errors == []  # nothing fetched from elsewhere, nothing blocked
    finally:
        context.close()
