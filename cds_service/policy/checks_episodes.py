"""Episodes of a recurring condition (pericarditis and the like) from the recorded history.

An episode is made of recorded diagnoses (a problem-list Condition or an encounter
diagnosis, of any clinical status: past episodes are mostly resolved Conditions) with their
onset, and their abatement where one is recorded as a date:

- a record with no abatement date ends `default_episode_days` after its onset;
- a record whose onset falls within `same_episode_days` after the end of the episode
  before it (or before that end) belongs to that episode;
- a record that begins at least `symptom_free_days` after the episode before it ended is a
  new episode (a recurrence).

Dates are ranges where the chart is vague (an onset of "2024-03" is any day of March; an
abatement recorded only in words has an unknown day): when the records could be one episode
or two depending on where in the range the day falls, the count is a range too, and a
criterion that the range does not settle is `unknown`, asking for the dates of each episode.
A record with no date at all may be a separate episode. Working diagnoses (provisional,
differential, unconfirmed) and findings charted as observations are not episodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from cds_service.policy.checks import (
    MET,
    NOT_MET,
    UNKNOWN,
    EvalContext,
    ParamSpec,
    Verdict,
    _check,
    _dedupe,
    _names,
)
from fhir_mappings.facts import ConditionRecord, PolicyFacts, TherapyRun

_EPISODE_SOURCES: Final = frozenset({"problem-list", "encounter-diagnosis", "condition"})

EPISODE_PARAMS: Mapping[str, ParamSpec] = {
    "valuesets": ParamSpec("valuesets"),
    "same_episode_days": ParamSpec("int", required=False),
    "default_episode_days": ParamSpec("int", required=False),
    "symptom_free_days": ParamSpec("int", required=False),
}

EPISODE_DOCUMENTATION = (
    "The dates of each episode (onset and resolution), from the chart notes or the problem list."
)


@dataclass(frozen=True)
class Rules:
    same_episode_days: int = 28
    default_episode_days: int = 42
    symptom_free_days: int = 28

    @staticmethod
    def of(params: Mapping[str, Any]) -> Rules:
        return Rules(
            int(params.get("same_episode_days", 28)),
            int(params.get("default_episode_days", 42)),
            int(params.get("symptom_free_days", 28)),
        )


@dataclass(frozen=True)
class Span:
    """One record's days: the onset and end each lie somewhere in a range."""

    start_lo: date
    start_hi: date
    end_lo: date
    end_hi: date
    refs: tuple[str, ...]


@dataclass(frozen=True)
class Episode:
    start_lo: date
    start_hi: date
    end_lo: date
    end_hi: date
    refs: tuple[str, ...]
    certain_start: bool
    """It is a separate episode whatever the days in the ranges are (the first one is)."""


@dataclass(frozen=True)
class History:
    fewest: tuple[Episode, ...]
    """Episodes when every unsettled gap joins two records (the fewest possible)."""
    most: tuple[Episode, ...]
    """Episodes when every unsettled gap separates them (the most possible)."""
    undated: tuple[ConditionRecord, ...]
    """Records with no date: each may be one more episode."""
    unconfirmed: tuple[ConditionRecord, ...]
    """Working diagnoses of the condition (not counted)."""

    @property
    def refs(self) -> tuple[str, ...]:
        return _dedupe([*(r for e in self.most for r in e.refs), *(r.ref for r in self.undated)])


def _span(rec: ConditionRecord, rules: Rules) -> Span | None:
    if rec.onset is None:
        return None
    start_lo = rec.onset
    start_hi = rec.onset_latest or rec.onset
    if rec.abatement is not None:
        end_lo = rec.abatement_earliest or rec.abatement
        end_hi = rec.abatement
    else:
        default = timedelta(days=rules.default_episode_days)
        end_lo = start_lo + default
        end_hi = start_hi + default
        if rec.abated:
            # Ended, but the record does not say when: any day from the onset on.
            end_lo = start_lo
    return Span(start_lo, start_hi, max(end_lo, start_lo), max(end_hi, start_hi), (rec.ref,))


def _join(spans: Sequence[Span], rules: Rules, unsettled_joins: bool) -> tuple[Episode, ...]:
    episodes: list[Episode] = []
    for span in sorted(spans, key=lambda s: (s.start_hi, s.start_lo)):
        if not episodes:
            episodes.append(
                Episode(span.start_lo, span.start_hi, span.end_lo, span.end_hi, span.refs, True)
            )
            continue
        last = episodes[-1]
        shortest_gap = (span.start_lo - last.end_hi).days
        longest_gap = (span.start_hi - last.end_lo).days
        separate = shortest_gap >= rules.symptom_free_days
        joined = longest_gap < rules.same_episode_days
        if not separate and (joined or unsettled_joins):
            episodes[-1] = Episode(
                last.start_lo,
                last.start_hi,
                max(last.end_lo, span.end_lo),
                max(last.end_hi, span.end_hi),
                (*last.refs, *span.refs),
                last.certain_start,
            )
        else:
            episodes.append(
                Episode(span.start_lo, span.start_hi, span.end_lo, span.end_hi, span.refs, separate)
            )
    return tuple(episodes)


