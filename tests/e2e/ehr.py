"""What an EHR does around a CDS Hooks call, written from the CDS Hooks 2.0.1 text.

- prefetch: fill each template of the discovery document from the hook context and the
  user's ids, leave out every template with a token that has no value, run the rest against
  the FHIR server (following `next` links), and send `null` for a key with no data;
- requests: order-sign / order-select bodies for one scenario of `sandbox/patients/`;
- reading answers: the decision and the cards of a response, in comparable form.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

FHIR_JSON = "application/fhir+json"
EVALUATION_KEY = "com.anakinra-cds.evaluation"
TIMEOUT = 30
MAX_PAGES = 50
TOKEN = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_.]*)\s*\}\}")
USER_TOKENS = {
    "Practitioner": "userPractitionerId",
    "PractitionerRole": "userPractitionerRoleId",
    "Patient": "userPatientId",
    "RelatedPerson": "userRelatedPersonId",
}


@dataclass(frozen=True)
class Scenario:
    """One row of `sandbox/patients/scenarios.json`."""

    name: str
    patient_id: str
    encounter_id: str
    role_id: str
    practitioner_id: str
    expected_outcome: str
    expected_not_met: frozenset[str]
    expected_unknown: frozenset[str]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Scenario:
        return cls(
            name=row["name"],
            patient_id=row["patientId"],
            encounter_id=row["encounterId"],
            role_id=row["userPractitionerRoleId"],
            practitioner_id=row["userPractitionerId"],
            expected_outcome=row["expectedOutcome"],
            expected_not_met=frozenset(row["expectedNotMet"]),
            expected_unknown=frozenset(row["expectedUnknown"]),
        )


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


def _next_link(bundle: Mapping[str, Any]) -> str | None:
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
    search with no entries), which the EHR sends as `null`."""
    resp = session.get(f"{base_url}/{query}", headers=dict(headers), timeout=TIMEOUT)
    if resp.status_code == 404:
        return None
    assert resp.status_code == 200, f"{query.split('?')[0]}: HTTP {resp.status_code}"
    body: dict[str, Any] = resp.json()
    if body.get("resourceType") != "Bundle":
        return body
    entries = list(body.get("entry", []))
    url = _next_link(body)
    pages = 1
    while url is not None:
        assert url.startswith(base_url + "/"), "a next link left the FHIR server"
        page = session.get(url, headers=dict(headers), timeout=TIMEOUT)
        assert page.status_code == 200, f"next page: HTTP {page.status_code}"
        body = page.json()
        entries.extend(body.get("entry", []))
        url = _next_link(body)
        pages += 1
        assert pages <= MAX_PAGES, "too many pages"
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
    fhir_server: str | None = None,
    access_token: str | None = None,
    prefetch: Mapping[str, Any] | None = None,
    selections: Sequence[str] = (),
    user_id: str | None = None,
) -> dict[str, Any]:
    """An order-sign / order-select request by the scenario's prescriber (by default as
    their PractitionerRole) for its patient and encounter."""
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
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if fhir_server is not None:
        body["fhirServer"] = fhir_server
    if access_token is not None:
        body["fhirAuthorization"] = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/*.read",
            "subject": "anakinra-cds",
        }
    if prefetch is not None:
        body["prefetch"] = dict(prefetch)
    return body


def user_ids(scenario: Scenario) -> dict[str, str]:
    return {
        "userPractitionerId": scenario.practitioner_id,
        "userPractitionerRoleId": scenario.role_id,
    }


# ----- reading answers ----------------------------------------------------------------------


def evaluations(response: Mapping[str, Any]) -> list[dict[str, Any]]:
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


def card_view(response: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(indicator, summary) of every card, in order."""
    return [(card["indicator"], card["summary"]) for card in response.get("cards", [])]


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


def with_status(decision: Mapping[str, Any], status: str) -> set[str]:
    return {cid for cid, st in decision["criteria"].items() if st == status}
