"""Completed documentation templates as evidence for the next decision.

A QuestionnaireResponse to one of the service's questionnaires, found among the call's
resources (the `questionnaireResponses` prefetch key, or read from the FHIR server), is read
into chart records (`fhir_mappings.questionnaire_answers`) before the mapping runs; after the
decision, evidence that rests on those records names the answer
(`QuestionnaireResponse/<id>#<linkId>`) and the criterion's reason says it was documented by
the prescriber. Answers fill what the chart lacks and add records; they never remove or
change one: a documented birth date that contradicts the chart's is not used, and the
criterion's reason reports the conflict. Without a response among the resources nothing
here runs and nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from cds_service.dtr.questionnaire import all_link_ids, generate
from cds_service.policy.model import CriterionResult, Decision
from cds_service.policy.packs import Pack, Registry
from cds_service.prefetch import PrefetchResult
from fhir_mappings.questionnaire_answers import AnswerIssue, Documented, documented

DOCUMENTED = "documented by the prescriber"

_GENERATED: dict[tuple[str, str], dict[str, Any]] = {}


def questionnaire_of(pack: Pack) -> Mapping[str, Any]:
    """The pack's questionnaire (linkIds and codes do not depend on the base URL)."""
    key = (pack.id, pack.version)
    if key not in _GENERATED:
        _GENERATED[key] = generate(pack, "").questionnaire
    return _GENERATED[key]


def pack_of_canonical(registry: Registry, canonical: str) -> Pack | None:
    """The pack whose questionnaire `canonical` names (`.../Questionnaire/<pack id>`,
    optionally `|<version>`; any base: the service's public URL may have changed)."""
    plain, _, version = canonical.partition("|")
    pack = registry.packs.get(plain.rstrip("/").rsplit("/", 1)[-1])
    if pack is None or "/Questionnaire/" not in plain or (version and version != pack.version):
        return None
    return pack


def _group_codes(registry: Registry) -> dict[str, list[Mapping[str, Any]]]:
    codes: dict[str, list[Mapping[str, Any]]] = {}

    def walk(items: Sequence[Mapping[str, Any]]) -> None:
        for item in items:
            if item.get("type") == "group" and item.get("code"):
                codes[str(item["linkId"])] = list(item["code"])
            walk(item.get("item") or [])

    for pack in registry.packs.values():
        walk(questionnaire_of(pack)["item"])
    return codes


def _patient_ref(context: Mapping[str, Any]) -> str | None:
    patient = context.get("patientId")
    if not isinstance(patient, str) or not patient:
        return None
    return patient if patient.startswith("Patient/") else f"Patient/{patient}"


def has_responses(resources: Sequence[Mapping[str, Any]]) -> bool:
    return any(r.get("resourceType") == "QuestionnaireResponse" for r in resources)


def read_answers(
    registry: Registry,
    context: Mapping[str, Any],
    resources: Sequence[Mapping[str, Any]],
    today: date,
) -> tuple[list[Mapping[str, Any]], Documented]:
    """The call's resources with the records the responses add (a Patient whose birth date
    an answer filled replaces the chart's copy), and what was read."""
    if not has_responses(resources):
        return list(resources), Documented()
    resources = [_known_items_only(registry, r) for r in resources]
    found = documented(
        resources,
        patient_ref=_patient_ref(context),
        as_of=today,
        accepts=lambda canonical: pack_of_canonical(registry, canonical) is not None,
        group_codes=_group_codes(registry),
    )
    if not found.resources:
        return list(resources), found
    replaced = {
        (str(r.get("resourceType")), str(r.get("id")))
        for r in found.resources
        if r.get("resourceType") == "Patient"
    }
    kept = [r for r in resources if (str(r.get("resourceType")), str(r.get("id"))) not in replaced]
    return [*kept, *found.resources], found


PREFETCH_KEY = "questionnaireResponses"
"""The prefetch key (hooks/services/prior-auth-order-sign.json) of answered templates."""


def quiet(result: PrefetchResult) -> PrefetchResult:
    """The prefetch result without a failed `questionnaireResponses` read: most patients have
    no answered template and many FHIR servers do not search QuestionnaireResponse, so its
    absence is no gap in the chart (no criterion is decided from the lack of one)."""
    if PREFETCH_KEY not in result.missing and PREFETCH_KEY not in result.failures:
        return result
    return replace(
        result,
        missing=tuple(k for k in result.missing if k != PREFETCH_KEY),
        failures={k: v for k, v in result.failures.items() if k != PREFETCH_KEY},
        reasons={k: v for k, v in result.reasons.items() if k != PREFETCH_KEY},
    )


def _known_items_only(registry: Registry, resource: Mapping[str, Any]) -> Mapping[str, Any]:
    """A response to one of our questionnaires without the items the questionnaire does
    not have (never used: `$evaluate` reports them); any other resource unchanged."""
    if resource.get("resourceType") != "QuestionnaireResponse":
        return resource
    pack = pack_of_canonical(registry, str(resource.get("questionnaire") or ""))
    if pack is None:
        return resource
    known = set(all_link_ids(questionnaire_of(pack)["item"]))

    def keep(items: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        kept = []
        for item in items:
            if str(item.get("linkId")) not in known:
                continue
            children = item.get("item")
            kept.append({**item, "item": keep(children)} if isinstance(children, list) else item)
        return kept

    return {**resource, "item": keep(resource.get("item") or [])}


def _criterion_of(link_id: str) -> str:
    return link_id.split("/", 1)[0]


def relabel(decision: Decision, found: Documented) -> Decision:
    """Evidence from answers names the answer; the reason says it was documented by the
    prescriber; a conflict between an answer and the chart is added to its criterion's
    reason."""
    if not found.responses:
        return decision
    conflicts: dict[str, list[str]] = {}
    for issue in found.issues:
        if "contradicts" in issue.message or "does not fit" in issue.message:
            conflicts.setdefault(_criterion_of(issue.link_id), []).append(issue.message)
    criteria = []
    for result in decision.criteria:
        criteria.append(_relabel_one(result, found.provenance, conflicts.get(result.id, [])))
    return replace(decision, criteria=tuple(criteria))


def _relabel_one(
    result: CriterionResult, provenance: Mapping[str, str], conflicts: Sequence[str]
) -> CriterionResult:
    evidence = tuple(provenance.get(ref, ref) for ref in result.evidence)
    reason = result.reason
    if any(ref in provenance for ref in result.evidence):
        reason = f"{reason.rstrip('.')} ({DOCUMENTED})."
    if conflicts:
        reason = f"{reason.rstrip('.')}. Documentation conflict: {'; '.join(conflicts)}."
    if evidence == result.evidence and reason == result.reason:
        return result
    return replace(result, evidence=evidence, reason=reason)


def unknown_items(questionnaire: Mapping[str, Any], response: Mapping[str, Any]) -> list[str]:
    """LinkIds of the response that the questionnaire does not have."""
    known = set(all_link_ids(questionnaire["item"]))
    out: list[str] = []

    def walk(items: Sequence[Mapping[str, Any]]) -> None:
        for item in items:
            link = str(item.get("linkId"))
            if link not in known:
                out.append(link)
            walk(item.get("item") or [])
            for answer in item.get("answer") or []:
                walk(answer.get("item") or [])

    walk(response.get("item") or [])
    return out


__all__ = ["AnswerIssue", "has_responses", "read_answers", "relabel", "unknown_items"]
