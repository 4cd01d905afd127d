"""The coverage-information extension and system action, from decisions (pure functions)."""

from __future__ import annotations

import copy
import dataclasses
from datetime import date
from typing import Any

import pytest

from cds_service.cards import CardTexts, Evaluation, NotEvaluated, render_response
from cds_service.crd.codes import COVERAGE_INFORMATION_URL, HCPCS, NDC
from cds_service.crd.coverage import (
    CoverageCall,
    PackBilling,
    billing_codes,
    coverage_for_evaluation,
    coverage_for_not_evaluated,
)
from cds_service.policy.model import Outcome
from cds_service.policy.packs import default_registry
from tests.cards.builders import (
    NOW,
    SETTINGS,
    coverage_call,
    decision,
    facts,
    medication_request,
    plan_coverage,
    uuid_counter,
)
from tests.cards.cases import CASES
from tests.crd.invariants import violations

TODAY = NOW.date()


def _texts(policy_id: str = "NH.PHAR.244") -> CardTexts:
    return default_registry().texts_for(policy_id)


def _extension(action: dict[str, Any]) -> dict[str, Any]:
    (ext,) = [e for e in action["resource"]["extension"] if e["url"] == COVERAGE_INFORMATION_URL]
    found: dict[str, Any] = ext
    return found


def _parts(ext: dict[str, Any], url: str) -> list[Any]:
    return [p for p in ext["extension"] if p["url"] == url]


def _code(ext: dict[str, Any], url: str) -> str | None:
    found = _parts(ext, url)
    return found[0]["valueCode"] if found else None


def _all_extensions() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, build in sorted(CASES.items()):
        hook, evaluations = build()
        response = render_response(
            hook,
            evaluations,
            settings=SETTINGS,
            uuid_factory=uuid_counter(),
            now=NOW,
            coverage=coverage_call(),
        )
        for action in response.get("systemActions", []):
            out.append((name, _extension(action)))
    incomplete = dataclasses.replace(coverage_call(), record_incomplete=True)
    _, evaluations = CASES["documentation_needed"]()
    (item,) = evaluations
    assert isinstance(item, Evaluation)
    result = coverage_for_evaluation(item, call=incomplete, today=TODAY, texts=_texts())
    assert result.action is not None
    out.append(("documentation_needed_record_incomplete", _extension(result.action)))
    out.append(("not_evaluated", _extension(_indeterminate_action())))
    return out


def _indeterminate_action() -> dict[str, Any]:
    order = medication_request("kineret-9")
    call = dataclasses.replace(
        coverage_call(),
        coverages=(plan_coverage("Coverage/cov-1"),),
        drafts={"MedicationRequest/kineret-9": order},
        order_packs={"MedicationRequest/kineret-9": "NH.PHAR.244"},
        patient_ref="Patient/p1",
    )
    item = NotEvaluated("MedicationRequest/kineret-9", "the patient's record could not be read")
    result = coverage_for_not_evaluated(item, call=call, today=TODAY, texts=_texts())
    assert result.action is not None
    return result.action


