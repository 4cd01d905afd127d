"""A QuestionnaireResponse prefilled from the service's own decision about an order.

The decision (`cds_service.policy.engine.evaluate`, the one the hook call made) says for
every criterion of the order's section what the chart showed. Each criterion the chart
decided (met or not met) gets its `chart-finding` answered with the check's reason, marked
`information-origin: auto` with the resources it rests on; each criterion the chart could
not decide (unknown) is left unanswered: those are the open items, the very criteria the
documentation-needed card lists. Nothing is re-decided here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from cds_service.dtr.questionnaire import CHART_FINDING, DIAGNOSIS_ID, pathway_system
from cds_service.dtr.urls import fhir_base
from cds_service.policy.model import CriterionResult, Decision, Status

SDC_RESPONSE = "http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaireresponse"
INFORMATION_ORIGIN = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin"
QR_CONTEXT = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/qr-context"


def answer_source_url(public_base_url: str) -> str:
    """Our extension on a prefilled answer: one `valueReference` per chart resource the
    answer was read from (DTR's information-origin says how, not from what)."""
    return f"{fhir_base(public_base_url)}/StructureDefinition/answer-source"


def auto_origin(sources: Iterable[str], public_base_url: str) -> list[dict[str, Any]]:
    """The extensions of an answer the service filled from the chart."""
    extensions: list[dict[str, Any]] = [
        {"url": INFORMATION_ORIGIN, "extension": [{"url": "source", "valueCode": "auto"}]}
    ]
    url = answer_source_url(public_base_url)
    extensions.extend(
        {"url": url, "valueReference": {"reference": ref}} for ref in dict.fromkeys(sources)
    )
    return extensions


# ----- enableWhen (the subset the generator writes: "=" on coded answers) --------------------


def _enabled(item: Mapping[str, Any], answers: Mapping[str, tuple[str, str]]) -> bool:
    conditions = item.get("enableWhen") or []
    if not conditions:
        return True
    results = []
    for cond in conditions:
        coding = cond.get("answerCoding") or {}
        given = answers.get(str(cond.get("question")))
        results.append(
            cond.get("operator") == "="
            and given is not None
            and given == (coding.get("system"), coding.get("code"))
        )
    return any(results) if item.get("enableBehavior") == "any" else all(results)


def enabled_groups(
    items: Iterable[Mapping[str, Any]], answers: Mapping[str, tuple[str, str]]
) -> list[tuple[tuple[str, ...], Mapping[str, Any]]]:
    """(ancestor linkIds, item) of every enabled item that holds a `chart-finding`: the
    criterion groups a prescriber sees once `answers` (linkId -> (system, code)) are given."""
    out: list[tuple[tuple[str, ...], Mapping[str, Any]]] = []

    def walk(nodes: Iterable[Mapping[str, Any]], parents: tuple[str, ...]) -> None:
        for node in nodes:
            if not _enabled(node, answers):
                continue
            link = str(node["linkId"])
            children = node.get("item") or []
            if any(str(c.get("linkId")) == f"{link}/{CHART_FINDING}" for c in children):
                out.append((parents, node))
                continue
            walk(children, (*parents, link))

    walk(items, ())
    return out


# ----- the response --------------------------------------------------------------------------


def _coding_answer(option_list: Sequence[Mapping[str, Any]], code: str) -> dict[str, Any] | None:
    for option in option_list:
        coding = option.get("valueCoding") or {}
        if coding.get("code") == code:
            return {"valueCoding": dict(coding)}
    return None


def _finding_words(result: CriterionResult) -> str:
    return f"{result.status.value}: {result.reason}"


def _not_asked(section: str) -> str:
    return f"not asked: section {section} of the policy decides this request without it"


def diagnosis_sources(decision: Decision) -> list[str]:
    return [ref for r in decision.criteria if r.check == "diagnosis" for ref in r.evidence]


def prefill(
    questionnaire: Mapping[str, Any],
    decision: Decision,
    *,
    response_id: str,
    patient_ref: str,
    order_ref: str,
    now: datetime,
    public_base_url: str,
) -> dict[str, Any]:
    """The QuestionnaireResponse for `decision`'s order (status in-progress)."""
    top = questionnaire["item"]
    by_link = {str(i["linkId"]): i for i in top}
    indication = _coding_answer(by_link["indication"]["answerOption"], decision.indication)
    pathway = _coding_answer(by_link["pathway"]["answerOption"], decision.pathway.value)
    answers: dict[str, tuple[str, str]] = {}
    items: list[dict[str, Any]] = []
    diagnosis_refs = diagnosis_sources(decision)
    for link, answer, sources in (
        ("indication", indication, diagnosis_refs),
        ("pathway", pathway, []),
    ):
        if answer is None:
            continue
        coding = answer["valueCoding"]
        answers[link] = (coding["system"], coding["code"])
        answer["extension"] = auto_origin(sources, public_base_url)
        items.append({"linkId": link, "text": by_link[link]["text"], "answer": [answer]})
    results = {r.id: r for r in decision.criteria}
    tree: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for parents, group in enabled_groups(top, answers):
        link = str(group["linkId"])
        result = results.get(link)
        if result is not None and result.status is Status.UNKNOWN:
            continue  # open: the prescriber documents it
        if result is not None:
            words, sources = _finding_words(result), list(result.evidence)
        elif link == DIAGNOSIS_ID:
            words = "the chart's diagnosis is decided by the section's own criteria"
            sources = diagnosis_refs
        else:
            words, sources = _not_asked(decision.section), []
        finding = {
            "linkId": f"{link}/{CHART_FINDING}",
            "text": "What the chart shows",
            "answer": [{"valueString": words, "extension": auto_origin(sources, public_base_url)}],
        }
        tree.setdefault(parents, []).append(
            {"linkId": link, "text": group.get("text"), "item": [finding]}
        )
    items.extend(_nest(top, tree))
    return {
        "resourceType": "QuestionnaireResponse",
        "id": response_id,
        "meta": {"profile": [SDC_RESPONSE]},
        "extension": [{"url": QR_CONTEXT, "valueReference": {"reference": order_ref}}],
        "questionnaire": f"{questionnaire['url']}|{questionnaire['version']}",
        "status": "in-progress",
        "subject": {"reference": patient_ref},
        "authored": now.isoformat(timespec="seconds"),
        "item": items,
    }


def _nest(
    items: Iterable[Mapping[str, Any]],
    tree: Mapping[tuple[str, ...], list[dict[str, Any]]],
    parents: tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The answered criterion groups under their ancestors, in questionnaire order; an
    ancestor with nothing answered below it is left out."""
    out: list[dict[str, Any]] = []
    leaves = {str(g["linkId"]): g for g in tree.get(parents, [])}
    for item in items:
        link = str(item["linkId"])
        if link in leaves:
            out.append(leaves[link])
            continue
        if item.get("type") != "group":
            continue
        path = (*parents, link)
        if any(key[: len(path)] == path for key in tree):
            children = _nest(item.get("item") or [], tree, path)
            if children:
                out.append({"linkId": link, "text": item.get("text"), "item": children})
    return out


def open_items(questionnaire: Mapping[str, Any], response: Mapping[str, Any]) -> list[str]:
    """The criterion groups a prescriber still has to document: enabled by the response's
    indication and pathway answers, and with nothing answered in the response."""
    answers: dict[str, tuple[str, str]] = {}
    for item in response.get("item", []):
        for answer in item.get("answer", []):
            coding = answer.get("valueCoding")
            if coding:
                answers[str(item["linkId"])] = (coding.get("system"), coding.get("code"))
    answered = set(_answered_groups(response.get("item", [])))
    return [
        str(group["linkId"])
        for _, group in enabled_groups(questionnaire["item"], answers)
        if str(group["linkId"]) not in answered
    ]


def _answered_groups(items: Iterable[Mapping[str, Any]]) -> Iterable[str]:
    for item in items:
        children = item.get("item") or []
        if any(_has_answer(c) for c in children):
            yield str(item["linkId"])
        yield from _answered_groups(children)


def _has_answer(item: Mapping[str, Any]) -> bool:
    if item.get("answer"):
        return True
    return any(_has_answer(c) for c in item.get("item") or [])


__all__ = ["enabled_groups", "open_items", "pathway_system", "prefill"]
