"""The Da Vinci DTR `$questionnaire-package` answer: pure assembly of the pack's
Questionnaire, the ValueSets its answers name, a Library saying how it is filled, and the
QuestionnaireResponse prefilled from the order's decision, in one Bundle inside Parameters.

Reading the Parameters (what the caller sent) is here too, so that every refusal says which
parameter is wrong; fetching the chart and deciding the order are the protocol layer's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cds_service.dtr import valuesets as vs
from cds_service.dtr.prepopulate import prefill
from cds_service.dtr.questionnaire import Generated, generate
from cds_service.dtr.urls import fhir_base
from cds_service.policy.model import Decision
from cds_service.policy.packs import Pack

PACKAGE_BUNDLE = "PackageBundle"
LIBRARY_TYPE = "http://terminology.hl7.org/CodeSystem/library-type"


class ParameterError(ValueError):
    """A parameter of the operation is missing or wrong: `where` names it (a FHIRPath-like
    expression such as `Parameters.parameter[2]`), the message says what is wrong."""

    def __init__(self, message: str, where: str = "Parameters") -> None:
        super().__init__(message)
        self.message = message
        self.where = where


@dataclass(frozen=True)
class PackageRequest:
    """What `$questionnaire-package` was asked for."""

    order: Mapping[str, Any]
    """The draft MedicationRequest."""
    questionnaires: tuple[str, ...] = ()
    """Canonical URLs asked for (`url` or `url|version`); empty: the order's pack decides."""
    coverages: tuple[Mapping[str, Any], ...] = ()
    chart: tuple[Mapping[str, Any], ...] = ()
    """Chart resources sent with the request (Bundles are opened)."""
    fhir_server: str | None = None
    access_token: str | None = None
    user_id: str | None = None
    encounter_id: str | None = None
    response: Mapping[str, Any] | None = None
    """`$evaluate` only: the answered QuestionnaireResponse."""


def _resources(value: Any) -> list[Mapping[str, Any]]:
    """A resource, or the resources of a Bundle's entries."""
    if not isinstance(value, Mapping):
        return []
    if value.get("resourceType") == "Bundle":
        out = []
        for entry in value.get("entry") or []:
            if isinstance(entry, Mapping) and isinstance(entry.get("resource"), Mapping):
                out.append(entry["resource"])
        return out
    return [value]


def read_parameters(body: Any, *, with_response: bool = False) -> PackageRequest:
    """The request, or `ParameterError` naming the first thing wrong. `with_response`:
    the `$evaluate` call, which takes (and requires) one `response`."""
    if not isinstance(body, Mapping) or body.get("resourceType") != "Parameters":
        raise ParameterError("the body must be a FHIR Parameters resource")
    params = body.get("parameter")
    if not isinstance(params, list) or not params:
        raise ParameterError("Parameters.parameter is missing: send at least `order`")
    order: Mapping[str, Any] | None = None
    questionnaires: list[str] = []
    coverages: list[Mapping[str, Any]] = []
    chart: list[Mapping[str, Any]] = []
    fhir_server = token = user_id = encounter_id = None
    response: Mapping[str, Any] | None = None
    for n, param in enumerate(params):
        where = f"Parameters.parameter[{n}]"
        if not isinstance(param, Mapping) or not isinstance(param.get("name"), str):
            raise ParameterError("each parameter needs a `name`", where)
        name = param["name"]
        resource = param.get("resource")
        if name == "order":
            if (
                not isinstance(resource, Mapping)
                or resource.get("resourceType") != "MedicationRequest"
            ):
                raise ParameterError("`order` must be a MedicationRequest resource", where)
            if order is not None:
                raise ParameterError(
                    "one `order` per call: this service decides one order at a time", where
                )
            order = resource
        elif name == "questionnaire":
            value = param.get("valueCanonical") or param.get("valueUri")
            if not isinstance(value, str) or not value:
                raise ParameterError("`questionnaire` must be a valueCanonical", where)
            questionnaires.append(value)
        elif name == "coverage":
            if not isinstance(resource, Mapping) or resource.get("resourceType") != "Coverage":
                raise ParameterError("`coverage` must be a Coverage resource", where)
            coverages.append(resource)
        elif name == "chart":
            found = _resources(resource)
            if not found:
                raise ParameterError("`chart` must be a resource or a Bundle of resources", where)
            chart.extend(found)
        elif name == "fhirServer":
            value = param.get("valueUrl") or param.get("valueUri")
            if not isinstance(value, str) or not value.startswith(("http://", "https://")):
                raise ParameterError("`fhirServer` must be an http(s) valueUrl", where)
            fhir_server = value
        elif name == "fhirAuthorization":
            token = _access_token(param, where)
        elif name in ("userId", "encounterId"):
            value = param.get("valueString")
            if not isinstance(value, str) or not value:
                raise ParameterError(f"`{name}` must be a valueString", where)
            if name == "userId":
                user_id = value
            else:
                encounter_id = value
        elif name == "response" and with_response:
            if not isinstance(resource, Mapping) or (
                resource.get("resourceType") != "QuestionnaireResponse"
            ):
                raise ParameterError("`response` must be a QuestionnaireResponse resource", where)
            if response is not None:
                raise ParameterError("one `response` per call", where)
            response = resource
        elif name in ("context", "changedsince"):
            continue  # accepted, not used: the package is always complete and current
        else:
            raise ParameterError(f"unknown parameter `{name}`", where)
    if order is None:
        raise ParameterError("the `order` parameter (a MedicationRequest) is required")
    if with_response and response is None:
        raise ParameterError("the `response` parameter (a QuestionnaireResponse) is required")
    if token is not None and fhir_server is None:
        raise ParameterError("`fhirAuthorization` is sent only with `fhirServer`")
    if fhir_server is None and not chart:
        raise ParameterError(
            "no chart to read: send `fhirServer` (with `fhirAuthorization`) or `chart` resources"
        )
    return PackageRequest(
        order=order,
        questionnaires=tuple(questionnaires),
        coverages=tuple(coverages),
        chart=tuple(chart),
        fhir_server=fhir_server,
        access_token=token,
        user_id=user_id,
        encounter_id=encounter_id,
        response=response,
    )


