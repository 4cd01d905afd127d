"""FHIR-style endpoints of the documentation templates (Da Vinci DTR).

GET  /fhir/Questionnaire/<id>                    a pack's Questionnaire (no patient data, open
                                                 like /policies); unknown id: 404 OperationOutcome
GET  /fhir/ValueSet/<id>                         an answer list the Questionnaire names
POST /fhir/Questionnaire/$questionnaire-package  secured like the hooks (the same JWT check);
                                                 Parameters in (`order`, and the chart:
                                                 `fhirServer` + `fhirAuthorization` and / or
                                                 `chart` resources), Parameters out with one
                                                 PackageBundle; bad input: 400 OperationOutcome
POST /fhir/QuestionnaireResponse/$evaluate       secured likewise; the same Parameters plus
                                                 `response`: its answers checked (issues) and the
                                                 order decided with them

The order is decided exactly as an order-sign call would decide it (the same prefetch
templates, FHIR fetching, deadline and `pipeline.evaluate_orders`), so the package's open
items are the documentation-needed card's items.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, g, request

from cds_service import api, orders, pipeline
from cds_service.auth import Principal
from cds_service.cards import Evaluation, NotEvaluated
from cds_service.dtr import answers
from cds_service.dtr import valuesets as vs
from cds_service.dtr.package import (
    PackageRequest,
    ParameterError,
    package,
    read_parameters,
    reference_id,
)
from cds_service.dtr.questionnaire import generate
from cds_service.dtr.urls import FHIR_BASE_PATH, PACKAGE_OPERATION, questionnaire_url
from cds_service.errors import ApiError
from cds_service.hooks import ServiceDefinition
from cds_service.policy.model import Decision
from cds_service.policy.packs import Pack
from cds_service.prefetch import PrefetchResult, resolve_prefetch

log = logging.getLogger(__name__)

dtr_blueprint = Blueprint("dtr", __name__)

FHIR_JSON = "application/fhir+json"
ORDER_SIGN = "order-sign"


class FhirError(Exception):
    """An answer as a FHIR OperationOutcome (one issue per problem)."""

    def __init__(self, status: int, code: str, message: str, where: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.where = list(where)


def operation_outcome(code: str, message: str, where: Sequence[str] = ()) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "error", "code": code, "diagnostics": message}
    if where:
        issue["expression"] = list(where)
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def fhir_response(body: Mapping[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype=FHIR_JSON)


@dtr_blueprint.errorhandler(FhirError)
def _fhir_error(error: FhirError) -> Response:
    return fhir_response(operation_outcome(error.code, error.message, error.where), error.status)


def _base_url() -> str:
    return api.public_base_url(request, api.get_state().settings)


def _pack(pack_id: str) -> Pack:
    pack = api.get_state().engine.registry.packs.get(pack_id)
    if pack is None:
        raise FhirError(404, "not-found", f"no Questionnaire with id {pack_id!r}")
    return pack


@dtr_blueprint.get(f"{FHIR_BASE_PATH}/Questionnaire/<questionnaire_id>")
def read_questionnaire(questionnaire_id: str) -> Response:
    return fhir_response(generate(_pack(questionnaire_id), _base_url()).questionnaire)


@dtr_blueprint.get(f"{FHIR_BASE_PATH}/ValueSet/<valueset_id>")
def read_valueset(valueset_id: str) -> Response:
    base = _base_url()
    for pack in api.get_state().engine.registry.packs.values():
        for names in generate(pack, base).valuesets:
            if vs.valueset_id(names) == valueset_id:
                date = f"{pack.effective}-01"
                return fhir_response(vs.valueset_resource(base, names, pack.version, date))
    raise FhirError(404, "not-found", f"no ValueSet with id {valueset_id!r}")


@dtr_blueprint.post(f"{FHIR_BASE_PATH}/Questionnaire/{PACKAGE_OPERATION}")
def questionnaire_package() -> Response:
    state = api.get_state()
    principal = api.authenticate(request)  # the hooks' JWT check; bare 401 when refused
    try:
        body = api.read_json_body(request, state.settings.max_json_depth)
    except ApiError as exc:
        raise FhirError(400, "invalid", exc.message) from None
    try:
        asked = read_parameters(body)
    except ParameterError as problem:
        raise FhirError(400, "invalid", problem.message, [problem.where]) from None
    pack, decision, patient_ref, _ = decide(asked, principal)
    _check_questionnaires(asked, pack)
    g.cds_outcome = f"package-{decision.outcome.value}"
    return fhir_response(
        package(
            pack,
            decision,
            public_base_url=_base_url(),
            response_id=state.uuid_factory(),
            patient_ref=patient_ref,
            now=state.clock(),
        )
    )


def _check_questionnaires(asked: PackageRequest, pack: Pack) -> None:
    url = questionnaire_url(_base_url(), pack.id)
    for n, canonical in enumerate(asked.questionnaires):
        plain, _, version = canonical.partition("|")
        if plain != url or (version and version != pack.version):
            raise FhirError(
                400,
                "not-supported",
                f"this order is decided by policy {pack.id}: its questionnaire is "
                f"{url}|{pack.version}, not {canonical}",
                [f"Parameters.parameter.where(name='questionnaire')[{n}]"],
            )


def order_sign_service() -> ServiceDefinition:
    catalog = api.get_state().catalog
    for service in catalog.services.values():
        if service.hook == ORDER_SIGN:
            return service
    raise FhirError(500, "exception", "no order-sign service is configured")


def hook_body(asked: PackageRequest, hook_instance: str) -> tuple[dict[str, Any], str]:
    """The order-sign call this package request stands for, and the patient reference."""
    order = dict(asked.order)
    order.setdefault("id", "draft-order")
    patient_id = reference_id(order.get("subject"), "Patient")
    if patient_id is None:
        raise FhirError(
            400,
            "required",
            "the order's subject must reference the patient (Patient/<id>)",
            ["Parameters.parameter.where(name='order').resource.subject"],
        )
    requester = order.get("requester")
    user = asked.user_id
    if user is None and isinstance(requester, Mapping):
        ref = requester.get("reference")
        if isinstance(ref, str) and ref.split("/")[0] in ("Practitioner", "PractitionerRole"):
            user = ref
    context: dict[str, Any] = {"userId": user or "Practitioner/unknown", "patientId": patient_id}
    encounter = asked.encounter_id or reference_id(order.get("encounter"), "Encounter")
    if encounter:
        context["encounterId"] = encounter
    context["draftOrders"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": order}],
    }
    body: dict[str, Any] = {"hook": ORDER_SIGN, "hookInstance": hook_instance, "context": context}
    if asked.fhir_server:
        body["fhirServer"] = asked.fhir_server
        if asked.access_token:
            body["fhirAuthorization"] = {
                "access_token": asked.access_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": "patient/*.read",
                "subject": "documentation-template",
            }
    return body, f"Patient/{patient_id}"


def _merged(*groups: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Resources of every group, one per type and id (a later group's copy wins)."""
    seen: dict[tuple[str, str], int] = {}
    out: list[Mapping[str, Any]] = []
    for group in groups:
        for resource in group:
            key = (str(resource.get("resourceType")), str(resource.get("id")))
            if resource.get("id") is not None and key in seen:
                out[seen[key]] = resource
                continue
            seen[key] = len(out)
            out.append(resource)
    return out


