"""The Da Vinci CRD coverage-information system action (CRD STU 2.2.1).

For every order the service decides, the response carries at most one `update` system
action: a copy of the draft order with one `ext-coverage-information` extension for the
payer's own Coverage (`payer.choose_coverage`). Another payer's Coverage never gets one.
Extensions of ours for the same Coverage are replaced; every other extension, another
payer's coverage information included, is kept as sent (the action changes nothing but
coverage information). No action when coverage information is switched off, when the
patient has no Coverage of the payer, or when the draft already carries the same
assertion (IG: no system action unless something is new); the evaluation extension says
which (`coverageInformation`: status sent / unchanged / not-sent / switched-off, and why).

Mapping (outcome -> elements):

- criteria-met: covered, pa-needed auth-needed, doc-needed clinical, doc-purpose withpa;
  detail allowed-quantity (the dose limit), allowed-period; expiry-date = date + the
  approval months.
- documentation-needed: covered, auth-needed, clinical, withpa; when some record data could
  not be read for the call, covered is `indeterminate` with reason code `technical`.
- criteria-not-met: not-covered, no pa-needed (crd-ci-q2), no doc-needed.
- off-label-review: conditional, auth-needed, clinical, withpa, info-needed OTH
  (crd-ci-q3) with an `instructions` detail saying what is needed.
- an order of a pack's drug that could not be evaluated (technical failure, unreadable
  chart or order): covered `indeterminate`, pa-needed auth-needed, reason code `technical`
  with the reason in text (IG resp-43); never covered.

Every extension also carries: the billing codes of the ordered product (HCPCS and NDC from
the pack's drug.json `billing`; the order's own NDC when it names one), a reason (text;
with a coding where the IG's value set has one), a `criterion` detail per policy criterion
(our temporary code, see `codes.OUR_DETAIL`), the `policy-link` detail to the policy text
this service serves, the payer's contact, `date` (the clock's day) and a
`coverage-assertion-id` derived from what was decided (`assertion_id`).

Documentation templates (CRD resp-38: doc-needed names the questionnaire to complete): a
documentation-needed order's extension names its pack's Questionnaire (`questionnaire`,
canonical `url|version`, from `CoverageCall.questionnaires`), the form a DTR client fills
from the chart and shows for what the chart lacks. Only there: a criteria-met order's
documentation is already in the chart (nothing to complete), an off-label review needs
evidence for a use the pack's criteria (and so its questionnaire) do not cover, and a
not-covered answer has no doc-needed (crd-ci-q1).

Invariants kept (tests/crd check each): q1 (questionnaire only with doc-needed), q2, q3,
q4, q5 (never satisfied, never satisfied-pa-id), q6, q7 (every reason has text), q8, q9.
"""

from __future__ import annotations

import calendar
import copy
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from cds_service import orders
from cds_service.cards.codes import UCUM
from cds_service.cards.dose import DoseLimit, dose_limit, fmt, product_unit, whole
from cds_service.cards.model import Evaluation, NotEvaluated
from cds_service.cards.texts import CardTexts
from cds_service.crd.codes import (
    ACT_REASON,
    ACT_REASON_CODES,
    BILLING_OPTIONS_URL,
    COVERAGE_DETAIL,
    COVERAGE_INFORMATION_URL,
    DETAIL_DISPLAY,
    HCPCS,
    NDC,
    OUR_DETAIL,
    REASON_SYSTEM,
    REASONS,
)
from cds_service.crd.payer import (
    IN_FORCE,
    NOT_HANDLED,
    NOT_IN_FORCE,
    STATUS_UNKNOWN,
    Payer,
    Primary,
    choose_coverage,
    load_payer,
    primary_coverage,
)
from cds_service.policy.model import Decision, Outcome, Status
from fhir_mappings.content_memo import ContentMemo
from fhir_mappings.coverage import CoverageRecord
from fhir_mappings.facts import PolicyFacts
from fhir_mappings.product_unit import ProductUnit
from fhir_mappings.valuesets import normalise_ndc, normalise_system


