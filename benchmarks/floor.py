"""The floor the service is compared with: the least a CDS service can do per call.

A Flask app served the same way as the service (gunicorn, gthread, same workers and
threads). `POST /cds-services/<id>` parses the JSON body (the same body the service gets)
and answers one fixed card; `GET /cds-services` answers an empty discovery.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, request

FIXED_CARD: dict[str, Any] = {
    "cards": [
        {
            "uuid": "00000000-0000-4000-8000-000000000000",
            "summary": "Product meets plan criteria: send the prior authorization request",
            "indicator": "info",
            "source": {"label": "Example Health Plan"},
        }
    ]
}
_ANSWER = json.dumps(FIXED_CARD)

app = Flask(__name__)


@app.get("/cds-services")
def discovery() -> Response:
    return Response('{"services": []}', mimetype="application/json")


@app.post("/cds-services/<service_id>")
def call(service_id: str) -> Response:
    body = json.loads(request.get_data(cache=False))
    if not isinstance(body, dict) or "context" not in body:
        return Response('{"error": "not a CDS Hooks request"}', 400, mimetype="application/json")
    return Response(_ANSWER, mimetype="application/json")