def _access_token(param: Mapping[str, Any], where: str) -> str:
    for part in param.get("part") or []:
        if isinstance(part, Mapping) and part.get("name") == "access_token":
            value = part.get("valueString")
            if isinstance(value, str) and value:
                return value
    raise ParameterError("`fhirAuthorization` needs a part `access_token` (valueString)", where)


def reference_id(reference: Any, resource_type: str) -> str | None:
    """The id of a `ResourceType/id` reference of that type (None otherwise)."""
    ref = reference.get("reference") if isinstance(reference, Mapping) else None
    if not isinstance(ref, str):
        return None
    parts = ref.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == resource_type and parts[-1]:
        return parts[-1]
    return None


def library(pack: Pack, public_base_url: str, valueset_urls: Sequence[str]) -> dict[str, Any]:
    """The package's Library: no client-side logic (the service prefills the response from
    its own reading of the chart); it lists what the Questionnaire depends on."""
    return {
        "resourceType": "Library",
        "id": f"{pack.id}-prepopulation",
        "url": f"{fhir_base(public_base_url)}/Library/{pack.id}-prepopulation",
        "version": pack.version,
        "name": "".join(ch for ch in pack.id if ch.isalnum()) + "Prepopulation",
        "title": f"{pack.id}: how the documentation template is filled",
        "status": "active",
        "type": {"coding": [{"system": LIBRARY_TYPE, "code": "asset-collection"}]},
        "date": f"{pack.effective}-01",
        "description": (
            "The service fills the QuestionnaireResponse of this package itself, from the "
            "same reading of the chart that decided the order (no logic runs in the client). "
            "Answers it filled carry information-origin `auto` and the resources read."
        ),
        "relatedArtifact": [{"type": "depends-on", "resource": url} for url in valueset_urls],
    }


def questionnaire_bundle(
    pack: Pack, generated: Generated, public_base_url: str, response: Mapping[str, Any] | None
) -> dict[str, Any]:
    date = f"{pack.effective}-01"
    valuesets = [
        vs.valueset_resource(public_base_url, names, pack.version, date)
        for names in generated.valuesets
    ]
    lib = library(pack, public_base_url, [v["url"] for v in valuesets])
    resources: list[Mapping[str, Any]] = [generated.questionnaire, lib, *valuesets]
    if response is not None:
        resources.append(response)
    return {
        "resourceType": "Bundle",
        "id": f"{pack.id}-package",
        "type": "collection",
        "entry": [
            {
                "fullUrl": f"{fhir_base(public_base_url)}/{r['resourceType']}/{r['id']}",
                "resource": r,
            }
            for r in resources
        ],
    }


def package(
    pack: Pack,
    decision: Decision,
    *,
    public_base_url: str,
    response_id: str,
    patient_ref: str,
    now: datetime,
) -> dict[str, Any]:
    """The operation's output: Parameters with one PackageBundle (the order's pack)."""
    generated = generate(pack, public_base_url)
    response = prefill(
        generated.questionnaire,
        decision,
        response_id=response_id,
        patient_ref=patient_ref,
        order_ref=decision.order_ref,
        now=now,
        public_base_url=public_base_url,
    )
    bundle = questionnaire_bundle(pack, generated, public_base_url, response)
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": PACKAGE_BUNDLE, "resource": bundle}],
    }