def add_months(start: date, months: int) -> date:
    """`start` plus whole months, the day clamped to the month's end."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def policy_limit(facts: PolicyFacts, decision: Decision) -> DoseLimit | None:
    """The dose limit of the evaluated section, when the section has one."""
    for result in decision.criteria:
        if result.check in {"dose-limit", "dose-increase-limit"}:
            return dose_limit(facts, result)
    return None


def _detail(
    code: str,
    value_key: str,
    value: Any,
    qualification: str | None,
    *,
    category: str = "cat-limitation",
) -> dict[str, Any]:
    """One `detail` with a crd-coverage-detail code."""
    coding = {"system": COVERAGE_DETAIL, "code": code, "display": DETAIL_DISPLAY[code]}
    parts: list[dict[str, Any]] = [
        {"url": "category", "valueCode": category},
        {"url": "code", "valueCodeableConcept": {"coding": [coding]}},
        {"url": "value", value_key: value},
    ]
    if qualification:
        parts.append({"url": "qualification", "valueString": qualification})
    return {"url": "detail", "extension": parts}


def _quantity_details(
    limit: DoseLimit, texts: CardTexts, unit: ProductUnit | None
) -> list[dict[str, Any]]:
    if limit.kind == "weight" and limit.limit_mg_per_kg_per_day is not None:
        qualification = texts.text("coverage", "weight_qualification")
        if limit.limit_mg_per_day is not None and limit.weight_kg is not None:
            qualification = (
                f"{fmt(limit.limit_mg_per_day)} mg per day at the recorded weight of "
                f"{fmt(limit.weight_kg)} kg"
            )
        quantity = {
            "value": whole(limit.limit_mg_per_kg_per_day),
            "unit": "mg/kg/day",
            "system": UCUM,
            "code": "mg/kg/d",
        }
        return [_detail("allowed-quantity", "valueQuantity", quantity, qualification)]
    details = []
    if limit.limit_mg_per_day is not None:
        quantity = {
            "value": whole(limit.limit_mg_per_day),
            "unit": "mg/day",
            "system": UCUM,
            "code": "mg/d",
        }
        details.append(_detail("allowed-quantity", "valueQuantity", quantity, None))
    if limit.limit_units_per_day is not None and unit is not None:
        quantity = {
            "value": whole(limit.limit_units_per_day),
            "unit": f"{unit.name}/day",
            "system": UCUM,
            "code": f"{unit.ucum}/d",
        }
        details.append(
            _detail(
                "allowed-quantity",
                "valueQuantity",
                quantity,
                texts.text("coverage", "unit_qualification"),
            )
        )
    return details


def _listed(texts: Iterable[str]) -> str:
    """Sentences as one list: each once, without its full stop, joined with "; "."""
    return "; ".join(dict.fromkeys(t.strip().rstrip(". ") for t in texts if t.strip()))


def _reason(decision: Decision, texts: CardTexts) -> str:
    """The reason text, in words: a person reads it where the EHR shows the coverage
    information, so it names no clause or section id (each criterion's id is the code of
    its own detail, for systems)."""
    where = {"policy_id": decision.policy_id}
    if decision.outcome is Outcome.CRITERIA_MET:
        months = decision.approval_months
        if months:
            return texts.text("coverage", "criteria_met_with_duration", months=months, **where)
        return texts.text("coverage", "criteria_met", **where)
    if decision.outcome is Outcome.DOCUMENTATION_NEEDED:
        needed = _listed(
            r.documentation or r.reason for r in decision.criteria if r.status is Status.UNKNOWN
        )
        return texts.text("coverage", "documentation_needed", needed=needed, **where)
    if decision.outcome is Outcome.CRITERIA_NOT_MET:
        failed = _listed(r.reason for r in decision.criteria if r.status is Status.NOT_MET)
        return texts.text("coverage", "criteria_not_met", failed=failed, **where)
    policies = decision.policy_references or texts.off_label_references
    names = {"policy_id": decision.policy_id, "off_label_policy": policies[0]}
    if len(policies) > 1:
        others = " / ".join(policies[1:])
        return texts.text("coverage", "off_label_with_others", other_policies=others, **names)
    return texts.text("coverage", "off_label", **names)


def _description(decision: Decision, texts: CardTexts) -> str:
    words = {
        Outcome.CRITERIA_MET: "criteria met, prior authorization request needed",
        Outcome.DOCUMENTATION_NEEDED: "prior authorization needs documentation",
        Outcome.CRITERIA_NOT_MET: "not covered as ordered",
        Outcome.OFF_LABEL_REVIEW: "off-label review needed",
    }
    return texts.text("coverage", "description", outcome=words[decision.outcome])


ASSERTION_NAMESPACE: Final = uuid.uuid5(
    uuid.NAMESPACE_URL, "https://anakinra-cds.example.org/crd/coverage-assertion"
)
"""Namespace of the name-based (version 5) UUIDs used as coverage-assertion-ids."""

METADATA: Final = frozenset({"date", "coverage-assertion-id"})
"""Parts that say when and under which id an assertion was made, not what it says."""


@dataclass(frozen=True)
class PackBilling:
    """A pack's billing codes (drug.json `billing`) and version."""

    version: str
    hcpcs: tuple[str, ...] = ()
    ndc: tuple[str, ...] = ()


