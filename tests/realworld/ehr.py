"""The EHR's side for the sample charts: the draft Kineret order, the order-sign request, the
prefetch answered from the chart, and the chart as a transaction for the FHIR sandbox.

Prefetch is answered the way a FHIR server answers each template of
`hooks/services/prior-auth-order-sign.json` (one searchset Bundle per search key, the resource
for a read, `null` when nothing matches, the key left out when a token has no value), but
from the chart in memory, so that the prefetch path does not depend on the sandbox. The
search parameters the templates use are understood here; an unknown one raises, so a new
template is never answered wrongly in silence.

Pure functions, apart from reading the hook file.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any, Final
from urllib.parse import parse_qsl

from sandbox.ehr import fill_template, token_values
from tests.conftest import HOOKS_DIR
from tests.realworld.charts import NDC, RXNORM, SNOMED, UCUM, Chart, Json

SIGN_SERVICE: Final = "prior-auth-order-sign"
DRAFT_ID: Final = "draft-kineret-realworld"
ORDER_REF: Final = f"MedicationRequest/{DRAFT_ID}"
PATIENT_FIELDS: Final = ("subject", "patient", "beneficiary")
"""Where each resource type keeps the patient the `patient` search parameter matches."""


@cache
def sign_templates() -> dict[str, str]:
    """The prefetch templates of the order-sign service, from its hook file."""
    service = json.loads((HOOKS_DIR / "services" / f"{SIGN_SERVICE}.json").read_text("utf-8"))
    templates: dict[str, str] = service["prefetch"]
    return templates


# --- the draft order ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OrderSpec:
    """How the EHR writes the Kineret order for one chart."""

    order_date: date
    """authoredOn: a fixed day near the chart's last activity (the service's `today` too)."""
    product: str = "rxnorm-sbd"
    """`rxnorm-sbd` (727714, Kineret), `rxnorm-scd` (727711, generic), `ndc` (66658-234-28,
    with a name) or `ndc11` (66658023428: 11 digits, no hyphens, no name)."""
    requester: str | None = None
    """`Practitioner/<id>` of a practitioner in the chart; None: the chart has none."""
    encounter: str | None = None
    """`<id>` of the chart's Encounter the order is signed in; None: no encounter context."""
    user: str | None = None
    """`context.userId` when it is not the requester (e.g. the prescriber's PractitionerRole)."""


PRODUCTS: Final[dict[str, Json]] = {
    "rxnorm-sbd": {
        "coding": [
            {
                "system": RXNORM,
                "code": "727714",
                "display": "0.67 ML anakinra 149 MG/ML Prefilled Syringe [Kineret]",
            }
        ],
        "text": "Kineret 100 mg/0.67 mL prefilled syringe",
    },
    "rxnorm-scd": {
        "coding": [
            {
                "system": RXNORM,
                "code": "727711",
                "display": "0.67 ML anakinra 149 MG/ML Prefilled Syringe",
            }
        ],
        "text": "anakinra 100 mg/0.67 mL syringe",
    },
    "ndc": {"coding": [{"system": NDC, "code": "66658-234-28"}], "text": "KINERET 100MG/0.67ML"},
    "ndc11": {"coding": [{"system": NDC, "code": "66658023428"}]},
}


def draft_order(chart: Chart, spec: OrderSpec) -> Json:
    """A draft Kineret MedicationRequest as an EHR writes it: 100 mg SC once daily, 28
    prefilled syringes for 28 days, five refills."""
    order: Json = {
        "resourceType": "MedicationRequest",
        "id": DRAFT_ID,
        "status": "draft",
        "intent": "order",
        "medicationCodeableConcept": copy.deepcopy(PRODUCTS[spec.product]),
        "subject": {"reference": f"Patient/{chart.patient_id}"},
        "authoredOn": spec.order_date.isoformat(),
        "dosageInstruction": [
            {
                "sequence": 1,
                "text": "Inject 100 mg under the skin once daily",
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "route": {
                    "coding": [
                        {"system": SNOMED, "code": "34206005", "display": "Subcutaneous route"}
                    ]
                },
                "doseAndRate": [
                    {"doseQuantity": {"value": 100, "unit": "mg", "system": UCUM, "code": "mg"}}
                ],
            }
        ],
        "dispenseRequest": {
            "numberOfRepeatsAllowed": 5,
            "quantity": {"value": 28, "unit": "syringe"},
            "expectedSupplyDuration": {"value": 28, "unit": "days", "system": UCUM, "code": "d"},
        },
    }
    if spec.requester:
        order["requester"] = {"reference": spec.requester}
    if spec.encounter:
        order["encounter"] = {"reference": f"Encounter/{spec.encounter}"}
    return order


