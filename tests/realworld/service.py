"""Calling the service in-process (Flask test client) as the EHR does, clock on the order
date, and reading the Kineret order's evaluation out of the answer."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from flask import Flask

from cds_service import create_app
from tests.conftest import base_config
from tests.realworld.cases import Prepared
from tests.realworld.ehr import ORDER_REF, SIGN_SERVICE
from tests.scenarios.harness import evaluations_of

Json = dict[str, Any]


def app_for(prepared: Prepared) -> Flask:
    """The service with its clock on the order date (the day the order is signed)."""
    now = datetime.combine(prepared.spec.order_date, time(15, 0), tzinfo=UTC)
    return create_app(base_config(CLOCK=lambda: now, CDS_REQUEST_DEADLINE="30"))


def post(prepared: Prepared, body: Json) -> tuple[int, Json]:
    """POST an order-sign request; the HTTP status and the JSON answer ({} when none)."""
    with app_for(prepared).test_client() as client:
        response = client.post(f"/cds-services/{SIGN_SERVICE}", json=body)
        data = response.get_json(silent=True)
        return response.status_code, data if isinstance(data, dict) else {}


def kineret_evaluations(response: Json) -> list[Json]:
    """The evaluations the answer reports for the draft Kineret order."""
    return evaluations_of(response, ORDER_REF)