@pytest.mark.parametrize(
    ("name", "ext"), _all_extensions(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_every_extension_keeps_every_invariant(name: str, ext: dict[str, Any]) -> None:
    assert violations(ext) == [], name


def test_the_invariant_checker_catches_each_broken_rule() -> None:
    ext = _extension(_indeterminate_action())
    broken = copy.deepcopy(ext)
    broken["extension"] = [p for p in broken["extension"] if p["url"] != "reason"]
    assert "crd-ci-q9" in violations(broken)
    broken = copy.deepcopy(ext)
    broken["extension"].append({"url": "pa-needed", "valueCode": "satisfied"})
    assert "pa-needed occurs 2 times" in violations(broken)
    broken = copy.deepcopy(ext)
    broken["extension"].append({"url": "questionnaire", "valueCanonical": "http://x/Q/1"})
    assert "crd-ci-q1" in violations(broken)


@pytest.mark.parametrize(
    ("name", "covered", "pa", "doc", "info"),
    [
        ("criteria_met", "covered", "auth-needed", "clinical", None),
        ("documentation_needed", "covered", "auth-needed", "clinical", None),
        ("dose_over_ra", "not-covered", None, None, None),
        ("off_label", "conditional", "auth-needed", "clinical", "OTH"),
    ],
)
def test_outcome_maps_to_the_ig_codes(
    name: str, covered: str, pa: str | None, doc: str | None, info: str | None
) -> None:
    exts = dict(_all_extensions())
    ext = exts[name]
    assert (_code(ext, "covered"), _code(ext, "pa-needed")) == (covered, pa)
    assert (_code(ext, "doc-needed"), _code(ext, "info-needed")) == (doc, info)
    if doc is not None:
        assert _code(ext, "doc-purpose") == "withpa"


def test_what_cannot_be_determined_is_indeterminate_with_the_technical_reason() -> None:
    for name in ("documentation_needed_record_incomplete", "not_evaluated"):
        ext = dict(_all_extensions())[name]
        assert _code(ext, "covered") == "indeterminate"
        (reason,) = _parts(ext, "reason")
        concept = reason["valueCodeableConcept"]
        assert concept["coding"][0]["code"] == "technical"
        assert concept["text"]


def test_criteria_met_carries_expiry_contact_policy_link_and_one_detail_per_criterion() -> None:
    _hook, evaluations = CASES["criteria_met"]()
    (item,) = evaluations
    assert isinstance(item, Evaluation)
    ext = dict(_all_extensions())["criteria_met"]
    assert _parts(ext, "date")[0]["valueDate"] == TODAY.isoformat()
    assert _parts(ext, "expiry-date")[0]["valueDate"] == "2026-09-02"
    contact = _parts(ext, "contact")[0]["valueContactDetail"]
    assert {t["system"] for t in contact["telecom"]} == {"phone", "url", "email"}
    details = [p["extension"] for p in _parts(ext, "detail")]
    codes = [d[1]["valueCodeableConcept"] for d in details]
    criteria = [c["text"] for c in codes if c["coding"][0]["code"] == "criterion"]
    assert criteria == [f"NH.PHAR.244 {r.id}" for r in item.decision.criteria]
    (link,) = [
        d for d in details if d[1]["valueCodeableConcept"]["coding"][0]["code"] == "policy-link"
    ]
    assert link[2]["valueUrl"] == "https://cds.example.org/policies/NH.PHAR.244"


def test_billing_codes_of_each_pack() -> None:
    registry = default_registry()
    kineret = registry.packs["NH.PHAR.244"].drug
    arcalyst = registry.packs["IL1.RIL.01"].drug
    order = medication_request()
    first = billing_codes(order, PackBilling("v", kineret.billing_hcpcs, kineret.billing_ndc))
    assert [(p["valueCoding"]["system"], p["valueCoding"]["code"]) for p in first] == [
        (NDC, code) for code in kineret.billing_ndc
    ]
    second = billing_codes(order, PackBilling("v", arcalyst.billing_hcpcs, arcalyst.billing_ndc))
    assert [(p["valueCoding"]["system"], p["valueCoding"]["code"]) for p in second] == [
        (HCPCS, "J2793"),
        *[(NDC, code) for code in arcalyst.billing_ndc],
    ]


def test_the_order_ndc_narrows_the_billing_codes_to_the_ordered_package() -> None:
    registry = default_registry()
    drug = registry.packs["NH.PHAR.244"].drug
    order = medication_request()
    digits = drug.billing_ndc[1].replace("-", "")
    order["medicationCodeableConcept"]["coding"].append(
        {"system": "http://hl7.org/fhir/sid/ndc", "code": digits}
    )
    parts = billing_codes(order, PackBilling("v", drug.billing_hcpcs, drug.billing_ndc))
    assert [p["valueCoding"]["code"] for p in parts] == [drug.billing_ndc[1]]


def _sent(evaluation: Evaluation, call: CoverageCall | None = None) -> dict[str, Any]:
    result = coverage_for_evaluation(
        evaluation, call=call or coverage_call(), today=TODAY, texts=_texts()
    )
    assert result.action is not None
    return _extension(result.action)


def _assertion_id(ext: dict[str, Any]) -> str:
    return str(_parts(ext, "coverage-assertion-id")[0]["valueString"])


def test_the_assertion_id_is_derived_from_what_was_decided() -> None:
    met = Evaluation(facts(), decision(Outcome.CRITERIA_MET, approval_months=6))
    again = Evaluation(facts(), decision(Outcome.CRITERIA_MET, approval_months=6))
    assert _sent(met) == _sent(again)
    ids = {
        _assertion_id(_sent(met)),
        _assertion_id(_sent(Evaluation(facts(), decision(Outcome.CRITERIA_NOT_MET)))),
        _assertion_id(_sent(Evaluation(facts(coverage_refs=("Coverage/cov-2",)), met.decision))),
        _assertion_id(
            _sent(Evaluation(facts(), dataclasses.replace(met.decision, policy_version="2099-01")))
        ),
        _assertion_id(_sent(Evaluation(facts(medication_request("kineret-2")), met.decision))),
    }
    assert len(ids) == 5


def test_the_date_alone_does_not_change_the_assertion_id() -> None:
    evaluation = Evaluation(facts(), decision(Outcome.CRITERIA_NOT_MET))
    day_one = coverage_for_evaluation(
        evaluation, call=coverage_call(), today=date(2026, 3, 2), texts=_texts()
    )
    day_two = coverage_for_evaluation(
        evaluation, call=coverage_call(), today=date(2026, 3, 3), texts=_texts()
    )
    assert day_one.action is not None
    assert day_two.action is not None
    assert _assertion_id(_extension(day_one.action)) == _assertion_id(_extension(day_two.action))


def test_a_draft_carrying_the_same_assertion_gets_no_action_again() -> None:
    evaluation = Evaluation(facts(), decision(Outcome.CRITERIA_NOT_MET))
    first = coverage_for_evaluation(evaluation, call=coverage_call(), today=TODAY, texts=_texts())
    assert first.action is not None
    assert first.note["status"] == "sent"
    updated = first.action["resource"]
    second = coverage_for_evaluation(
        Evaluation(facts(updated), evaluation.decision),
        call=coverage_call(),
        today=date(2026, 3, 9),
        texts=_texts(),
    )
    assert second.action is None
    assert second.note["status"] == "unchanged"
    changed = coverage_for_evaluation(
        Evaluation(facts(updated), decision(Outcome.CRITERIA_MET, approval_months=6)),
        call=coverage_call(),
        today=TODAY,
        texts=_texts(),
    )
    assert changed.action is not None
    (ext,) = [
        e for e in changed.action["resource"]["extension"] if e["url"] == COVERAGE_INFORMATION_URL
    ]
    assert _code(ext, "covered") == "covered"


def test_only_our_assertion_for_the_same_coverage_is_replaced() -> None:
    other_payer = {
        "url": COVERAGE_INFORMATION_URL,
        "extension": [
            {"url": "coverage", "valueReference": {"reference": "Coverage/other"}},
            {"url": "covered", "valueCode": "covered"},
        ],
    }
    stale = {
        "url": COVERAGE_INFORMATION_URL,
        "extension": [
            {"url": "coverage", "valueReference": {"reference": "Coverage/cov-1"}},
            {"url": "covered", "valueCode": "covered"},
        ],
    }
    unrelated = {"url": "http://example.org/other-extension", "valueString": "kept"}
    resource = medication_request()
    resource["extension"] = [unrelated, other_payer, stale]
    result = coverage_for_evaluation(
        Evaluation(facts(resource), decision(Outcome.CRITERIA_NOT_MET)),
        call=coverage_call(),
        today=TODAY,
        texts=_texts(),
    )
    assert result.action is not None
    extensions = result.action["resource"]["extension"]
    assert extensions[:2] == [unrelated, other_payer]
    assert len(extensions) == 3
    assert _code(extensions[2], "covered") == "not-covered"
    rest = {k: v for k, v in result.action["resource"].items() if k != "extension"}
    assert rest == {k: v for k, v in resource.items() if k != "extension"}


def test_switched_off_gives_no_action_and_says_so() -> None:
    evaluation = Evaluation(facts(), decision(Outcome.CRITERIA_MET, approval_months=6))
    off = dataclasses.replace(coverage_call(), enabled=False)
    result = coverage_for_evaluation(evaluation, call=off, today=TODAY, texts=_texts())
    assert result.action is None
    assert result.note["status"] == "switched-off"


def test_another_payers_coverage_never_gets_an_assertion() -> None:
    other = dataclasses.replace(
        facts(), coverages=(plan_coverage("Coverage/cov-1", payor="Organization/other"),)
    )
    for outcome in Outcome:
        result = coverage_for_evaluation(
            Evaluation(other, decision(outcome, approval_months=6)),
            call=coverage_call(),
            today=TODAY,
            texts=_texts(),
        )
        assert result.action is None
        assert result.note["status"] == "not-sent"
        assert "another payer" in result.note["reason"]


def test_an_assertion_id_kept_from_an_earlier_call_is_the_one_worked_out_anew() -> None:
    from cds_service.crd import coverage

    contents: list[list[Any]] = [
        [{"url": "covered", "valueCode": "covered"}],
        [{"url": "covered", "valueCode": "not-covered"}],
        [{"url": "dose", "valueDecimal": 1}],
        [{"url": "dose", "valueDecimal": 1.0}],
        [{"url": "dose", "valueDecimal": 1e-05}],
        [{"url": "flag", "valueBoolean": True}],
        [{"url": "note", "valueString": "é \u2028 \x7f"}],
        [{"url": "note", "valueString": None}],
        [{"b": 1, "a": 2}],
        [{"a": 2, "b": 1}],
    ]
    coverage.forget_assertion_ids()
    ids = []
    for _ in range(2):  # first worked out, then kept
        for parts in contents:
            named = {"order": "MedicationRequest/1", "patient": "Patient/1", "pack": "p"}
            got = coverage.assertion_id(
                order_ref="MedicationRequest/1",
                patient_ref="Patient/1",
                pack_id="p",
                version="1",
                parts=parts,
            )
            assert got == coverage._assertion_id_now({**named, "version": "1", "assertion": parts})
            ids.append(got)
    first = ids[: len(contents)]
    assert ids[len(contents) :] == first
    # Different assertions, different ids (the key order of one part is not a difference).
    assert len(set(first)) == len(contents) - 1
    assert first[-1] == first[-2]