def hook_context(chart: Chart, spec: OrderSpec, order: Json) -> Json:
    context: Json = {
        "userId": spec.user or spec.requester or "Practitioner/realworld-prescriber",
        "patientId": chart.patient_id,
    }
    if spec.encounter:
        context["encounterId"] = spec.encounter
    context["draftOrders"] = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": order}],
    }
    return context


# --- prefetch answered from the chart ----------------------------------------------------------


def _ref(value: Any) -> str | None:
    if isinstance(value, Mapping) and isinstance(value.get("reference"), str):
        return str(value["reference"])
    return None


def _codings(value: Any) -> list[Mapping[str, Any]]:
    concepts = value if isinstance(value, list) else [value]
    return [
        coding
        for concept in concepts
        if isinstance(concept, Mapping)
        for coding in concept.get("coding") or []
        if isinstance(coding, Mapping)
    ]


def _token_match(codings: Sequence[Mapping[str, Any]], wanted: str) -> bool:
    for token in wanted.split(","):
        system, bar, code = token.rpartition("|")
        for coding in codings:
            if coding.get("code") == (code if bar else token) and (
                not bar or coding.get("system") == system
            ):
                return True
    return False


def _matches(resource: Mapping[str, Any], name: str, value: str) -> bool:
    if name == "patient":
        wanted = value if "/" in value else f"Patient/{value}"
        return any(_ref(resource.get(f)) == wanted for f in PATIENT_FIELDS)
    if name == "practitioner":
        wanted = value if "/" in value else f"Practitioner/{value}"
        return _ref(resource.get("practitioner")) == wanted
    if name == "code":
        return _token_match(_codings(resource.get("code")), value)
    if name == "category":
        return _token_match(_codings(resource.get("category")), value)
    if name in ("status", "intent"):
        return resource.get(name) in value.split(",")
    if name == "_id":
        return resource.get("id") in value.split(",")
    if name == "identifier":
        return any(
            _token_match([{"system": i.get("system"), "code": i.get("value")}], value)
            for i in resource.get("identifier") or []
            if isinstance(i, Mapping)
        )
    raise ValueError(f"search parameter {name!r} is not answered by the test EHR")


def _included(chart: Chart, matches: Sequence[Json], include: str) -> list[Json]:
    _, _, target = include.partition(":")
    refs: list[str] = []
    for resource in matches:
        if target == "medication":
            ref = _ref(resource.get("medicationReference"))
            refs += [ref] if ref else []
        elif target == "participant":
            refs += [r for p in resource.get("participant") or [] if (r := _ref(p.get("member")))]
        else:
            raise ValueError(f"_include {include!r} is not answered by the test EHR")
    found = [chart.by_ref(ref) for ref in dict.fromkeys(refs)]
    return [r for r in found if r is not None]


