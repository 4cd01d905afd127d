"""Links that work on a fresh install (docs/cards.md): with no policy URL configured, every
card links to the pack's policy text as the service serves it (`GET /policies/<pack id>`,
built from the public base URL or the request's base), and that link answers."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask

from cds_service import create_app
from tests.conftest import ROOT, base_config

SCENARIO = ROOT / "tests" / "scenarios" / "rilonacept" / "caps_ia4_no_marker.json"


def _sign(app: Flask) -> dict[str, Any]:
    body = json.loads(SCENARIO.read_text("utf-8"))
    body.pop("_expect")
    answer = app.test_client().post("/cds-services/anakinra-order-sign", json=body)
    assert answer.status_code == 200
    data: dict[str, Any] = answer.get_json()
    return data


def test_a_fresh_install_links_to_the_served_policy_text() -> None:
    app = create_app(base_config())
    (card,) = _sign(app)["cards"]
    url = "http://localhost/policies/IL1.RIL.01"
    assert card["source"]["url"] == url
    assert [link["url"] for link in card["links"]] == [url]
    served = app.test_client().get("/policies/IL1.RIL.01")
    assert served.status_code == 200
    assert served.mimetype == "text/plain"
    assert "Arcalyst" in served.get_data(as_text=True)
    # No form or app configured: the card offers the plan's documentation form (CRD "request
    # form completion": a Task to complete the pack's questionnaire) and says how to send it.
    canonical = form_canonical(card)
    assert canonical.startswith("http://localhost/fhir/Questionnaire/IL1.RIL.01|")
    assert '"Complete the plan' in card["detail"]
    assert "desk" not in card["detail"]
    assert "coverage information" not in card["detail"]
    # The coverage information names the same form (CRD resp-38).
    [action] = _sign(app)["systemActions"]
    named = [
        part["valueCanonical"]
        for ext in action["resource"]["extension"]
        for part in ext.get("extension", [])
        if part["url"] == "questionnaire"
    ]
    assert named == [canonical]


def form_canonical(card: dict[str, Any]) -> str:
    """The questionnaire of the card's one form-completion suggestion (a Task to create)."""
    [suggestion] = card["suggestions"]
    [action] = suggestion["actions"]
    task = action["resource"]
    assert (action["type"], task["resourceType"], task["status"]) == ("create", "Task", "ready")
    assert task["code"]["coding"][0]["code"] == "complete-questionnaire"
    assert task["basedOn"] == card["extension"]["davinci-crd.associated-resource"]
    [canonical] = [i["valueCanonical"] for i in task["input"] if "valueCanonical" in i]
    return str(canonical)


def test_the_public_base_url_builds_the_link() -> None:
    app = create_app(base_config(CDS_PUBLIC_BASE_URL="https://cds.plan.example.org/"))
    (card,) = _sign(app)["cards"]
    assert card["source"]["url"] == "https://cds.plan.example.org/policies/IL1.RIL.01"
    assert form_canonical(card).startswith(
        "https://cds.plan.example.org/fhir/Questionnaire/IL1.RIL.01|"
    )


def test_a_configured_smart_app_launches_with_the_form() -> None:
    app = create_app(base_config(CDS_SMART_APP_URL="https://dtr.plan.example.org/launch"))
    (card,) = _sign(app)["cards"]
    smart = [link for link in card["links"] if link["type"] == "smart"]
    assert [link["url"] for link in smart] == ["https://dtr.plan.example.org/launch"]
    launch = json.loads(smart[0]["appContext"])
    assert launch["questionnaire"] == form_canonical(card)
    assert launch["order"] == card["extension"]["davinci-crd.associated-resource"][0]["reference"]
    assert all(link["url"] and not link["url"].startswith("#") for link in card["links"])


def test_a_configured_policy_url_wins() -> None:
    app = create_app(
        base_config(CDS_POLICY_URL="https://plan.example.org/policies/{policy_id}.pdf")
    )
    (card,) = _sign(app)["cards"]
    assert card["source"]["url"] == "https://plan.example.org/policies/IL1.RIL.01.pdf"
