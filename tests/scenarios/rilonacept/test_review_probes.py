"""Review probes of IL1.RIL.01 (rilonacept, Arcalyst): charts shaped as EHRs and
laboratories send them, built in code from the scenario builder, posted to the service and
compared with what the policy text and the pack's INTERPRETATION.md call for.

Each probe names the criteria it is about (the others are free) and, when the outcome is
part of the finding, the outcome. Where the service is known to answer otherwise the probe
is in KNOWN_GAPS (strict xfail: it turns red as soon as the service is fixed).
Findings are written up in the review notes of the session.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.scenarios import harness
from tests.scenarios.rilonacept import builder as b
from tests.scenarios.rilonacept import make_scenarios as m

Json = dict[str, Any]
Edit = Callable[[b.Chart], None]
ARCALYST = "MedicationRequest/draft-arcalyst"
KINERET = "MedicationRequest/draft-kineret"
POLICY_ID = "IL1.RIL.01"


@dataclass(frozen=True)
class Probe:
    name: str
    base: str
    why: str
    edits: Sequence[Edit]
    criteria: dict[str, str]
    outcome: str | None = None
    section: str | None = None


def _below_reporting_limit(oid: str, code: b.Code, limit: float, unit: str, high: float) -> Json:
    """A result under the assay's reporting limit ("<" comparator) with the laboratory's
    reference range (high bound) in the same unit."""
    out = b.lab(oid, code, b.day(-60), limit, unit, ref_high=high, text="Inflammation marker")
    out["valueQuantity"]["comparator"] = "<"
    return out


def _above_measuring_range(oid: str, limit: float, unit: str, high: float) -> Json:
    """A result over the assay's measuring range (">" comparator)."""
    out = b.lab(oid, b.CRP, b.day(-60), limit, unit, ref_high=high, text="CRP", flag="H")
    out["valueQuantity"]["comparator"] = ">"
    return out


def _second_phenotype(chart: b.Chart) -> None:
    """The problem list also holds NOMID / CINCA (the phenotype Arcalyst is not covered for)
    next to Muckle-Wells."""
    chart.conditions.append(
        b.condition("cond-nomid", [b.NOMID_SCT], "CINCA syndrome (NOMID)", onset="2012-01-09")
    )


def _hearing_loss_observed(value: Json) -> Edit:
    """Hearing loss charted as an exam Observation (SNOMED CT finding code) with `value`
    instead of the problem-list Condition: the other typical symptom (urticaria) stays."""

    def edit(chart: b.Chart) -> None:
        chart.conditions = [c for c in chart.conditions if c["id"] != "cond-hearing"]
        observation: Json = {
            "resourceType": "Observation",
            "id": "obs-hearing",
            "status": "final",
            "category": [b.concept(b.OBS_CATEGORY, "exam", "Exam")],
            "code": {
                "coding": [
                    {"system": b.SCT, "code": "60700002", "display": "Sensorineural hearing loss"}
                ]
            },
            "subject": b.PATIENT_REF,
            "effectiveDateTime": b.day(-100),
        }
        observation.update(value)
        chart.observations.append(observation)

    return edit


def _coded_answer(code: str) -> Json:
    """A coded answer as some EHRs send it: the SNOMED CT code with no display or text."""
    return {"valueCodeableConcept": {"coding": [{"system": b.SCT, "code": code}]}}


def _caps_text(text: str) -> Edit:
    """The CAPS Condition coded M04.2 only, with the clinician's words as its text."""

    def edit(chart: b.Chart) -> None:
        chart.conditions[0] = b.condition("cond-caps", [b.CAPS_ICD], text, onset="2009-05-11")

    return edit