def answer_query(chart: Chart, query: str) -> Json | None:
    """What a FHIR server holding only `chart` answers to `query` (a filled template)."""
    path, _, raw = query.partition("?")
    if not raw and "/" in path:
        found = chart.by_ref(path)
        return copy.deepcopy(found) if found is not None else None
    params = parse_qsl(raw, keep_blank_values=True)
    includes = [v for k, v in params if k == "_include"]
    filters = [(k, v) for k, v in params if not k.startswith("_") or k == "_id"]
    unknown = {k for k, _ in params if k.startswith("_")} - {"_include", "_id", "_count", "_sort"}
    if unknown:
        raise ValueError(f"{sorted(unknown)} are not answered by the test EHR")
    matches = [
        r for r in chart.of_type(path) if all(_matches(r, name, value) for name, value in filters)
    ]
    extra: list[Json] = []
    for include in includes:
        extra += [r for r in _included(chart, matches, include) if r not in extra]
    if not matches and not extra:
        return None
    entries = [
        {"fullUrl": f"{r['resourceType']}/{r.get('id')}", "resource": r, "search": {"mode": mode}}
        for mode, group in (("match", matches), ("include", extra))
        for r in group
    ]
    return copy.deepcopy(
        {"resourceType": "Bundle", "type": "searchset", "total": len(matches), "entry": entries}
    )


def user_ids(spec: OrderSpec) -> dict[str, str]:
    if spec.requester and spec.requester.startswith("Practitioner/"):
        return {"userPractitionerId": spec.requester.removeprefix("Practitioner/")}
    return {}


def prefetch_from_chart(chart: Chart, context: Mapping[str, Any], spec: OrderSpec) -> Json:
    """Every template the EHR can fill, answered from the chart."""
    values = token_values(context, user_ids(spec))
    prefetch: Json = {}
    for key, template in sign_templates().items():
        query = fill_template(template, values)
        if query is not None:
            prefetch[key] = answer_query(chart, query)
    return prefetch


OrderEdit = Callable[[Json], None]


def _order(chart: Chart, spec: OrderSpec, edit_order: OrderEdit | None) -> Json:
    order = draft_order(chart, spec)
    if edit_order is not None:
        edit_order(order)
    return order


def prefetch_request(
    chart: Chart,
    spec: OrderSpec,
    *,
    edit_order: OrderEdit | None = None,
    null_authorization: bool = False,
) -> Json:
    """The order-sign request with every fillable prefetch key answered from the chart.
    `null_authorization`: `fhirServer` and `fhirAuthorization` sent as null (Da Vinci CRD)."""
    context = hook_context(chart, spec, _order(chart, spec, edit_order))
    body: Json = {"hook": "order-sign", "hookInstance": f"realworld-prefetch-{chart.key}"}
    if null_authorization:
        body.update(fhirServer=None, fhirAuthorization=None)
    body["context"] = context
    body["prefetch"] = prefetch_from_chart(chart, context, spec)
    return body


def server_request(
    chart: Chart,
    spec: OrderSpec,
    fhir_server: str,
    *,
    edit_order: OrderEdit | None = None,
    null_authorization: bool = False,
) -> Json:
    """The order-sign request with no prefetch: the service reads `fhir_server` itself
    (the sandbox asks for no token; `null_authorization` sends `fhirAuthorization: null`)."""
    body: Json = {
        "hook": "order-sign",
        "hookInstance": f"realworld-server-{chart.key}",
        "fhirServer": fhir_server,
    }
    if null_authorization:
        body["fhirAuthorization"] = None
    body["context"] = hook_context(chart, spec, _order(chart, spec, edit_order))
    return body


# --- loading the sandbox ------------------------------------------------------------------------


def _entry(resource: Mapping[str, Any]) -> Json:
    kind, rid = resource["resourceType"], resource.get("id")
    if not rid:  # the server gives it an id
        return {
            "resource": copy.deepcopy(dict(resource)),
            "request": {"method": "POST", "url": kind},
        }
    return {
        "fullUrl": f"{kind}/{rid}",
        "resource": copy.deepcopy(dict(resource)),
        "request": {"method": "PUT", "url": f"{kind}/{rid}"},
    }


def as_transaction(resources: Sequence[Mapping[str, Any]]) -> Json:
    """A transaction Bundle that stores every resource under its own id (PUT), and those
    without an id under one the server gives (POST). Of two versions of one resource, the
    later entry is what the server keeps."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [_entry(r) for r in resources],
    }