def history(facts: PolicyFacts, params: Mapping[str, Any]) -> History:
    """The episodes of the condition in `params["valuesets"]` (see the module docstring)."""
    wanted = _names(params, "valuesets")
    rules = Rules.of(params)
    records = [
        r for r in facts.condition_history if r.valuesets & wanted and r.source in _EPISODE_SOURCES
    ]
    confirmed = [r for r in records if r.verification == "confirmed"]
    spans: list[Span] = []
    undated: list[ConditionRecord] = []
    for rec in confirmed:
        span = _span(rec, rules)
        if span is None:
            undated.append(rec)
        else:
            spans.append(span)
    return History(
        fewest=_join(spans, rules, unsettled_joins=True),
        most=_join(spans, rules, unsettled_joins=False),
        undated=tuple(undated),
        unconfirmed=tuple(r for r in records if r.verification != "confirmed"),
    )


def _day(lo: date, hi: date) -> str:
    return lo.isoformat() if lo == hi else f"{lo.isoformat()} to {hi.isoformat()}"


def describe(episodes: Sequence[Episode]) -> str:
    return "; ".join(
        f"episode {i} from {_day(e.start_lo, e.start_hi)}" for i, e in enumerate(episodes, 1)
    )


# --------------------------------------------------------------------------- checks


def _stated(facts: PolicyFacts, params: Mapping[str, Any], on: date) -> list[ConditionRecord]:
    """Confirmed diagnoses in `stated_valuesets` recorded by `on` (any clinical status)."""
    wanted = _names(params, "stated_valuesets")
    return [
        r
        for r in facts.condition_history
        if r.valuesets & wanted
        and r.verification == "confirmed"
        and r.source != "observation"
        and (r.onset or r.recorded or on) <= on
    ]


@_check(
    "condition-episodes",
    (MET, NOT_MET, UNKNOWN),
    {
        **EPISODE_PARAMS,
        "min_episodes": ParamSpec("int"),
        "stated_valuesets": ParamSpec("valuesets", required=False),
    },
    reads=("Condition",),
    absence=(NOT_MET,),
)
def condition_episodes(params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext) -> Verdict:
    """At least `min_episodes` episodes of a recurring condition, each recurrence after a
    symptom-free interval (the rules are in the module docstring).

    Parameters: `valuesets` (diagnosis value sets of the condition); `min_episodes`;
    `same_episode_days` (28), `default_episode_days` (42), `symptom_free_days` (28);
    `stated_valuesets` (optional: diagnoses that state the condition recurs, e.g.
    "recurrent pericarditis", without being dated episodes themselves).

    `met` when even the fewest possible episodes reach `min_episodes`; `not-met` when even
    the most possible (every undated record counted as one more) do not, and no
    confirmed diagnosis in `stated_valuesets` says it recurred; otherwise `unknown`,
    asking for the dates of each episode. A record of the condition that is only
    a working diagnosis is not counted; when it could make the difference the answer is
    `unknown`."""
    needed = int(params["min_episodes"])
    h = history(facts, params)
    on = [e for e in h.fewest if e.start_lo <= ctx.order_date]
    most = [e for e in h.most if e.start_lo <= ctx.order_date]
    fewest = len(on)
    possible = len(most) + len(h.undated) + len(h.unconfirmed)
    details = {"fewest": fewest, "most": possible, "min_episodes": needed}
    if fewest >= needed:
        return Verdict(MET, f"{fewest} episodes: {describe(on)}.", h.refs, details)
    stated = _stated(facts, params, ctx.order_date)
    if possible < needed and not stated:
        text = f"{len(most)} episode(s): {describe(most)}" if most else "No episode recorded"
        return Verdict(
            NOT_MET,
            f"{text}; at least {needed} are needed, each recurrence after a symptom-free interval.",
            h.refs,
            details,
        )
    parts = []
    if len(most) > fewest:
        parts.append(
            f"the records make {fewest} to {len(most)} episodes depending on dates the chart "
            "does not give exactly"
        )
    if h.undated:
        parts.append(f"{len(h.undated)} record(s) have no onset date")
    if h.unconfirmed:
        parts.append(f"{len(h.unconfirmed)} record(s) are not confirmed diagnoses")
    if stated and possible < needed:
        names = ", ".join(sorted({r.display or r.code for r in stated}))
        parts.append(f"{names} is stated, but its episodes are not recorded with their dates")
    return Verdict(
        UNKNOWN,
        f"Cannot tell whether there were {needed} episodes: " + "; ".join(parts) + ".",
        _dedupe([*h.refs, *(r.ref for r in h.unconfirmed), *(r.ref for r in stated)]),
        details,
        documentation=EPISODE_DOCUMENTATION,
    )