PROBES: list[Probe] = [
    Probe(
        "caps_ia1_m04_2_rule_out_muckle_wells",
        "caps",
        "I.A.1: M04.2 with the text 'CAPS, r/o Muckle-Wells' does not confirm the phenotype: "
        "unknown, never met",
        [_caps_text("CAPS, r/o Muckle-Wells")],
        {"I.A.1": "unknown"},
        "documentation-needed",
    ),
    Probe(
        "caps_ia1_m04_2_not_fcas",
        "caps",
        "I.A.1: M04.2 with the text 'CAPS - not FCAS, phenotype pending' does not confirm "
        "the phenotype: unknown, never met",
        [_caps_text("CAPS - not FCAS, phenotype pending")],
        {"I.A.1": "unknown"},
        "documentation-needed",
    ),
    Probe(
        "caps_ia1_m04_2_muckle_wells_text",
        "caps",
        "I.A.1: M04.2 with the text 'Muckle-Wells syndrome' confirms the phenotype: met",
        [_caps_text("Muckle-Wells syndrome")],
        {"I.A.1": "met"},
        "criteria-met",
    ),
    Probe(
        "caps_ia4_hearing_loss_observed_answer_no",
        "caps",
        "I.A.4.b: hearing loss charted with the answer SNOMED 373067005 'No' (code only) is "
        "absent: one symptom left, unknown, never met",
        [_hearing_loss_observed(_coded_answer("373067005"))],
        {"I.A.4": "unknown"},
        "documentation-needed",
    ),
    Probe(
        "caps_ia4_hearing_loss_observed_not_detected",
        "caps",
        "I.A.4.b: hearing loss charted with the answer SNOMED 260415000 'Not detected' "
        "(code only) is absent: unknown, never met",
        [_hearing_loss_observed(_coded_answer("260415000"))],
        {"I.A.4": "unknown"},
        "documentation-needed",
    ),
    Probe(
        "caps_ia4_hearing_loss_observation_not_performed",
        "caps",
        "I.A.4.b: a hearing-loss Observation with dataAbsentReason 'not-performed' shows no "
        "finding: unknown, never met",
        [
            _hearing_loss_observed(
                {
                    "dataAbsentReason": b.concept(
                        "http://terminology.hl7.org/CodeSystem/data-absent-reason",
                        "not-performed",
                        "Not Performed",
                    )
                }
            )
        ],
        {"I.A.4": "unknown"},
        "documentation-needed",
    ),
    Probe(
        "caps_ia4_hearing_loss_observed_answer_yes",
        "caps",
        "I.A.4.b: hearing loss charted with the answer SNOMED 373066001 'Yes': two symptoms, met",
        [_hearing_loss_observed(_coded_answer("373066001"))],
        {"I.A.4": "met"},
        "criteria-met",
    ),
    Probe(
        "caps_ia4_saa_below_reporting_limit_over_range",
        "caps",
        "I.A.4.a: the only marker is SAA '< 10 mg/L' with a range up to 6.4 mg/L: the value "
        "may be 3 or 9, so it cannot tell whether SAA was above normal: unknown, never met",
        [
            m.replace_observation(
                "obs-crp-1", _below_reporting_limit("obs-saa-1", b.SAA, 10, "mg/L", 6.4)
            )
        ],
        {"I.A.4": "unknown"},
        "documentation-needed",
    ),
    Probe(
        "caps_ia4_crp_below_reporting_limit_mg_dl",
        "caps",
        "I.A.4.a: CRP '< 1.0 mg/dL' against a range up to 0.9 mg/dL: cannot tell whether it "
        "was above 0.9: unknown, never met",
        [
            m.replace_observation(
                "obs-crp-1", _below_reporting_limit("obs-crp-1", b.CRP, 1.0, "mg/dL", 0.9)
            )
        ],
        {"I.A.4": "unknown"},
        "documentation-needed",
    ),
    Probe(
        "caps_ia4_crp_below_reporting_limit_normal",
        "caps",
        "I.A.4.a: CRP '< 3 mg/L' against a range up to 10 mg/L is normal: not-met",
        [
            m.replace_observation(
                "obs-crp-1", _below_reporting_limit("obs-crp-1", b.CRP, 3, "mg/L", 10)
            )
        ],
        {"I.A.4": "not-met"},
    ),
    Probe(
        "caps_ia4_crp_above_measuring_range",
        "caps",
        "I.A.4.a: CRP '> 160 mg/L' (over the measuring range) is above 10 mg/L: met",
        [m.replace_observation("obs-crp-1", _above_measuring_range("obs-crp-1", 160, "mg/L", 10))],
        {"I.A.4": "met"},
        "criteria-met",
    ),
    Probe(
        "dira_ib4_crp_above_a_value_under_the_limit",
        "dira",
        "I.B.4: CRP '> 2 mg/L' may be any value over 2, so it cannot tell whether it is "
        "below 5 mg/L (remission): unknown, never met",
        [m.replace_observation("obs-crp-1", _above_measuring_range("obs-crp-1", 2, "mg/L", 10))],
        {"I.B.4": "unknown"},
        "documentation-needed",
    ),
    Probe(
        "caps_ia1_muckle_wells_and_nomid_recorded",
        "caps",
        "I.A.1 / III.B: the chart records both Muckle-Wells and NOMID / CINCA; Arcalyst is "
        "not covered for NOMID, so the phenotype must be confirmed: never criteria-met",
        [_second_phenotype],
        {"I.A.1": "unknown"},
        "documentation-needed",
    ),
]

