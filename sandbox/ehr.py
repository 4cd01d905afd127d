"""The EHR side of a CDS Hooks 2.0.1 call, for the demo and the end-to-end tests.

- prefetch: fill each template of the discovery document from the hook context and the
  user's ids, leave out every template with a token that has no value, run the rest against
  the FHIR server (following `next` links), and send `null` for a key with no data;
- requests: order-sign / order-select bodies for one scenario of `sandbox/patients/`, and
  posting them to a service;
- reading answers: the evaluation extension, the decision, the cards and the coverage
  information of a response, in comparable form.

Only `read_query`, `prefetch_as_ehr` and `post_hook` do I/O; nothing here logs resource
bodies or tokens.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

import requests

from sandbox.scenarios import Scenario

FHIR_JSON: Final = "application/fhir+json"
EVALUATION_KEY: Final = "com.anakinra-cds.evaluation"
FHIR_TIMEOUT_S: Final = 30.0
HOOK_TIMEOUT_S: Final = 60.0
MAX_PAGES: Final = 50
TOKEN: Final = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_.]*)\s*\}\}")
USER_TOKENS: Final = {
    "Practitioner": "userPractitionerId",
    "PractitionerRole": "userPractitionerRoleId",
    "Patient": "userPatientId",
    "RelatedPerson": "userRelatedPersonId",
}
READ_SCOPES: Final = " ".join(
    f"user/{kind}.read"
    for kind in (
        "Patient",
        "Condition",
        "Observation",
        "MedicationRequest",
        "MedicationStatement",
        "MedicationDispense",
        "Medication",
        "AllergyIntolerance",
        "PractitionerRole",
        "CareTeam",
        "ServiceRequest",
        "Encounter",
        "Coverage",
    )
)
"""The scopes the EHR grants the service in `fhirAuthorization`: read access to what the
prefetch templates name."""


class EhrError(RuntimeError):
    """The FHIR server did not answer a prefetch query as an EHR expects."""


# ----- prefetch, as the EHR does it -----------------------------------------------------------


def token_values(context: Mapping[str, Any], user_ids: Mapping[str, str]) -> dict[str, str]:
    """Every prefetch token with a value: `context.<field>` for the first-level string fields
    of the context, and the user tokens the EHR knows (`userPractitionerId`: the FHIR id
    of the user's Practitioner, `userPractitionerRoleId`: of their PractitionerRole...),
    including the one `context.userId` names."""
    values = {f"context.{k}": v for k, v in context.items() if isinstance(v, str) and v}
    user = context.get("userId")
    if isinstance(user, str) and "/" in user:
        kind, _, ident = user.partition("/")
        if kind in USER_TOKENS and ident:
            values[USER_TOKENS[kind]] = ident
    values.update({k: v for k, v in user_ids.items() if k in USER_TOKENS.values() and v})
    return values


def fill_template(template: str, values: Mapping[str, str]) -> str | None:
    """The FHIR query of a prefetch template, or None when one of its tokens has no value
    (the EHR then does not send that key)."""
    names = TOKEN.findall(template)
    if any(name not in values for name in names):
        return None
    return TOKEN.sub(lambda m: values[m.group(1)], template)


def next_link(bundle: Mapping[str, Any]) -> str | None:
    """The URL of the bundle's `next` page, if any."""
    for link in bundle.get("link", []):
        if link.get("relation") == "next":
            url: str = link["url"]
            return url
    return None


def read_query(
    session: requests.Session, base_url: str, query: str, headers: Mapping[str, str]
) -> dict[str, Any] | None:
    """Run one filled template. A read gives the resource; a search gives one searchset
    Bundle with the entries of every page. None: no data (a read that finds nothing, a
    search with no entries), which the EHR sends as `null`.

    Raises EhrError on any other HTTP status, a next link off the server, or too many pages.
    """
    resp = session.get(f"{base_url}/{query}", headers=dict(headers), timeout=FHIR_TIMEOUT_S)
    if resp.status_code == 404:
        return None
    if resp.status_code != 200:
        raise EhrError(f"{query.split('?')[0]}: HTTP {resp.status_code}")
    body: dict[str, Any] = resp.json()
    if body.get("resourceType") != "Bundle":
        return body
    entries = list(body.get("entry", []))
    url = next_link(body)
    pages = 1
    while url is not None:
        if not url.startswith(base_url + "/"):
            raise EhrError("a next link left the FHIR server")
        page = session.get(url, headers=dict(headers), timeout=FHIR_TIMEOUT_S)
        if page.status_code != 200:
            raise EhrError(f"next page: HTTP {page.status_code}")
        body = page.json()
        entries.extend(body.get("entry", []))
        url = next_link(body)
        pages += 1
        if pages > MAX_PAGES:
            raise EhrError(f"more than {MAX_PAGES} pages")
    if not entries:
        return None
    matches = sum(1 for e in entries if e.get("search", {}).get("mode", "match") == "match")
    return {"resourceType": "Bundle", "type": "searchset", "total": matches, "entry": entries}


def prefetch_as_ehr(
    base_url: str,
    templates: Mapping[str, str],
    context: Mapping[str, Any],
    user_ids: Mapping[str, str],
    token: str | None = None,
) -> dict[str, Any]:
    """The `prefetch` object an EHR sends for `templates` (keys it cannot fill are left out)."""
    values = token_values(context, user_ids)
    headers = {"Accept": FHIR_JSON}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    prefetch: dict[str, Any] = {}
    with requests.Session() as session:
        for key, template in templates.items():
            query = fill_template(template, values)
            if query is not None:
                prefetch[key] = read_query(session, base_url, query, headers)
    return prefetch


# ----- hook requests ------------------------------------------------------------------------


def hook_request(
    scenario: Scenario,
    orders: Sequence[Mapping[str, Any]],
    *,
    hook: str = "order-sign",
    hook_instance: str | None = None,
    fhir_server: str | None = None,
    access_token: str | None = None,
    prefetch: Mapping[str, Any] | None = None,
    selections: Sequence[str] = (),
    user_id: str | None = None,
) -> dict[str, Any]:
    """A CDS Hooks 2.0.1 order-sign / order-select request by the scenario's prescriber (by
    default as their PractitionerRole) for its patient and encounter, with `orders` as the
    draft orders. `hook_instance` defaults to a fresh UUID; `fhirAuthorization` (with
    `access_token`) is sent only together with `fhir_server`."""
    context: dict[str, Any] = {
        "userId": user_id or f"PractitionerRole/{scenario.role_id}",
        "patientId": scenario.patient_id,
        "encounterId": scenario.encounter_id,
    }
    if hook == "order-select":
        context["selections"] = list(selections)
    context["draftOrders"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": dict(order)} for order in orders],
    }
    body: dict[str, Any] = {"hook": hook, "hookInstance": hook_instance or str(uuid.uuid4())}
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
        if access_token is not None:
            body["fhirAuthorization"] = {
                "access_token": access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": READ_SCOPES,
                "subject": "anakinra-cds",
            }
    body["context"] = context
    if prefetch is not None:
        body["prefetch"] = dict(prefetch)
    return body


def post_hook(
    base_url: str, service_id: str, body: Mapping[str, Any], *, timeout_s: float = HOOK_TIMEOUT_S
) -> requests.Response:
    """POST a hook request to `<base_url>/cds-services/<service_id>`."""
    return requests.post(f"{base_url}/cds-services/{service_id}", json=body, timeout=timeout_s)


# ----- reading answers ----------------------------------------------------------------------


def evaluations(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The evaluation extension of a response: one entry per evaluated order."""
    found: list[dict[str, Any]] = response.get("extension", {}).get(EVALUATION_KEY, [])
    return found


def decision_view(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per evaluated order: order, pathway, section, outcome, and criterion id -> status."""
    return [
        {
            "order": e.get("order"),
            "pathway": e.get("pathway"),
            "section": e.get("section"),
            "outcome": e.get("outcome"),
            "criteria": {c["id"]: c["status"] for c in e.get("criteria", [])},
        }
        for e in evaluations(response)
    ]


def with_status(decision: Mapping[str, Any], status: str) -> set[str]:
    """The criterion ids of a `decision_view` entry that have `status`."""
    return {cid for cid, st in decision["criteria"].items() if st == status}


def card_view(response: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(indicator, summary) of every card, in order."""
    return [(card["indicator"], card["summary"]) for card in response.get("cards", [])]


def suggestion_labels(card: Mapping[str, Any]) -> list[str]:
    """The labels of a card's suggestions, in order."""
    return [str(s.get("label", "")) for s in card.get("suggestions", []) if isinstance(s, Mapping)]


def coverage_view(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per system action: its type, the Coverage it names and the coded values of its
    coverage-information extension (covered, pa-needed, doc-needed...); not its date or id."""
    views = []
    for action in response.get("systemActions", []):
        for ext in action.get("resource", {}).get("extension", []):
            if not str(ext.get("url", "")).endswith("/ext-coverage-information"):
                continue
            parts = ext.get("extension", [])
            views.append(
                {
                    "type": action.get("type"),
                    "coverage": [p["valueReference"] for p in parts if p["url"] == "coverage"],
                    "codes": sorted((p["url"], p["valueCode"]) for p in parts if "valueCode" in p),
                }
            )
    return views
