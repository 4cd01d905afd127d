"""The form page's rules without a browser: the form itself is open, a patient's prefilled form
needs the token and the sandbox FHIR server, and no page runs a script."""

from __future__ import annotations

from cds_service import create_app
from tests.conftest import base_config

TOKEN = "pharmacist-secret"
SANDBOX = "http://127.0.0.1:9/fhir"


def test_the_form_is_open_and_runs_no_script() -> None:
    client = create_app(base_config()).test_client()
    page = client.get("/forms/IL1.RIL.01")
    assert page.status_code == 200
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    assert "<script" not in text
    assert 'data-link-id="pathway"' in text
    index = client.get("/forms").get_data(as_text=True)
    assert 'href="/forms/IL1.RIL.01"' in index
    assert 'href="/forms/NH.PHAR.244"' in index
    assert client.get("/forms/NO.SUCH.PACK").status_code == 404


def test_no_patient_without_the_token_and_the_sandbox() -> None:
    url = "/forms/NH.PHAR.244?patient=pt-ra-docs"
    for settings in ({}, {"CDS_REPORTS_TOKEN": TOKEN}, {"CDS_SANDBOX_FHIR_URL": SANDBOX}):
        client = create_app(base_config(**settings)).test_client()
        answer = client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 404, settings
        assert "CDS_SANDBOX_FHIR_URL" in answer.get_data(as_text=True)
    client = create_app(
        base_config(CDS_REPORTS_TOKEN=TOKEN, CDS_SANDBOX_FHIR_URL=SANDBOX)
    ).test_client()
    refused = client.get(url)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic")
    bad_id = client.get(
        "/forms/NH.PHAR.244?patient=../Patient", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert bad_id.status_code == 400
    # The sandbox is down (nothing listens on port 9): a clear 502, no patient data.
    down = client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
    assert down.status_code == 502
    assert "pt-ra-docs" not in down.get_data(as_text=True)
