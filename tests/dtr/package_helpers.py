"""Building `$questionnaire-package` requests and reading their answers, for the tests."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from cds_service.dtr.prepopulate import open_items
from sandbox.ehr import decision_view, with_status

PACKAGE = "/fhir/Questionnaire/$questionnaire-package"


def parameters(*params: Mapping[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [dict(p) for p in params]}


def chart_request(
    order: Mapping[str, Any], chart: Mapping[str, Any], user_id: str | None = None
) -> dict[str, Any]:
    """Order + the chart's resources (a Bundle) given in the request."""
    params: list[Mapping[str, Any]] = [
        {"name": "order", "resource": order},
        {"name": "chart", "resource": chart},
    ]
    if user_id:
        params.append({"name": "userId", "valueString": user_id})
    return parameters(*params)


def server_request(
    order: Mapping[str, Any], fhir_server: str, token: str | None, user_id: str | None = None
) -> dict[str, Any]:
    """Order + the FHIR server to read the chart from (as a hook's fhirServer)."""
    params: list[Mapping[str, Any]] = [
        {"name": "order", "resource": order},
        {"name": "fhirServer", "valueUrl": fhir_server},
    ]
    if token:
        params.append(
            {"name": "fhirAuthorization", "part": [{"name": "access_token", "valueString": token}]}
        )
    if user_id:
        params.append({"name": "userId", "valueString": user_id})
    return parameters(*params)


def bundle_of(answer: Mapping[str, Any]) -> dict[str, Any]:
    assert answer["resourceType"] == "Parameters"
    (param,) = answer["parameter"]
    assert param["name"] == "PackageBundle"
    bundle: dict[str, Any] = param["resource"]
    return bundle


def resources(answer: Mapping[str, Any], resource_type: str) -> list[dict[str, Any]]:
    return [
        e["resource"]
        for e in bundle_of(answer)["entry"]
        if e["resource"]["resourceType"] == resource_type
    ]


def open_of(answer: Mapping[str, Any]) -> list[str]:
    (questionnaire,) = resources(answer, "Questionnaire")
    (response,) = resources(answer, "QuestionnaireResponse")
    return open_items(questionnaire, response)


def unknown_criteria(hook_response: Mapping[str, Any]) -> Sequence[str]:
    """The criteria the documentation-needed card lists: the unknown ones of the decision."""
    (decision,) = decision_view(hook_response)
    return sorted(with_status(decision, "unknown"))


def _path_to(items: Sequence[Mapping[str, Any]], link_id: str) -> list[Mapping[str, Any]] | None:
    for item in items:
        if item.get("linkId") == link_id:
            return [item]
        below = _path_to(item.get("item", []), link_id)
        if below is not None:
            return [item, *below]
    return None


def answered(
    answer: Mapping[str, Any], groups: Mapping[str, Sequence[Mapping[str, Any]]]
) -> dict[str, Any]:
    """The package's prefilled response, completed: each criterion id of `groups` gets the
    given record groups (`record(...)`), nested under its ancestors as in the questionnaire."""
    (questionnaire,) = resources(answer, "Questionnaire")
    (response,) = resources(answer, "QuestionnaireResponse")
    completed: dict[str, Any] = json.loads(json.dumps(response))
    completed["status"] = "completed"
    for criterion, records in groups.items():
        path = _path_to(questionnaire["item"], criterion)
        assert path is not None, criterion
        level = completed["item"]
        for ancestor in path:
            found = next((i for i in level if i["linkId"] == ancestor["linkId"]), None)
            if found is None:
                found = {"linkId": ancestor["linkId"], "text": ancestor.get("text"), "item": []}
                level.append(found)
            level = found.setdefault("item", [])
        level.extend(records)
    return completed


def record(link_id: str, **fields: Mapping[str, Any]) -> dict[str, Any]:
    """A record group `link_id` with one answer per field (`name=answer value`)."""
    return {
        "linkId": link_id,
        "item": [
            {"linkId": f"{link_id}/{name.replace('_', '-')}", "answer": [dict(value)]}
            for name, value in fields.items()
        ],
    }


def first_code(answer: Mapping[str, Any], valueset_url_end: str) -> dict[str, Any]:
    """The first coding of the package's ValueSet whose id is `valueset_url_end`."""
    for vs in resources(answer, "ValueSet"):
        if vs["id"] == valueset_url_end:
            coding: dict[str, Any] = dict(vs["expansion"]["contains"][0])
            return coding
    raise AssertionError(f"no ValueSet {valueset_url_end}")