EVALUATE_OPERATION = "$evaluate"


@dtr_blueprint.post(f"{FHIR_BASE_PATH}/QuestionnaireResponse/{EVALUATE_OPERATION}")
def evaluate_response() -> Response:
    """An answered template checked and decided with the chart: Parameters with `issues`
    (an OperationOutcome: one issue per answer not used, pointing at its item), `outcome`
    (the decision), one `criterion` per criterion (id, status, reason) and the `response`
    as sent (nothing answered is lost)."""
    state = api.get_state()
    principal = api.authenticate(request)
    try:
        body = api.read_json_body(request, state.settings.max_json_depth)
    except ApiError as exc:
        raise FhirError(400, "invalid", exc.message) from None
    try:
        asked = read_parameters(body, with_response=True)
    except ParameterError as problem:
        raise FhirError(400, "invalid", problem.message, [problem.where]) from None
    sent = asked.response
    assert sent is not None
    _, patient_ref = hook_body(asked, "check")
    registry = state.engine.registry
    pack = answers.pack_of_canonical(registry, str(sent.get("questionnaire") or ""))
    if pack is None:
        raise FhirError(
            400,
            "invalid",
            "the response's `questionnaire` is not one of this service's questionnaires",
            ["QuestionnaireResponse.questionnaire"],
        )
    subject = sent.get("subject")
    if not isinstance(subject, Mapping) or subject.get("reference") != patient_ref:
        raise FhirError(
            400,
            "invalid",
            f"the response's subject must be the order's patient ({patient_ref})",
            ["QuestionnaireResponse.subject"],
        )
    used = {**sent, "status": "completed", "id": str(sent.get("id") or state.uuid_factory())}
    with_answers = replace(asked, chart=(*asked.chart, used))
    decided_pack, decision, _, found = decide(with_answers, principal)
    if decided_pack.id != pack.id:
        raise FhirError(
            400,
            "invalid",
            f"this order is decided by policy {decided_pack.id}, the response answers {pack.id}",
            ["QuestionnaireResponse.questionnaire"],
        )
    issues = answer_issues(pack, used, found)
    g.cds_outcome = f"evaluate-{decision.outcome.value}"
    return fhir_response(
        {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "issues", "resource": issues},
                {"name": "outcome", "valueCode": decision.outcome.value},
                *(
                    {
                        "name": "criterion",
                        "part": [
                            {"name": "id", "valueString": r.id},
                            {"name": "status", "valueCode": r.status.value},
                            {"name": "reason", "valueString": r.reason},
                            *({"name": "evidence", "valueString": e} for e in r.evidence),
                        ],
                    }
                    for r in decision.criteria
                ),
                {"name": "response", "resource": sent},
            ],
        }
    )