@dataclass(frozen=True)
class CoverageCall:
    """What the coverage information of one call needs besides each order's decision."""

    payer: Payer
    enabled: bool = True
    """False: the caller switched coverage information off (no action, and the evaluation
    says so)."""
    shown_by_client: bool = True
    """False: the client does not show coverage information to the prescriber (its
    trusted-issuers entry, or `CDS_CLIENT_SHOWS_COVERAGE_INFORMATION` with auth off): the
    action is still sent, and the criteria-met card with it (`cards.render`)."""
    policy_base_url: str | None = None
    """The service's public base URL: the policy link is `<base>/policies/<pack id>`;
    None: no policy link."""
    packs: Mapping[str, PackBilling] = field(default_factory=dict)
    """Per pack id."""
    coverages: tuple[CoverageRecord, ...] = ()
    """The patient's active Coverages (for orders that could not be evaluated; an
    evaluated order's own facts carry them)."""
    drafts: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Draft order resources by `MedicationRequest/<id>` (for orders not evaluated)."""
    order_packs: Mapping[str, str] = field(default_factory=dict)
    """Pack id of each order not evaluated whose drug is known."""
    patient_ref: str = ""
    """`Patient/<id>` of the call (part of the assertion ids of orders not evaluated)."""
    record_incomplete: bool = False
    """Some record data could not be read for the call (see `CallContext.missing_data`)."""
    questionnaires: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Documentation templates: Questionnaire canonicals (`url|version`) per pack id, named
    by a documentation-needed order's extension (`pipeline.pack_questionnaires`)."""
    sent_coverages: tuple[CoverageRecord, ...] | None = None
    """Every Coverage the call sent or the service read, whatever its status
    (`read_all_coverages`): the call's primary Coverage is chosen among them
    (`payer.primary_coverage`). None (renderer tests, tools): the active Coverages of each
    order's facts / `coverages`, the payer's own picked as `payer.choose_coverage` does."""
    coverage_unreadable: bool = False
    """The patient's Coverages could not be read for technical reasons (the prefetch key
    is missing and the FHIR server did not give it): no Coverage to assert for, and no
    400 for a Coverage the service never saw."""


def demo_call() -> CoverageCall:
    """The packaged demo payer, nothing else (renderer tests and tools)."""
    return CoverageCall(payer=load_payer())


@dataclass(frozen=True)
class CoverageResult:
    """The system action of one order (None when none is sent) and its evaluation note."""

    action: dict[str, Any] | None
    note: dict[str, Any]


def _part(url: str, key: str, value: Any) -> dict[str, Any]:
    return {"url": url, key: value}


def _code(url: str, code: str) -> dict[str, Any]:
    return {"url": url, "valueCode": code}


def _reason_part(text: str, code: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"text": text}
    if code is not None:
        concept["coding"] = [{"system": REASON_SYSTEM, "code": code, "display": REASONS[code]}]
        if code in ACT_REASON_CODES:
            concept["coding"].append({"system": ACT_REASON, "code": code, "display": REASONS[code]})
    return _part("reason", "valueCodeableConcept", concept)


