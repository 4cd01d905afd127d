"""`GET /forms/<pack id>`: the documentation form of a policy pack in a browser (server-rendered
HTML, no script, no build step), for the plan's pharmacist and the integrator.

- `GET /forms` lists the packs; `GET /forms/<pack id>` shows the pack's Questionnaire (the one
  `GET /fhir/Questionnaire/<pack id>` serves): groups, questions, answer options and the branch
  each belongs to. No patient data: open like `/policies/<pack id>`.
- `GET /forms/<pack id>?patient=<id>` shows the same form prefilled for one patient of the
  sandbox FHIR server, as `$questionnaire-package` fills it for the patient's draft order of
  the pack's drug: each answer with the chart records it came from, the open items highlighted
  and listed first. Patient data, so:
  - the page needs `CDS_REPORTS_TOKEN` (HTTP Basic password, any user name, or
    `Authorization: Bearer`), as the report page: unset, 404; missing or wrong, 401;
  - the patient is read from `CDS_SANDBOX_FHIR_URL` only (a server of synthetic patients);
    unset, 404: the page never reads an EHR's server. The draft order is the patient's
    `MedicationRequest` with status `draft` there (the sandbox holds the scenario's draft
    once it is stored, see docs/documentation-templates.md).
Answers carry `Cache-Control: no-store` and a Content-Security-Policy that allows no script.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import requests
from flask import Blueprint, Response, current_app, request

from cds_service import api
from cds_service.auth import Principal
from cds_service.dtr.api import FhirError, decide
from cds_service.dtr.package import ParameterError, package, read_parameters
from cds_service.dtr.prepopulate import open_items
from cds_service.dtr.questionnaire import generate
from cds_service.form_view import render_page
from cds_service.policy.packs import Pack
from cds_service.report_page import allowed

forms_blueprint = Blueprint("cds_forms", __name__)

REALM = 'Basic realm="cds-service forms", charset="UTF-8"'
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
FHIR_JSON = "application/fhir+json"


def _page(body: str, status: int = 200, **headers: str) -> Response:
    response = Response(body, status=status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.update(headers)
    return response


def _message(text: str, status: int, **headers: str) -> Response:
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Forms</title></head>'
        f"<body><p>{html.escape(text)}</p></body></html>"
    )
    return _page(body, status, **headers)


def _base_url() -> str:
    return api.public_base_url(request, api.get_state().settings)


@forms_blueprint.get("/forms")
def forms_index() -> Response:
    packs = sorted(api.get_state().engine.registry.packs.values(), key=lambda p: p.id)
    items = "".join(
        f'<li><a href="/forms/{html.escape(p.id)}">{html.escape(p.id)}</a> '
        f"{html.escape(p.policy.title)} (version {html.escape(p.version)})</li>"
        for p in packs
    )
    return _page(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Documentation forms'
        f"</title></head><body><h1>Documentation forms</h1><ul>{items}</ul></body></html>"
    )


@forms_blueprint.get("/forms/<pack_id>")
def form_page(pack_id: str) -> Response:
    pack = api.get_state().engine.registry.packs.get(pack_id)
    if pack is None:
        return _message(f"No documentation form with id {pack_id}", 404)
    questionnaire = generate(pack, _base_url()).questionnaire
    patient = request.args.get("patient")
    title = f"Documentation form: {pack.id} {pack.policy.title}"
    if patient is None:
        return _page(render_page(questionnaire, title=title))
    token = current_app.config.get("CDS_REPORTS_TOKEN") or ""
    sandbox = api.get_state().settings.sandbox_fhir_url.rstrip("/")
    if not token or not sandbox:
        return _message(
            "Prefilled forms are shown only when the service is configured with the sandbox "
            "FHIR server (CDS_SANDBOX_FHIR_URL) and a token (CDS_REPORTS_TOKEN)",
            404,
        )
    if not allowed(token, request.headers.get("Authorization")):
        return _message("Authentication required", 401, **{"WWW-Authenticate": REALM})
    if not FHIR_ID.match(patient):
        return _message("patient must be a FHIR id", 400)
    try:
        filled = _prefilled(pack, sandbox, patient)
    except FhirError as problem:
        return _message(f"The form could not be filled: {problem.message}", problem.status)
    except requests.RequestException:
        return _message("The sandbox FHIR server could not be read", 502)
    if filled is None:
        return _message(
            f"The sandbox holds no draft order of this patient that policy {pack.id} decides",
            404,
        )
    form, response = filled
    notes = [f"Prefilled for sandbox patient {patient} by $questionnaire-package."]
    opened = open_items(form, response)
    return _page(render_page(form, response, title=title, open_links=opened, notes=notes))


def _drafts(sandbox: str, patient: str) -> list[Mapping[str, Any]]:
    """The patient's draft MedicationRequests on the sandbox server."""
    settings = api.get_state().settings
    answer = requests.get(
        f"{sandbox}/MedicationRequest",
        params={"patient": patient, "status": "draft"},
        headers={"Accept": FHIR_JSON},
        timeout=(settings.fhir_connect_timeout, settings.fhir_read_timeout),
    )
    answer.raise_for_status()
    bundle = answer.json()
    entries = bundle.get("entry") if isinstance(bundle, Mapping) else None
    return [
        e["resource"]
        for e in entries or []
        if isinstance(e, Mapping)
        and isinstance(e.get("resource"), Mapping)
        and e["resource"].get("resourceType") == "MedicationRequest"
    ]


def _resources(node: Any) -> Iterator[Mapping[str, Any]]:
    """Every resource inside a Parameters / Bundle answer."""
    if not isinstance(node, Mapping):
        return
    if node.get("resourceType") == "Parameters":
        for param in node.get("parameter") or []:
            if isinstance(param, Mapping):
                yield from _resources(param.get("resource"))
    elif node.get("resourceType") == "Bundle":
        for entry in node.get("entry") or []:
            if isinstance(entry, Mapping):
                yield from _resources(entry.get("resource"))
    else:
        yield node


def _prefilled(
    pack: Pack, sandbox: str, patient: str
) -> tuple[Mapping[str, Any], Mapping[str, Any]] | None:
    """The Questionnaire and the prefilled QuestionnaireResponse `$questionnaire-package`
    gives for the patient's draft order of the pack's drug; None: no such order."""
    state = api.get_state()
    # The sandbox is the operator's own setting: the view may read it, and nothing else.
    viewer = Principal(
        iss="forms-view", sub=None, jti=str(uuid.uuid4()), tenant=None, fhir_servers=(sandbox,)
    )
    for draft in _drafts(sandbox, patient):
        parameters = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "order", "resource": draft},
                {"name": "fhirServer", "valueUrl": sandbox},
            ],
        }
        try:
            asked = read_parameters(parameters)
        except ParameterError:
            continue
        try:
            decided, decision, patient_ref, _ = decide(asked, viewer)
        except FhirError as problem:
            if problem.status == 400:  # a draft of a drug no pack decides
                continue
            raise
        if decided.id != pack.id:
            continue
        answer = package(
            decided,
            decision,
            public_base_url=_base_url(),
            response_id=state.uuid_factory(),
            patient_ref=patient_ref,
            now=state.clock(),
        )
        found = list(_resources(answer))
        questionnaire = next((r for r in found if r.get("resourceType") == "Questionnaire"), None)
        response = next(
            (r for r in found if r.get("resourceType") == "QuestionnaireResponse"), None
        )
        if questionnaire is not None and response is not None:
            return questionnaire, response
    return None