@_check(
    "no-new-episode-since-start",
    (MET, NOT_MET, UNKNOWN),
    EPISODE_PARAMS,
    reads=("Condition",),
    absence=(MET,),
)
def no_new_episode_since_start(
    params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext
) -> Verdict:
    """No new episode of the condition began after the first dose of the drug (the drug's
    first date). Parameters as `condition-episodes` (without `min_episodes`).

    A record after the first dose that belongs to an episode already going on (it starts
    within `same_episode_days` of its end) is not a new episode. `not-met` when an episode
    surely began after the first dose; `unknown` when one may have (dates not exact, or a
    record with no date), or when the first dose is not known; else `met`."""
    start = ctx.first_drug_date
    if start is None:
        return Verdict(
            UNKNOWN,
            "The date of the first dose is not known.",
            documentation="The date of the first dose of the drug.",
        )
    h = history(facts, params)
    sure = [e for e in h.fewest if e.certain_start and e.start_lo > start]
    maybe = [e for e in h.most if e.start_hi > start and e.start_lo <= ctx.order_date]
    details = {"first_dose": start.isoformat()}
    if sure:
        return Verdict(
            NOT_MET,
            f"A new episode began after the first dose ({start}): {describe(sure)}.",
            _dedupe(r for e in sure for r in e.refs),
            details,
        )
    if maybe or h.undated:
        return Verdict(
            UNKNOWN,
            f"A new episode may have begun after the first dose ({start}): the chart does not "
            "date the records exactly enough.",
            h.refs,
            details,
            documentation=EPISODE_DOCUMENTATION,
        )
    return Verdict(MET, f"No new episode recorded since the first dose ({start}).", h.refs, details)


# --------------------------------------------------------------------------- on a drug


def _covering(
    runs: Sequence[TherapyRun], sets: frozenset[str], lo: date, hi: date, min_days: int
) -> tuple[TherapyRun | None, TherapyRun | None]:
    """(a run surely taken for `min_days` when an episode began in lo..hi, a run that
    might have been: open-ended or of estimated or unknown length)."""
    sure: TherapyRun | None = None
    maybe: TherapyRun | None = None
    for run in runs:
        if not run.valuesets & sets:
            continue
        long_enough = (lo - run.start).days + 1 >= min_days
        reaches = run.end >= hi
        if long_enough and reaches and run.certainty != "unknown":
            sure = sure or run
        elif (hi - run.start).days + 1 >= min_days and (reaches or run.open_ended):
            maybe = maybe or run
    return sure, maybe


def _overlap_days(run: TherapyRun, start: date, end: date) -> int:
    return (min(run.end, end) - max(run.start, start)).days + 1