def order_ndcs(order: Mapping[str, Any]) -> list[str]:
    """The NDCs the order names (its code, a contained Medication), as sent."""
    found: list[str] = []
    for concept in orders.order_concepts(order):
        codings = concept.get("coding")
        for coding in codings if isinstance(codings, list) else []:
            if not isinstance(coding, Mapping):
                continue
            system, code = coding.get("system"), coding.get("code")
            if normalise_system(system if isinstance(system, str) else None) != NDC:
                continue
            if isinstance(code, str) and normalise_ndc(code) and code not in found:
                found.append(code.strip())
    return found


def _bare_system(system: Any) -> str:
    text = normalise_system(system if isinstance(system, str) else None)
    return text.split("://", 1)[-1].casefold()


def billing_options(order: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(system, code) of every code the client sent in the CRD `ext-billing-options`
    extension of the order's drug concept (billopt-3), as sent."""
    found: list[tuple[str, str]] = []
    for concept in orders.order_concepts(order):
        extensions = concept.get("extension")
        for ext in extensions if isinstance(extensions, list) else []:
            if not isinstance(ext, Mapping) or ext.get("url") != BILLING_OPTIONS_URL:
                continue
            value = ext.get("valueCodeableConcept")
            codings = value.get("coding") if isinstance(value, Mapping) else None
            for coding in codings if isinstance(codings, list) else []:
                if not isinstance(coding, Mapping):
                    continue
                system, code = coding.get("system"), coding.get("code")
                if isinstance(system, str) and isinstance(code, str) and code.strip():
                    found.append((system, code.strip()))
    return found


@dataclass(frozen=True)
class Billing:
    """The billing codes of an answer and the assumptions made to get them (impl-5)."""

    hcpcs: tuple[str, ...]
    ndc: tuple[str, ...]
    assumptions: tuple[str, ...]


def choose_billing(order: Mapping[str, Any], billing: PackBilling) -> Billing:
    """The pack's HCPCS codes, narrowed to those the client sent in billing options when it
    sent any of them; the order's NDC (or one sent in billing options) in the pack's
    spelling when it is one of the pack's, else every NDC of the pack. Each choice the
    request did not make explicit is said in `assumptions`."""
    sent = billing_options(order)
    hcpcs_system, ndc_system = _bare_system(HCPCS), _bare_system(NDC)
    sent_hcpcs = [c for s, c in sent if _bare_system(s) == hcpcs_system]
    sent_ndc = [c for s, c in sent if _bare_system(s) == ndc_system]
    others = [c for s, c in sent if _bare_system(s) not in (hcpcs_system, ndc_system)]
    said: list[str] = []
    hcpcs = tuple(c for c in billing.hcpcs if c in sent_hcpcs) or billing.hcpcs
    unused = [c for c in [*sent_hcpcs, *others] if c not in hcpcs]
    if unused:
        said.append(
            f"Billing options {', '.join(unused)} sent with the order were considered; "
            "they are not billing codes of the policy's product"
        )
    if hcpcs and not any(c in sent_hcpcs for c in hcpcs):
        said.append(f"HCPCS {', '.join(hcpcs)} assumed: the billing code of the policy's product")
    pack_ndc = {normalise_ndc(code): code for code in billing.ndc}
    ordered = [pack_ndc.get(normalise_ndc(c), c) for c in [*order_ndcs(order), *sent_ndc]]
    ndc = tuple(dict.fromkeys(ordered)) or billing.ndc
    if not ordered and ndc:
        said.append("the order names no NDC: every package (NDC) of the policy's product is listed")
    said.append("no network status was assumed: the answer is the same in and out of network")
    return Billing(hcpcs, ndc, tuple(said))


def billing_codes(order: Mapping[str, Any], billing: PackBilling) -> list[dict[str, Any]]:
    """billingCode parts of `choose_billing`: HCPCS codes, then NDCs."""
    chosen = choose_billing(order, billing)
    return [
        *(
            _part("billingCode", "valueCoding", {"system": HCPCS, "code": code})
            for code in chosen.hcpcs
        ),
        *(
            _part("billingCode", "valueCoding", {"system": NDC, "code": code})
            for code in chosen.ndc
        ),
    ]


def assumptions_detail(order: Mapping[str, Any], billing: PackBilling) -> list[dict[str, Any]]:
    """One `instructions` detail saying what the answer assumed beyond the request (impl-5)."""
    said = choose_billing(order, billing).assumptions
    return [
        _detail(
            "instructions",
            "valueString",
            ("; ".join(said) + ".")[:1].upper() + ("; ".join(said) + ".")[1:],
            "Assumptions made for this answer",
            category="cat-other",
        )
    ]


def criterion_details(decision: Decision) -> list[dict[str, Any]]:
    """One detail per policy criterion: its id, outcome (met / not-met / unknown) and reason."""
    out = []
    for result in decision.criteria:
        code = {
            "coding": [{"system": OUR_DETAIL, "code": "criterion", "display": "Policy criterion"}],
            "text": f"{decision.policy_id} {result.id}",
        }
        parts = [
            _code("category", "cat-decisional"),
            _part("code", "valueCodeableConcept", code),
            _part("value", "valueString", result.status.value),
        ]
        if result.reason:
            parts.append(_part("qualification", "valueString", result.reason))
        out.append({"url": "detail", "extension": parts})
    return out


def policy_link(base_url: str | None, pack_id: str) -> list[dict[str, Any]]:
    if not base_url:
        return []
    url = f"{base_url.rstrip('/')}/policies/{pack_id}"
    return [
        _detail(
            "policy-link",
            "valueUrl",
            url,
            "The policy text the decision follows",
            category="cat-other",
        )
    ]


def assertion_id(
    *, order_ref: str, patient_ref: str, pack_id: str, version: str, parts: Sequence[Any]
) -> str:
    """A name-based UUID of what was decided: the order, the patient, the policy pack and
    version, and every part of the assertion but `date` and the id itself. The same
    decision gives the same id; any change in what is asserted (outcome, coverage, reason,
    details, billing codes, expiry) gives a new one."""
    content = [p for p in parts if not (isinstance(p, Mapping) and p.get("url") in METADATA)]
    named = {
        "order": order_ref,
        "patient": patient_ref,
        "pack": pack_id,
        "version": version,
        "assertion": content,
    }
    return _ASSERTION_IDS.get(named, lambda: _assertion_id_now(named))


def _assertion_id_now(named: Mapping[str, Any]) -> str:
    name = json.dumps(named, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(uuid.uuid5(ASSERTION_NAMESPACE, name))


_ASSERTION_IDS: Final[ContentMemo[str]] = ContentMemo(capacity=4_096)
"""Assertion ids by the content named (the same decision for the same order is asserted on
every call of an ordering session: order-select, each edit, order-sign)."""


def forget_assertion_ids() -> None:
    """Empty the memo of assertion ids (the benchmark's first-sight figures)."""
    _ASSERTION_IDS.clear()


def _content_key(extension: Mapping[str, Any]) -> list[str] | None:
    parts = extension.get("extension")
    if not isinstance(parts, list):
        return None
    return sorted(
        json.dumps(p, sort_keys=True, ensure_ascii=False)
        for p in parts
        if not (isinstance(p, Mapping) and p.get("url") == "date")
    )


def _coverage_of(extension: Mapping[str, Any]) -> str | None:
    for part in extension.get("extension") or []:
        if isinstance(part, Mapping) and part.get("url") == "coverage":
            value = part.get("valueReference")
            if isinstance(value, Mapping) and isinstance(value.get("reference"), str):
                return str(value["reference"])
    return None


def _ours(item: Any) -> bool:
    return isinstance(item, Mapping) and item.get("url") == COVERAGE_INFORMATION_URL


def carries_same(order: Mapping[str, Any], extension: Mapping[str, Any]) -> bool:
    """True when the draft already carries `extension` (the same parts; `date` aside)."""
    existing = order.get("extension")
    carried = [e for e in (existing if isinstance(existing, list) else []) if _ours(e)]
    if not carried:
        return False  # the usual draft: nothing to compare
    want = _content_key(extension)
    return any(_content_key(e) == want for e in carried)


def _json_copy(value: Any) -> Any:
    """A deep copy of parsed JSON (objects and arrays copied, scalars shared); anything
    else is copied with `copy.deepcopy`."""
    kind = type(value)
    if kind is dict:
        return {key: _json_copy(item) for key, item in value.items()}
    if kind is list:
        return [_json_copy(item) for item in value]
    if kind is str or kind is int or kind is float or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


def with_extension(order: Mapping[str, Any], extension: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the draft with `extension` in place of the coverage information it carries
    for the same Coverage; every other extension is kept."""
    resource: dict[str, Any] = _json_copy(dict(order))
    coverage = _coverage_of(extension)
    existing = resource.get("extension")
    kept = [
        e
        for e in (existing if isinstance(existing, list) else [])
        if not (_ours(e) and _coverage_of(e) in (coverage, None))
    ]
    resource["extension"] = [*kept, dict(extension)]
    return resource


def _finish(
    parts: list[dict[str, Any]],
    *,
    order_ref: str,
    patient_ref: str,
    pack_id: str,
    version: str,
    today: date,
    expiry: date | None,
    call: CoverageCall,
) -> dict[str, Any]:
    """Add date, id, contact and expiry (in the extension's element order)."""
    if call.payer.contact is not None:
        parts.append(_part("contact", "valueContactDetail", call.payer.contact.to_fhir()))
    if expiry is not None:
        parts.append(_part("expiry-date", "valueDate", expiry.isoformat()))
    ident = assertion_id(
        order_ref=order_ref, patient_ref=patient_ref, pack_id=pack_id, version=version, parts=parts
    )
    tail = [p for p in parts if p["url"] in ("contact", "expiry-date")]
    body = [p for p in parts if p["url"] not in ("contact", "expiry-date")]
    body += [
        _part("date", "valueDate", today.isoformat()),
        _part("coverage-assertion-id", "valueString", ident),
    ]
    return {"url": COVERAGE_INFORMATION_URL, "extension": body + tail}


def coverage_information(
    facts: PolicyFacts,
    decision: Decision,
    *,
    coverage_ref: str,
    today: date,
    texts: CardTexts,
    call: CoverageCall,
    unconfirmed: str | None = None,
) -> dict[str, Any]:
    """One `ext-coverage-information` extension for an evaluated order (module table).
    `unconfirmed`: why the Coverage cannot be confirmed in force (no status): never
    covered, `indeterminate` unless the answer is not-covered anyway."""
    outcome = decision.outcome
    reason = _reason(decision, texts)
    parts: list[dict[str, Any]] = [_part("coverage", "valueReference", {"reference": coverage_ref})]
    reason_code = None
    if outcome is Outcome.CRITERIA_NOT_MET:
        parts.append(_code("covered", "not-covered"))
    else:
        covered = "covered"
        if unconfirmed is not None:
            covered = "indeterminate"
            reason = f"Coverage cannot be confirmed: {unconfirmed}. " + reason
        elif outcome is Outcome.OFF_LABEL_REVIEW:
            covered = "conditional"
        elif outcome is Outcome.DOCUMENTATION_NEEDED and call.record_incomplete:
            covered = "indeterminate"
            reason_code = "technical"
            reason = (
                "Some of the patient's record could not be read from the EHR, so coverage "
                "cannot be determined yet. " + reason
            )
        parts += [
            _code("covered", covered),
            _code("pa-needed", "auth-needed"),
            _code("doc-needed", "clinical"),
            _code("doc-purpose", "withpa"),
        ]
        if outcome is Outcome.OFF_LABEL_REVIEW and unconfirmed is None:
            parts.append(_code("info-needed", "OTH"))
    billing = call.packs.get(decision.policy_id, PackBilling(decision.policy_version))
    parts += billing_codes(facts.order.resource, billing)
    parts.append(_reason_part(reason, reason_code))
    limit = policy_limit(facts, decision) if outcome is not Outcome.OFF_LABEL_REVIEW else None
    if limit is not None:
        parts += _quantity_details(limit, texts, product_unit(facts, decision.policy_id))
    expiry = None
    if outcome is Outcome.CRITERIA_MET and decision.approval_months:
        expiry = add_months(today, decision.approval_months)
        period = {"start": today.isoformat(), "end": expiry.isoformat()}
        parts.append(
            _detail("allowed-period", "valuePeriod", period, "Approval duration of the policy")
        )
    if outcome is Outcome.OFF_LABEL_REVIEW:
        parts.append(_detail("instructions", "valueString", reason, None, category="cat-other"))
    parts += assumptions_detail(facts.order.resource, billing)
    parts += criterion_details(decision)
    parts += policy_link(call.policy_base_url, decision.policy_id)
    if outcome is Outcome.DOCUMENTATION_NEEDED:
        parts += [
            _part("questionnaire", "valueCanonical", q)
            for q in call.questionnaires.get(decision.policy_id, ())
        ]
    return _finish(
        parts,
        order_ref=facts.order.ref,
        patient_ref=facts.patient_ref,
        pack_id=decision.policy_id,
        version=decision.policy_version,
        today=today,
        expiry=expiry,
        call=call,
    )


def indeterminate_information(
    item: NotEvaluated,
    *,
    order: Mapping[str, Any],
    pack_id: str,
    coverage_ref: str,
    today: date,
    call: CoverageCall,
) -> dict[str, Any]:
    """The extension for an order of a pack's drug that could not be evaluated: covered
    indeterminate, reason code technical with the reason in text (IG resp-43)."""
    reason = (
        "Coverage could not be determined: " + item.reason.rstrip(". ") + ". The order still needs "
        "prior authorization; send the request for manual review."
    )
    return _plain_answer(
        [_code("covered", "indeterminate"), _code("pa-needed", "auth-needed")],
        _reason_part(reason, "technical"),
        order=order,
        order_ref=item.order_ref,
        pack_id=pack_id,
        coverage_ref=coverage_ref,
        today=today,
        call=call,
    )


def not_in_force_information(
    primary: Primary,
    *,
    order: Mapping[str, Any],
    order_ref: str,
    pack_id: str,
    today: date,
    call: CoverageCall,
) -> dict[str, Any]:
    """This payer's Coverage that is not in force (resp-45: no-active-coverage) or is
    another member's (resp-44: no-member-found): not-covered, whatever the chart says."""
    assert primary.coverage is not None
    code = "no-active-coverage" if primary.state == NOT_IN_FORCE else "no-member-found"
    reason = f"Not covered: {primary.reason}. Check the patient's insurance before ordering."
    return _plain_answer(
        [_code("covered", "not-covered")],
        _reason_part(reason, code),
        order=order,
        order_ref=order_ref,
        pack_id=pack_id,
        coverage_ref=primary.coverage.ref,
        today=today,
        call=call,
    )


def _plain_answer(
    decision: Sequence[dict[str, Any]],
    reason: dict[str, Any],
    *,
    order: Mapping[str, Any],
    order_ref: str,
    pack_id: str,
    coverage_ref: str,
    today: date,
    call: CoverageCall,
) -> dict[str, Any]:
    """An answer with no criteria detail: the Coverage, the `decision` codes, the billing
    codes, one reason, the stated assumptions and the policy link, with no expiry."""
    billing = call.packs.get(pack_id, PackBilling(""))
    parts: list[dict[str, Any]] = [
        _part("coverage", "valueReference", {"reference": coverage_ref}),
        *decision,
        *billing_codes(order, billing),
        reason,
        *assumptions_detail(order, billing),
        *policy_link(call.policy_base_url, pack_id),
    ]
    return _finish(
        parts,
        order_ref=order_ref,
        patient_ref=call.patient_ref,
        pack_id=pack_id,
        version=billing.version,
        today=today,
        expiry=None,
        call=call,
    )


def call_primary(
    call: CoverageCall,
    order: Mapping[str, Any],
    today: date,
    fallback: Sequence[CoverageRecord] | None = None,
) -> Primary:
    """The primary Coverage of `order` (`payer.primary_coverage` over the call's Coverages;
    without them, the payer's own among `fallback` / the call's active ones)."""
    if call.coverage_unreadable:
        why = "the patient's Coverage could not be read from the EHR, so nothing is asserted"
        return Primary(None, NOT_HANDLED, why)
    if call.sent_coverages is None:
        choice = choose_coverage(
            call.coverages if fallback is None else fallback, call.payer, order
        )
        state = IN_FORCE if choice.coverage is not None else NOT_HANDLED
        return Primary(choice.coverage, state, choice.reason)
    return primary_coverage(call.sent_coverages, call.payer, order, call.patient_ref or None, today)


def rejection(call: CoverageCall, orders_: Sequence[Mapping[str, Any]], today: date) -> str | None:
    """Why the call must be refused (CRD hook-13, payer mode `reject`): the first order whose
    primary Coverage this payer does not handle; None when every one is handled (or the
    payer answers without coverage information, or the Coverages could not be read)."""
    if not call.payer.rejects or call.sent_coverages is None or call.coverage_unreadable:
        return None
    for order in orders_:
        primary = call_primary(call, order, today)
        if primary.state == NOT_HANDLED:
            return primary.reason
    return None


def _note(status: str, reason: str, coverage: str | None = None) -> dict[str, Any]:
    note = {"status": status, "reason": reason}
    if coverage is not None:
        note["coverage"] = coverage
    return note


def _action(
    order: Mapping[str, Any], extension: Mapping[str, Any], description: str, why: str
) -> CoverageResult:
    coverage = _coverage_of(extension)
    if carries_same(order, extension):
        return CoverageResult(
            None,
            _note(
                "unchanged",
                why + "; the draft order already carries this assertion, so it is not sent again",
                coverage,
            ),
        )
    resource = with_extension(order, extension)
    action = {"type": "update", "description": description, "resource": resource}
    return CoverageResult(action, _note("sent", why, coverage))


SWITCHED_OFF: Final = "coverage information was switched off for this call"


def coverage_for_evaluation(
    evaluation: Evaluation, *, call: CoverageCall, today: date, texts: CardTexts
) -> CoverageResult:
    """The system action (or none) and the evaluation note of one evaluated order."""
    if not call.enabled:
        return CoverageResult(None, _note("switched-off", SWITCHED_OFF))
    facts, decision = evaluation.facts, evaluation.decision
    choice = call_primary(call, facts.order.resource, today, facts.coverages)
    if choice.coverage is None or choice.state == NOT_HANDLED:
        return CoverageResult(None, _note("not-sent", choice.reason))
    if choice.state not in (IN_FORCE, STATUS_UNKNOWN):
        extension = not_in_force_information(
            choice,
            order=facts.order.resource,
            order_ref=facts.order.ref,
            pack_id=decision.policy_id,
            today=today,
            call=call,
        )
        description = texts.text("coverage", "description", outcome="not covered: no coverage")
        return _action(facts.order.resource, extension, description, choice.reason)
    extension = coverage_information(
        facts,
        decision,
        coverage_ref=choice.coverage.ref,
        today=today,
        texts=texts,
        call=call,
        unconfirmed=choice.reason if choice.state == STATUS_UNKNOWN else None,
    )
    return _action(facts.order.resource, extension, _description(decision, texts), choice.reason)


def coverage_for_not_evaluated(
    item: NotEvaluated, *, call: CoverageCall, today: date, texts: CardTexts
) -> CoverageResult:
    """An order that could not be evaluated: an `indeterminate` assertion for the payer's
    Coverage when the order is known to be for a pack's drug; never covered."""
    if not call.enabled:
        return CoverageResult(None, _note("switched-off", SWITCHED_OFF))
    order = call.drafts.get(item.order_ref)
    pack_id = call.order_packs.get(item.order_ref)
    if pack_id is None or not item.drug_known:
        why = "the order's drug could not be told, so nothing is asserted about its coverage"
        return CoverageResult(None, _note("not-sent", why))
    if order is None:
        return CoverageResult(None, _note("not-sent", "the draft order could not be read"))
    choice = call_primary(call, order, today)
    if choice.coverage is None or choice.state == NOT_HANDLED:
        return CoverageResult(None, _note("not-sent", choice.reason))
    if choice.state not in (IN_FORCE, STATUS_UNKNOWN):
        extension = not_in_force_information(
            choice, order=order, order_ref=item.order_ref, pack_id=pack_id, today=today, call=call
        )
        description = texts.text("coverage", "description", outcome="not covered: no coverage")
        return _action(order, extension, description, choice.reason)
    extension = indeterminate_information(
        item,
        order=order,
        pack_id=pack_id,
        coverage_ref=choice.coverage.ref,
        today=today,
        call=call,
    )
    description = texts.text("coverage", "description", outcome="coverage could not be determined")
    return _action(order, extension, description, choice.reason)