KNOWN_GAPS: dict[str, str] = {}


def _params() -> list[Any]:
    out = []
    for probe in PROBES:
        marks = []
        if probe.name in KNOWN_GAPS:
            marks.append(pytest.mark.xfail(reason=KNOWN_GAPS[probe.name], strict=True))
        out.append(pytest.param(probe, id=probe.name, marks=marks))
    return out


def _request(probe: Probe) -> Json:
    chart = b.Chart()
    m.BASES[probe.base][0](chart)
    for edit in probe.edits:
        edit(chart)
    return chart.request(f"review-{probe.name}")


def test_known_gaps_are_probes() -> None:
    assert set(KNOWN_GAPS) <= {p.name for p in PROBES}


@pytest.mark.parametrize("probe", _params())
def test_review_probe(probe: Probe, order_date_client: FlaskClient) -> None:
    response = harness.post_scenario(order_date_client, _request(probe))
    evaluation = harness.the_evaluation(response, ARCALYST)
    assert evaluation.get("policy", {}).get("id") == POLICY_ID
    expect: Json = {"criteria": probe.criteria}
    if probe.outcome is not None:
        expect["outcome"] = probe.outcome
    diffs = harness.field_differences(
        evaluation, expect, tuple(k for k in expect if k != "criteria")
    )
    diffs += harness.criteria_differences(evaluation, expect)
    assert not diffs, f"{probe.name} ({probe.why}):\n" + "\n".join(diffs)


@dataclass(frozen=True)
class TwoOrders:
    """A call with two draft orders of two packs."""

    name: str
    hook: str
    drafts: Sequence[Callable[[], Json]] = field(default_factory=tuple)


def _two_drafts_request(hook: str) -> Json:
    chart = b.Chart()
    m.caps_chart(chart)
    chart.drafts = [b.arcalyst_draft(), b.kineret_draft()]
    body = chart.request(f"review-two-packs-{hook}")
    if hook == "order-select":
        body["hook"] = "order-select"
        body["context"]["selections"] = [ARCALYST, KINERET]
    return body


@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
def test_kineret_and_arcalyst_in_one_call_each_decided_by_its_pack(
    hook: str, order_date_client: FlaskClient
) -> None:
    """Each draft is decided by its own pack, and each pack sees the other draft as a
    combination (IL1.RIL.01 I.A.6 lists anakinra; NH.PHAR.244 III.B lists rilonacept):
    neither order is criteria-met, and each has a card naming the other drug."""
    response = harness.post_scenario(order_date_client, _two_drafts_request(hook))
    arcalyst = harness.the_evaluation(response, ARCALYST)
    kineret = harness.the_evaluation(response, KINERET)
    assert arcalyst["policy"]["id"] == POLICY_ID
    assert kineret["policy"]["id"] == "NH.PHAR.244"
    statuses = {c["id"]: c["status"] for c in arcalyst["criteria"]}
    assert statuses["I.A.6"] == "not-met"
    kineret_statuses = {c["id"]: c["status"] for c in kineret["criteria"]}
    assert kineret_statuses["III.B"] == "not-met"
    assert arcalyst["outcome"] != "criteria-met"
    assert kineret["outcome"] != "criteria-met"
    arcalyst_cards = " ".join(c["summary"] for c in harness.cards_for(response, ARCALYST))
    kineret_cards = " ".join(c["summary"] for c in harness.cards_for(response, KINERET))
    assert "anakinra" in arcalyst_cards.lower()
    assert "rilonacept" in kineret_cards.lower()