@_check(
    "episode-while-on-drug",
    (MET, NOT_MET, UNKNOWN),
    {
        **EPISODE_PARAMS,
        "drug_valuesets": ParamSpec("valuesets"),
        "min_days": ParamSpec("int"),
        "also_valuesets": ParamSpec("valuesets", required=False),
        "also_min_days": ParamSpec("int", required=False),
        "also_during_episode": ParamSpec("bool", required=False),
        "also_excused_by_intolerance": ParamSpec("bool", required=False),
    },
    reads=("Condition", "MedicationRequest", "MedicationStatement", "MedicationDispense"),
    absence=(NOT_MET,),
)
def episode_while_on_drug(
    params: Mapping[str, Any], facts: PolicyFacts, ctx: EvalContext
) -> Verdict:
    """A recurrence of the condition began while the patient had been taking a drug for at
    least `min_days` consecutive days (failure of that drug), and, with `also_valuesets`,
    another drug was taken too.

    Parameters: episode parameters as `condition-episodes`; `drug_valuesets` (the first-line
    drug's value sets) and `min_days` (e.g. 90); `also_valuesets` (the value sets of the
    other drugs, any one of which counts),
    `also_min_days` (e.g. 7), `also_during_episode` (default true: those days fall within
    an episode), `also_excused_by_intolerance` (default true: an intolerance or
    contraindication recorded to every one of `also_valuesets` stands in for it).

    `met` when a recurrence (an episode after the first, surely separate) began inside a
    run of the drug at least `min_days` long by then, and the other drug condition holds;
    `not-met` when no recurrence began on the drug, or when the other drug was surely not
    taken long enough; `unknown` when the dates or lengths do not settle it (open-ended
    runs, episodes that may be one)."""
    h = history(facts, params)
    drugs = _names(params, "drug_valuesets")
    min_days = int(params["min_days"])
    runs = facts.therapy_runs
    recurrences_sure = [e for e in h.fewest[1:] if e.certain_start]
    recurrences_maybe = list(h.most[1:])
    drug_words = "/".join(sorted(drugs))
    details: dict[str, Any] = {"min_days": min_days}

    on_drug: tuple[Episode, TherapyRun] | None = None
    for e in recurrences_sure:
        sure, _ = _covering(runs, drugs, e.start_lo, e.start_hi, min_days)
        if sure is not None:
            on_drug = (e, sure)
            break
    possible = on_drug is not None
    if on_drug is None:
        for e in recurrences_maybe:
            sure, maybe = _covering(runs, drugs, e.start_lo, e.start_hi, min_days)
            if sure is not None or maybe is not None:
                possible = True
                break
    if on_drug is None:
        if possible or h.undated:
            return Verdict(
                UNKNOWN,
                f"A recurrence may have begun after {min_days} days of {drug_words}, but the "
                "chart does not settle the episode dates or how long it was taken.",
                h.refs,
                details,
                documentation=EPISODE_DOCUMENTATION + f" The {drug_words} start and stop dates.",
            )
        if not h.most[1:]:
            what = "No recurrence of the condition is recorded"
        else:
            what = f"No recurrence began after {min_days} consecutive days of {drug_words}"
        return Verdict(NOT_MET, what + f" ({describe(h.most) or 'no episode'}).", h.refs, details)

    episode, run = on_drug
    reason = (
        f"A recurrence began {_day(episode.start_lo, episode.start_hi)} after "
        f"{(episode.start_lo - run.start).days + 1} days of {run.drug} (from {run.start})"
    )
    refs = [*episode.refs, *run.refs]
    also = _names(params, "also_valuesets")
    if not also:
        return Verdict(MET, reason + ".", _dedupe(refs), details)

    also_days = int(params.get("also_min_days", 7))
    during = bool(params.get("also_during_episode", True))
    also_runs = [r for r in runs if r.valuesets & also]
    best_sure: TherapyRun | None = None
    best_maybe: TherapyRun | None = None
    for r in also_runs:
        if during:
            sure_days = max((_overlap_days(r, e.start_hi, e.end_lo) for e in h.fewest), default=0)
            maybe_days = max((_overlap_days(r, e.start_lo, e.end_hi) for e in h.most), default=0)
        else:
            sure_days = maybe_days = r.days
        if sure_days >= also_days and r.certainty != "unknown":
            best_sure = best_sure or r
        elif maybe_days >= also_days or r.open_ended:
            best_maybe = best_maybe or r
    also_words = " or ".join(sorted(also))
    when = " during an episode" if during else ""
    if best_sure is not None:
        return Verdict(
            MET,
            f"{reason}; {best_sure.drug} taken{when} ({best_sure.start} to {best_sure.end}).",
            _dedupe([*refs, *best_sure.refs]),
            details,
        )
    if bool(params.get("also_excused_by_intolerance", True)):
        excused = {
            name: [i for i in facts.intolerances if name in i.valuesets] for name in sorted(also)
        }
        if all(excused.values()):
            found = [i for found in excused.values() for i in found]
            return Verdict(
                MET,
                f"{reason}; {also_words} not tolerated or contraindicated ("
                + ", ".join(sorted({f"{i.kind} to {i.substance}" for i in found}))
                + ").",
                _dedupe([*refs, *(r for i in found for r in i.refs)]),
                details,
            )
    if best_maybe is not None or not also_runs:
        return Verdict(
            UNKNOWN,
            f"{reason}; {also_words} for {also_days} days{when} is not documented.",
            _dedupe([*refs, *(best_maybe.refs if best_maybe else ())]),
            details,
            documentation=f"The dates {also_words} was taken during an episode, or its "
            "intolerance or contraindication.",
        )
    return Verdict(
        NOT_MET,
        f"{reason}; but {also_words} was not taken for {also_days} days{when}.",
        _dedupe([*refs, *(r for run_ in also_runs for r in run_.refs)]),
        details,
    )
