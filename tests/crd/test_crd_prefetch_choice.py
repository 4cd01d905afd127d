"""CDS_PREFETCH (CRD found-27 / found-28): what discovery asks EHRs to prefetch.
Through the real FHIR server: tests/e2e/test_e2e_minimal_prefetch.py."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service import create_app
from cds_service.config import SettingsError
from cds_service.crd.prefetch_choice import advertised, minimal_keys
from tests.conftest import load_example


def _app(tmp_path: Any, mode: str | None) -> Any:
    config = {"CDS_AUTH": "disabled", "CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'a.sqlite'}"}
    if mode is not None:
        config["CDS_PREFETCH"] = mode
    return create_app(config)


def _prefetch_keys(app: Any) -> dict[str, list[str]]:
    body = app.test_client().get("/cds-services").get_json()
    return {s["hook"]: list(s["prefetch"]) for s in body["services"]}


def test_full_is_the_default_and_asks_for_the_whole_chart(tmp_path: Any) -> None:
    keys = _prefetch_keys(_app(tmp_path, None))
    assert keys == _prefetch_keys(_app(tmp_path, "full"))
    assert {"conditions", "observations", "medicationRequests", "coverage"} <= set(
        keys["order-sign"]
    )


def test_minimal_asks_for_patient_and_coverage_only(tmp_path: Any) -> None:
    assert _prefetch_keys(_app(tmp_path, "minimal")) == {
        "order-select": ["patient", "coverage"],
        "order-sign": ["patient", "coverage"],
        "order-dispatch": ["patient", "medicationRequests", "coverage"],
    }


def test_another_value_stops_the_service(tmp_path: Any) -> None:
    with pytest.raises(SettingsError, match="CDS_PREFETCH"):
        _app(tmp_path, "some")


def test_minimal_still_reads_every_key_an_ehr_sends(tmp_path: Any) -> None:
    """Only discovery changes: a full prefetch sent to a minimal service is used whole."""
    body = load_example("order-sign-prefetch.json")
    answers = [
        _app(tmp_path, mode).test_client().post("/cds-services/prior-auth-order-sign", json=body)
        for mode in ("full", "minimal")
    ]
    full, minimal = (a.get_json() for a in answers)
    assert minimal["extension"] == full["extension"]
    assert [c["summary"] for c in minimal["cards"]] == [c["summary"] for c in full["cards"]]


def test_advertised_keeps_only_the_every_call_keys_in_order() -> None:
    entry = {"id": "x", "prefetch": {"coverage": "C", "conditions": "D", "patient": "P"}}
    assert advertised(entry, "order-sign", "minimal")["prefetch"] == {
        "coverage": "C",
        "patient": "P",
    }
    assert advertised(entry, "order-sign", "full") == entry
    assert minimal_keys("order-dispatch", {"medicationRequests": "", "allergies": ""}) == (
        "medicationRequests",
    )
