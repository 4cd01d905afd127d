"""Calling the service in-process (Flask test client) as the EHR does, clock on the order
date, and reading the Kineret order's evaluation out of the answer."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from flask import Flask

from cds_service import create_app
from tests.conftest import base_config
from tests.realworld.cases import Prepared
from tests.realworld.ehr import ORDER_REF, SIGN_SERVICE, prefetch_request, server_request
from tests.scenarios.harness import evaluations_of

Json = dict[str, Any]
UNREACHABLE_SERVER = "http://127.0.0.1:9/fhir"
"""A FHIR server that refuses every connection (the discard port): the record is unreadable."""


def build_request(prepared: Prepared, path: str, fhir_server: str | None = None) -> Json:
    """The order-sign request of a case in `path` ("prefetch" or "fhir-server"). A case whose
    record cannot be read gets no prefetch at all, and in the server path a FHIR server that
    refuses connections."""
    case = prepared.case
    if path == "prefetch":
        body = prefetch_request(
            prepared.chart,
            prepared.spec,
            edit_order=case.edit_order,
            null_authorization=case.null_authorization,
        )
        if case.record_unreadable:
            del body["prefetch"]
        return body
    server = UNREACHABLE_SERVER if case.record_unreadable or fhir_server is None else fhir_server
    return server_request(
        prepared.chart,
        prepared.spec,
        server,
        edit_order=case.edit_order,
        null_authorization=case.null_authorization,
    )


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
