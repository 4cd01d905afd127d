"""The documentation form page (`GET /forms/<pack id>`) in a real headless Chromium (Debian's
/usr/bin/chromium, driven by Playwright for Python), against the real FHIR sandbox server
(`sandbox/fhir_sandbox.py`) holding a documentation-needed patient and the draft order its
EHR is about to sign. The service runs in a thread (werkzeug).

What a user sees is checked against what the service answers through its own API: the open
items listed on the page are the criteria the order-sign call left unknown (the documentation
card's items), and a prefilled answer shows its value and the chart record it came from, as
`$questionnaire-package` returns them.

    UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/forms/test_form_page_browser.py

also rewrites docs/documentation-templates/prefilled-form.png (docs/documentation-templates.md).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from werkzeug.serving import make_server

from cds_service import create_app
from cds_service.dtr.prepopulate import open_items
from sandbox.fhir_sandbox import (
    PATIENTS_DIR,
    SandboxServer,
    install,
    load_patients,
    npm_available,
    start,
)
from tests.chromium import CHROMIUM, launched
from tests.conftest import ROOT, base_config

TOKEN = "pharmacist-secret-for-tests"
TIMEOUT = 60
PACK = "NH.PHAR.244"
SCENARIO = "ra-documentation-needed"
SCREENSHOT = ROOT / "docs" / "documentation-templates" / "prefilled-form.png"
FHIR_JSON = "application/fhir+json"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright for Python is not installed (pip install playwright)"
)
if not CHROMIUM.exists():
    pytest.skip(
        "Chromium is not installed at /usr/bin/chromium (apt-get install chromium): the form "
        "page is checked in a real browser only",
        allow_module_level=True,
    )
if not npm_available():
    pytest.skip(
        "npm is not installed: the FHIR sandbox (sandbox/) that holds the patient cannot run",
        allow_module_level=True,
    )


@dataclass
class Running:
    url: str
    sandbox: str
    patient: str
    order: dict[str, Any]


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxServer]:
    install()
    server = start()
    try:
        load_patients(server.base_url, [PATIENTS_DIR / f"{SCENARIO}.json"])
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def running(sandbox_server: SandboxServer) -> Iterator[Running]:
    order: dict[str, Any] = json.loads((PATIENTS_DIR / f"{SCENARIO}.order.json").read_text())
    # The EHR keeps the order it is about to sign as a draft on its server.
    stored = requests.put(
        f"{sandbox_server.base_url}/MedicationRequest/{order['id']}",
        data=json.dumps(order),
        headers={"Content-Type": FHIR_JSON},
        timeout=TIMEOUT,
    )
    assert stored.status_code in (200, 201), stored.text
    app = create_app(
        base_config(CDS_REPORTS_TOKEN=TOKEN, CDS_SANDBOX_FHIR_URL=sandbox_server.base_url)
    )
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    patient = order["subject"]["reference"].split("/", 1)[1]
    try:
        yield Running(
            f"http://127.0.0.1:{server.server_port}", sandbox_server.base_url, patient, order
        )
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched(sync_api) as chromium:
        yield chromium


def _package(running: Running) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Questionnaire and the prefilled response, from `$questionnaire-package`."""
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "order", "resource": running.order},
            {"name": "fhirServer", "valueUrl": running.sandbox},
        ],
    }
    answer = requests.post(
        f"{running.url}/fhir/Questionnaire/$questionnaire-package", json=body, timeout=TIMEOUT
    )
    assert answer.status_code == 200, answer.text
    entries = answer.json()["parameter"][0]["resource"]["entry"]
    found = {e["resource"]["resourceType"]: e["resource"] for e in entries}
    return found["Questionnaire"], found["QuestionnaireResponse"]


def _unknown_criteria(running: Running) -> list[str]:
    """The criteria the order-sign call for the same order leaves unknown (the card's items)."""
    body = {
        "hook": "order-sign",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": running.sandbox,
        "context": {
            "userId": running.order["requester"]["reference"],
            "patientId": running.patient,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": running.order}],
            },
        },
    }
    answer = requests.post(
        f"{running.url}/cds-services/prior-auth-order-sign", json=body, timeout=TIMEOUT
    )
    assert answer.status_code == 200, answer.text
    data = answer.json()
    [card] = data["cards"]
    assert card["source"]["topic"]["code"] == "appropriate-use"  # documentation needed
    [evaluation] = data["extension"]["com.anakinra-cds.evaluation"]
    return [c["id"] for c in evaluation["criteria"] if c["status"] == "unknown"]


def _answer(response: Mapping[str, Any], link: str) -> Mapping[str, Any]:
    for item in response["item"]:
        if item["linkId"] == link:
            answer: Mapping[str, Any] = item["answer"][0]
            return answer
    raise AssertionError(f"the response does not answer {link}")


def test_the_form_shows_its_questions_and_branches_to_anyone(
    running: Running, browser: Any
) -> None:
    questionnaire, _ = _package(running)
    page = browser.new_page()
    try:
        page.goto(f"{running.url}/forms/{PACK}")
        pathway = page.locator('[data-link-id="pathway"]')
        assert pathway.locator(".text").inner_text() == next(
            i["text"] for i in questionnaire["item"] if i["linkId"] == "pathway"
        )
        # A section is asked only on its branch, and the page says which.
        section = page.locator('[data-link-id="initial/I.A"] > .branch')
        assert section.inner_text().startswith("Asked when")
        assert page.locator("#open-items").count() == 0  # no patient: nothing is open
    finally:
        page.close()


def test_a_sandbox_patient_needs_the_token(running: Running) -> None:
    url = f"{running.url}/forms/{PACK}?patient={running.patient}"
    refused = requests.get(url, timeout=TIMEOUT)
    assert refused.status_code == 401
    assert running.patient not in refused.text
    wrong = requests.get(url, auth=("pharmacist", "not-the-token"), timeout=TIMEOUT)
    assert wrong.status_code == 401


def test_the_prefilled_form_lists_the_open_items_and_where_answers_came_from(
    running: Running, browser: Any
) -> None:
    questionnaire, response = _package(running)
    unknown = _unknown_criteria(running)
    assert unknown, "the sandbox patient's order should need documentation"
    assert open_items(questionnaire, response) == unknown  # the card's items, nothing else
    context = browser.new_context(
        http_credentials={"username": "pharmacist", "password": TOKEN},
        viewport={"width": 1100, "height": 900},
    )
    page = context.new_page()
    try:
        page.goto(f"{running.url}/forms/{PACK}?patient={running.patient}")
        listed = page.locator("#open-items li").all_inner_texts()
        assert [text.split(":", 1)[0] for text in listed] == unknown
        for criterion in unknown:
            block = page.locator(f'[data-link-id="{criterion}"]')
            assert "open" in (block.get_attribute("class") or "").split()
        # A prefilled answer: its value and the chart record it was read from.
        indication = _answer(response, "indication")
        shown = page.locator('[data-link-id="indication"] .answer').inner_text()
        assert indication["valueCoding"]["display"] in shown
        assert "filled in from the chart" in shown
        sources = [
            e["valueReference"]["reference"]
            for e in indication["extension"]
            if "valueReference" in e
        ]
        assert sources
        assert all(source in shown for source in sources)
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=False)
    finally:
        context.close()
