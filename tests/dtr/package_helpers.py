"""Building `$questionnaire-package` requests and reading their answers, for the tests."""

from __future__ import annotations

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
