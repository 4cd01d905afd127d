"""Evaluate one order against a drug policy: `PolicyFacts` in, `Decision` out.

    policy = load_policy()                   # the packaged NH.PHAR.244, validated
    decision = evaluate(policy, facts, today)

`evaluate` is pure: no clock (`today` is used only when the order has no authoredOn),
no I/O. It picks the pathway (continued when the patient currently receives the drug),
the indication(s) claimed by the order's reasons or else the patient's diagnoses, runs
every criterion of the matching section plus the common ones (III.B, IV.C), and keeps
the most favourable result when several indications are claimed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from cds_service.policy.checks import CHECKS, EvalContext, Verdict
from cds_service.policy.checks_combinators import run_guarded
from cds_service.policy.definition import (
    DEFAULT_POLICY_PATH,
    CriterionDef,
    IndicationDef,
    Policy,
    PolicyFileError,
    SectionDef,
    read_policy_file,
)
from cds_service.policy.model import (
    CriterionResult,
    Decision,
    Outcome,
    Pathway,
    Status,
)
from fhir_mappings.facts import Diagnosis, MedicationRecord, PolicyFacts

__all__ = [
    "OTHER_INDICATION",
    "Policy",
    "PolicyFileError",
    "current_drug_records",
    "evaluate",
    "load_policy",
]

OTHER_INDICATION = "other"

_OUTCOME_RANK = {
    Outcome.CRITERIA_MET: 0,
    Outcome.DOCUMENTATION_NEEDED: 1,
    Outcome.CRITERIA_NOT_MET: 2,
    Outcome.OFF_LABEL_REVIEW: 3,
}


@lru_cache(maxsize=8)
def _load_cached(path: Path) -> Policy:
    from cds_service.policy.packs import MANIFEST_FILE, POLICY_FILE, load_pack

    if path.name == POLICY_FILE and (path.parent / MANIFEST_FILE).is_file():
        return load_pack(path.parent).policy
    return read_policy_file(path)


def load_policy(path: Path | None = None) -> Policy:
    """The policy from `path` (default: the packaged NH.PHAR.244 pack), validated. A
    policy file inside a pack folder (beside a pack.json) is loaded with its pack (the
    drug's name comes from drug.json); any other file on its own.

    Raises `PolicyFileError` naming the file and the place in it when it does not fit.
    Loads are cached by resolved path (policy files do not change while serving).
    """
    return _load_cached((path or DEFAULT_POLICY_PATH).resolve())


# --------------------------------------------------------------------------- pathway


def current_drug_records(
    policy: Policy, facts: PolicyFacts, order_date: date
) -> tuple[MedicationRecord, ...]:
    """Records showing the patient currently receives the policy's drug.

    Not the evaluated order, not another draft order: an active / on-hold record (unless
    its own end lies before the window), or one that ended within the window before the
    order date (its end, or its start when it has no end).
    """
    rules = policy.pathway
    window_start = order_date - timedelta(days=rules.continued_within_days)
    found: list[MedicationRecord] = []
    for rec in facts.medications:
        if policy.drug not in rec.valuesets or rec.is_draft_order:
            continue
        if rec.ref == facts.order.ref:
            continue
        status = rec.status.lower()
        if status in rules.ignored_statuses:
            continue
        if rec.start is not None and rec.start > order_date:
            continue
        last = rec.end or (None if status in rules.current_statuses else rec.start)
        if status in rules.current_statuses:
            if last is None or last >= window_start:
                found.append(rec)
        elif last is not None and last >= window_start:
            found.append(rec)
    # Active ones first, then the most recently ended.
    found.sort(
        key=lambda r: (
            r.status.lower() not in rules.current_statuses,
            -(r.end or r.start or date.min).toordinal(),
        )
    )
    return tuple(found)


def _first_drug_date(policy: Policy, facts: PolicyFacts, order_date: date) -> date | None:
    starts = [
        rec.start
        for rec in facts.medications
        if policy.drug in rec.valuesets
        and not rec.is_draft_order
        and rec.ref != facts.order.ref
        and rec.status.lower() not in policy.pathway.ignored_statuses
        and rec.start is not None
        and rec.start <= order_date
    ]
    return min(starts) if starts else None


# --------------------------------------------------------------------------- indication


@dataclass(frozen=True)
class _Claim:
    indication: IndicationDef
    diagnoses: tuple[Diagnosis, ...]

    @property
    def established(self) -> bool:
        """At least one confirmed, coded diagnosis claims the indication (a working or
        uncoded one alone does not establish it)."""
        sets = self.indication.valuesets
        if self.indication.with_gene is not None:
            sets = sets | self.indication.with_gene.valuesets
        return any(d.established(sets) for d in self.diagnoses)


def _claims(policy: Policy, facts: PolicyFacts, diagnoses: tuple[Diagnosis, ...]) -> list[_Claim]:
    claims: list[_Claim] = []
    for indication in policy.indications:
        matched = [d for d in diagnoses if d.valuesets & indication.valuesets]
        gene = indication.with_gene
        if gene is not None and any(
            g.gene.upper() == gene.gene.upper() for g in facts.genetic_results
        ):
            matched += [d for d in diagnoses if d.valuesets & gene.valuesets]
        if matched:
            claims.append(_Claim(indication, tuple(dict.fromkeys(matched))))
    return claims


def deciding_reasons(policy: Policy, facts: PolicyFacts) -> tuple[Diagnosis, ...]:
    """The order's reasons that name a diagnosis: every reason in a value set, and every
    reason coded in a complete system (ICD-10-CM) that the policy does not list as "not a
    diagnosis" (Z codes). Free text or a SNOMED CT code that matches nothing cannot decide."""
    rules = policy.order_reasons
    return tuple(
        reason
        for reason in facts.order.reasons
        if reason.valuesets or (reason.code and rules.decides(reason.system, reason.code))
    )


def claimed_indications(policy: Policy, facts: PolicyFacts) -> list[_Claim]:
    """INTERPRETATION "Indication": the order's own reason, when present, decides — a
    reason naming an indication the policy does not cover leads to I.E / II.C even when
    the patient also has a covered one. Without a deciding reason, every indication among
    the patient's diagnoses is claimed (the most favourable is reported).

    Working (provisional / differential / unconfirmed) and uncoded diagnoses claim their
    indication too: such a request is not off-label, it is a diagnosis to confirm or code
    (the diagnosis criterion says which). An established diagnosis of the same indication
    wins inside the criterion; across indications, the most favourable decision wins."""
    reasons = deciding_reasons(policy, facts)
    if reasons:
        return _claims(policy, facts, reasons)
    return _claims(policy, facts, facts.diagnoses) or _claims(
        policy, facts, _history_diagnoses(policy, facts)
    )


def _history_diagnoses(policy: Policy, facts: PolicyFacts) -> tuple[Diagnosis, ...]:
    """The confirmed Conditions of the condition history, whatever their clinical status
    (resolved, inactive, remission), in a value set of an indication marked
    `claim_from_history` (a recurring condition: a patient between episodes, or in
    remission on the drug, has every episode resolved). Working diagnoses and findings
    recorded as Observations never claim; refuted and entered-in-error Conditions are not
    in the history. Used only when neither the order's reasons nor the active diagnoses
    claim an indication, so they keep deciding as before; the section's own criteria
    (episodes, no new episode) still decide the request."""
    wanted = frozenset().union(*(i.valuesets for i in policy.indications if i.claim_from_history))
    if not wanted:
        return ()
    return tuple(
        Diagnosis(
            valuesets=record.valuesets & wanted,
            system=record.system,
            code=record.code,
            display=record.display,
            source="condition",
            refs=(record.ref,),
            recorded=record.recorded,
        )
        for record in facts.condition_history
        if record.valuesets & wanted
        and record.source != "observation"
        and record.verification == "confirmed"
    )


# --------------------------------------------------------------------------- evaluation


def _result(criterion: CriterionDef, indication: str, verdict: Verdict) -> CriterionResult:
    variant = criterion.variant(indication)
    documentation = None
    if verdict.status is Status.UNKNOWN:
        documentation = verdict.documentation or variant.documentation or criterion.documentation
    return CriterionResult(
        id=criterion.id,
        text=variant.text or criterion.text,
        check=variant.check,
        status=verdict.status,
        reason=verdict.reason,
        evidence=verdict.evidence,
        documentation=documentation,
        details=verdict.details,
    )


def _run(criterion: CriterionDef, facts: PolicyFacts, ctx: EvalContext) -> CriterionResult:
    variant = criterion.variant(ctx.indication)
    # An answer resting on nothing having been found is unknown when the EHR did not give
    # that data: "not found" proves nothing there.
    verdict = run_guarded(variant.check, variant.params, facts, ctx)
    return _result(criterion, ctx.indication, verdict)


def _outcome(section: SectionDef, results: tuple[CriterionResult, ...]) -> Outcome:
    statuses = {r.status for r in results}
    if Status.NOT_MET in statuses:
        return Outcome.CRITERIA_NOT_MET
    if section.off_label:
        return Outcome.OFF_LABEL_REVIEW
    if Status.UNKNOWN in statuses:
        return Outcome.DOCUMENTATION_NEEDED
    return Outcome.CRITERIA_MET


def _evaluate_section(
    policy: Policy, facts: PolicyFacts, section: SectionDef, ctx: EvalContext
) -> Decision:
    criteria = [*section.criteria, *(c for c in policy.common_criteria if c.applies_to(section.id))]
    results = tuple(_run(c, facts, ctx) for c in criteria)
    outcome = _outcome(section, results)
    documentation = tuple(
        dict.fromkeys(r.documentation for r in results if r.documentation is not None)
    )
    return Decision(
        policy_id=policy.id,
        policy_version=policy.version,
        order_ref=facts.order.ref,
        pathway=ctx.pathway,
        section=section.id,
        indication=ctx.indication,
        outcome=outcome,
        criteria=results,
        approval_months=section.approval_months if outcome is Outcome.CRITERIA_MET else None,
        documentation=documentation,
        policy_references=section.policy_references,
    )


DIAGNOSES_SOURCE = "Condition"
INDICATION_UNREAD = (
    "The diagnosis could not be decided: the EHR did not return the patient's conditions "
    "and the order names no reason."
)
NO_DIAGNOSIS = (
    "No diagnosis is recorded: the patient's record holds no condition and the order names "
    "no reason, so the use cannot be told to be covered or off-label."
)
INDICATION_DOCUMENTATION = "The diagnosis this {drug} order treats (ICD-10-CM or SNOMED CT)."


def _indication_unread(decision: Decision, drug: str, reason: str = INDICATION_UNREAD) -> Decision:
    """No covered indication was found, but the conditions were never read, or the record
    holds none at all: that is not an off-label request, it is a missing diagnosis
    (documentation needed, unless something else is already not met)."""
    criteria = tuple(
        replace(
            r,
            status=Status.UNKNOWN,
            reason=reason,
            evidence=(),
            documentation=INDICATION_DOCUMENTATION.format(drug=drug),
        )
        if r.check == "refer-to-policy"
        else r
        for r in decision.criteria
    )
    not_met = any(r.status is Status.NOT_MET for r in criteria)
    return replace(
        decision,
        criteria=criteria,
        outcome=Outcome.CRITERIA_NOT_MET if not_met else Outcome.DOCUMENTATION_NEEDED,
        documentation=tuple(
            dict.fromkeys(r.documentation for r in criteria if r.documentation is not None)
        ),
        policy_references=(),
    )


WORKING_DIAGNOSIS_ID = "Diagnosis"


def _working_diagnosis(
    decision: Decision, claim: _Claim, facts: PolicyFacts, ctx: EvalContext
) -> Decision:
    """A section claimed only by working or uncoded diagnoses can never be met. Sections
    with their own diagnosis criterion (I.A.1, I.B.1, I.C.1) already say so; the others
    (COVID-19, continued therapy) get a leading "Diagnosis" result: unknown, confirm or
    code the diagnosis, with the document to submit."""
    if any(r.check == "diagnosis" for r in decision.criteria):
        return decision
    indication = claim.indication
    verdict = CHECKS["diagnosis"].fn({"valuesets": indication.valuesets}, facts, ctx)
    if verdict.status is not Status.UNKNOWN:
        return decision
    result = CriterionResult(
        id=WORKING_DIAGNOSIS_ID,
        text=f"{indication.title}: the diagnosis is confirmed and coded.",
        check="diagnosis",
        status=Status.UNKNOWN,
        reason=verdict.reason,
        evidence=verdict.evidence,
        documentation=verdict.documentation
        or INDICATION_DOCUMENTATION.format(drug=ctx.drug_label or ctx.drug_valueset),
        details=verdict.details,
    )
    criteria = (result, *decision.criteria)
    not_met = any(r.status is Status.NOT_MET for r in criteria)
    return replace(
        decision,
        criteria=criteria,
        outcome=Outcome.CRITERIA_NOT_MET if not_met else Outcome.DOCUMENTATION_NEEDED,
        approval_months=None,
        documentation=tuple(
            dict.fromkeys(r.documentation for r in criteria if r.documentation is not None)
        ),
    )


CONFLICT_ID = "Diagnosis"


def _conflicting_diagnosis(decision: Decision, claim: _Claim, claims: list[_Claim]) -> Decision:
    """An indication whose pack names contradicting indications (`conflicts_with`: another
    phenotype of the same disease) cannot be met while an established diagnosis of one of
    them is recorded too: the prescriber confirms which one the order treats (a leading
    unknown "Diagnosis" result, or the section's own diagnosis criterion made unknown; a
    not-met result elsewhere still decides)."""
    conflicting = [
        other
        for other in claims
        if other.indication.name in claim.indication.conflicts_with and other.established
    ]
    if not conflicting:
        return decision
    names = " and ".join(o.indication.title for o in conflicting)
    evidence = tuple(dict.fromkeys(ref for o in conflicting for d in o.diagnoses for ref in d.refs))
    reason = (
        f"The record names {claim.indication.title} and also {names}: confirm which "
        "diagnosis this order treats."
    )
    documentation = (
        f"Chart notes confirming the diagnosis this order treats ({claim.indication.title}, "
        f"not {names})."
    )
    own = next((r for r in decision.criteria if r.check == "diagnosis"), None)
    if own is not None:
        # The section's own diagnosis criterion (I.A.1 ...) carries it; one it already does
        # not meet stays as it is.
        criteria = tuple(
            replace(
                r,
                status=Status.UNKNOWN,
                reason=reason,
                evidence=tuple(dict.fromkeys((*r.evidence, *evidence))),
                documentation=documentation,
            )
            if r is own and r.status is Status.MET
            else r
            for r in decision.criteria
        )
    else:
        result = CriterionResult(
            id=CONFLICT_ID,
            text=f"{claim.indication.title}: no other phenotype of the disease is recorded.",
            check="diagnosis",
            status=Status.UNKNOWN,
            reason=reason,
            evidence=evidence,
            documentation=documentation,
        )
        criteria = (result, *decision.criteria)
    if criteria == decision.criteria:
        return decision
    not_met = any(r.status is Status.NOT_MET for r in criteria)
    return replace(
        decision,
        criteria=criteria,
        outcome=Outcome.CRITERIA_NOT_MET if not_met else Outcome.DOCUMENTATION_NEEDED,
        approval_months=None,
        documentation=tuple(
            dict.fromkeys(r.documentation for r in criteria if r.documentation is not None)
        ),
    )


def _preference(decision: Decision) -> tuple[int, int, int]:
    not_met = sum(1 for r in decision.criteria if r.status is Status.NOT_MET)
    unknown = sum(1 for r in decision.criteria if r.status is Status.UNKNOWN)
    return _OUTCOME_RANK[decision.outcome], not_met, unknown


def evaluate(policy: Policy, facts: PolicyFacts, today: date) -> Decision:
    """Decide every criterion of the policy section that applies to the order.

    `today` stands in for the order date only when the order has no authoredOn.
    """
    order_date = facts.order.authored_on or today
    current = current_drug_records(policy, facts, order_date)
    pathway = Pathway.CONTINUED if current else Pathway.INITIAL
    base = EvalContext(
        order_date=order_date,
        pathway=pathway,
        section="",
        indication="",
        claim=(),
        drug_valueset=policy.drug,
        current_drug_records=current,
        first_drug_date=_first_drug_date(policy, facts, order_date),
        scales=policy.scales,
        drug_label=policy.drug_name,
    )

    decisions: list[Decision] = []
    working: list[bool] = []  # per decision: its indication rests on working diagnoses only
    claims = claimed_indications(policy, facts)
    for claim in claims:
        name = claim.indication.name
        for section in policy.sections_for(pathway, name):
            ctx = replace(base, section=section.id, indication=name, claim=claim.diagnoses)
            decision = _evaluate_section(policy, facts, section, ctx)
            if not claim.established:
                decision = _working_diagnosis(decision, claim, facts, ctx)
            decision = _conflicting_diagnosis(decision, claim, claims)
            decisions.append(decision)
            working.append(not claim.established)

    if not decisions:
        section = policy.off_label_section(pathway)
        ctx = replace(base, section=section.id, indication=OTHER_INDICATION)
        decision = _evaluate_section(policy, facts, section, ctx)
        if not deciding_reasons(policy, facts):
            if DIAGNOSES_SOURCE in facts.unavailable:
                return _indication_unread(decision, policy.drug_name)
            if not facts.diagnoses and not facts.conditions_on_file:
                # A chart with no condition at all names no use to call off-label: a
                # pharmacist asks for the diagnosis first.
                return _indication_unread(decision, policy.drug_name, NO_DIAGNOSIS)
        return decision

    # An established indication wins over one claimed only by a working or uncoded
    # diagnosis, whatever their outcomes; then the most favourable outcome.
    best = min(
        enumerate(decisions),
        key=lambda item: (working[item[0]], _preference(item[1]), item[0]),
    )[1]
    if len(decisions) == 1:
        return best
    considered = tuple((d.section, d.indication, d.outcome) for d in decisions)
    return replace(best, considered=considered)