def answer_issues(
    pack: Pack, response: Mapping[str, Any], found: Sequence[answers.AnswerIssue]
) -> dict[str, Any]:
    """One OperationOutcome issue per answer not used (an item the questionnaire does not
    have, a date in the future, a quantity in a unit the item does not take, an answer that
    contradicts the chart), each pointing at its item; one informational issue when all
    were used."""
    issue_list: list[dict[str, Any]] = []
    for link in answers.unknown_items(answers.questionnaire_of(pack), response):
        issue_list.append(
            {
                "severity": "error",
                "code": "not-found",
                "diagnostics": f"item {link!r} does not exist in {pack.id}'s questionnaire: "
                "not used",
                "expression": [_item_path(link)],
            }
        )
    for problem in found:
        issue_list.append(
            {
                "severity": problem.severity,
                "code": "business-rule" if "chart" in problem.message else "value",
                "diagnostics": f"{problem.link_id}: {problem.message}",
                "expression": [_item_path(problem.link_id)],
            }
        )
    if not issue_list:
        issue_list.append(
            {
                "severity": "information",
                "code": "informational",
                "diagnostics": "every answer was used",
            }
        )
    return {"resourceType": "OperationOutcome", "issue": issue_list}


def _item_path(link_id: str) -> str:
    return f"QuestionnaireResponse.item.descendants().where(linkId='{link_id}')"


def decide(
    asked: PackageRequest, principal: Principal | None
) -> tuple[Pack, Decision, str, tuple[answers.AnswerIssue, ...]]:
    """The order's pack and decision, as an order-sign call with the same chart gets it,
    the patient reference, and the problems of the answered templates in the chart."""
    state = api.get_state()
    service = order_sign_service()
    body, patient_ref = hook_body(asked, state.uuid_factory())
    context = body["context"]
    started: float = g.get("cds_started", state.monotonic())
    if asked.fhir_server:
        result = resolve_prefetch(
            service.prefetch,
            service.required_prefetch,
            body,
            server_allowed=api.fhir_server_check(state, principal),
            client_factory=state.new_fhir_client,
            limits=state.limits,
            deadline=api.fetch_deadline(state, started),
            monotonic=state.monotonic,
            also_read=orders.medication_reads(context, ORDER_SIGN),
        )
        result = answers.quiet(result)
    else:
        result = PrefetchResult(resources=(), missing=())
    resources = _merged(result.resources, asked.chart, asked.coverages)
    patient_id = patient_ref.split("/", 1)[1]
    has_patient = any(
        r.get("resourceType") == "Patient" and r.get("id") == patient_id for r in resources
    )
    missing = api.missing_data(service, result)
    if result.required_missing or not has_patient:
        reason = (
            pipeline.record_unreadable_reason([m for m in missing if m.required] or missing)
            if result.required_missing
            else f"the chart holds no Patient resource with id {patient_id}"
        )
        raise FhirError(422, "processing", f"the chart could not be read: {reason}")
    call = pipeline.CallContext(
        service_id=service.id,
        hook=ORDER_SIGN,
        hook_instance=str(body["hookInstance"]),
        context=context,
        now=state.clock(),
        uuid_factory=state.uuid_factory,
        missing_prefetch=result.missing,
        fhir_server_used=result.queries > 0,
        unavailable_types=service.resource_types(result.missing),
        missing_data=missing,
        public_base_url=_base_url(),
        out_of_time=api.call_out_of_time(state, started),
    )
    routed = pipeline.evaluate_orders(state.engine.registry, call, resources)
    _, found = answers.read_answers(state.engine.registry, context, resources, call.now.date())
    for item in routed:
        if isinstance(item.item, Evaluation) and item.pack is not None:
            return item.pack, item.item.decision, patient_ref, found.issues
    for item in routed:
        if isinstance(item.item, NotEvaluated):
            raise FhirError(
                422, "processing", f"the order could not be checked: {item.item.reason}"
            )
    raise FhirError(
        400,
        "not-supported",
        "no policy of this service decides the order's drug: "
        "there is no documentation template for it",
        ["Parameters.parameter.where(name='order').resource"],
    )
