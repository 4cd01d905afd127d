"""Diagnoses (Conditions, the order's reasons) and intolerances / contraindications.

Which Conditions count as the patient's diagnoses:
- clinicalStatus active, recurrence, relapse or remission (a disease held in remission by
  its treatment still stands), or absent — unless the Condition has abated: with no
  clinicalStatus, an `abatement[x]` (a date, age, period, range or text such as
  "delivered") says the condition is over, as clinicalStatus resolved would (FHIR requires
  an abated Condition to be inactive, remission or resolved). An explicit active status is
  read as written;
- verificationStatus: refuted and entered-in-error are out. Confirmed (or absent) establishes
  the diagnosis; unconfirmed / provisional / differential is kept as a working diagnosis
  (`Diagnosis.verification`): it claims the indication, so the request is not sent to
  off-label review, but a pharmacist does not accept a working diagnosis as the one a drug
  is approved for, so the diagnosis criterion asks for its confirmation (never met);
- for the patient (a Condition about another subject is left out).
Only Conditions that match a diagnosis value set become facts; the order's own reasons are
kept even when they match nothing (the policy then sees an off-label reason).

Named but not coded: a value set with `names_suggest` (rheumatoid arthritis) also matches a
code's text / display, when no listed code matched (text only, a local code, an unlisted
SNOMED CT descendant); so does a name whose `names_require` code is absent ("NOMID" in text
with no CAPS code). The fact lists such sets in `Diagnosis.text_only` and the diagnosis
criterion asks for the coded diagnosis. The set's `exclude_names` veto such a match
("juvenile rheumatoid arthritis" is not RA).

Contraindications (below) still need a confirmed Condition: a working diagnosis of, say,
liver disease does not clear the way to an alternative DMARD.

Text rules (INTERPRETATION.md): a CAPS code (M04.2 / SNOMED CAPS) whose text names NOMID or
CINCA is `nomid-cinca`, one naming FCAS / MWS is `caps-fcas-mws` (not when the value set's
exclusion words are in the text too: "r/o Muckle-Wells", "not FCAS"), otherwise
`caps-unspecified`; DIRA by name in any code text; M04.8 is `autoinflammatory-other` (kept
beside `dira` when the text also names DIRA).

Intolerances:
- AllergyIntolerance with clinicalStatus active (or absent) and verificationStatus not
  refuted / entered-in-error, whose code or reaction substance is a value-set drug or
  E. coli-derived proteins: kind from `type` ("intolerance", else "allergy");
- a Condition in `mtx-contraindication` (same status rules as diagnoses): a contraindication
  to methotrexate;
- Child-bearing potential is never a contraindication (Appendix D). Alcohol use is a
  measurement (units a week); whether it contraindicates methotrexate (over 14 units a week,
  Appendix D) is the policy's rule, decided by the I.A.4 check with its parameter.
"""

from __future__ import annotations

from datetime import date
from typing import Final, Literal

from fhir_mappings import valuesets
from fhir_mappings.content_memo import ContentMemo
from fhir_mappings.facts import ConditionRecord, ConditionSource, Diagnosis, Intolerance, Ref
from fhir_mappings.fields import (
    Json,
    codings,
    for_patient,
    get_map,
    maps,
    names_patient,
    parse_date,
    ref_of,
    reference,
    status_code,
    texts,
)
from fhir_mappings.medications import identify_concept
from fhir_mappings.r4 import Parsed

_DIAGNOSIS: Final = frozenset({"diagnosis"})
_ACTIVE: Final = frozenset({"active", "recurrence", "relapse", "remission"})
"""Clinical statuses of a diagnosis that still stands. Remission counts: a disease held in
remission by its treatment (NOMID on an IL-1 blocker) is the indication being continued;
inactive and resolved do not."""
_CONFIRMED: Final = frozenset({"confirmed"})
_NOT_TRUE: Final = frozenset({"refuted", "entered-in-error"})
_WORKING: Final = frozenset({"provisional", "differential", "unconfirmed"})


def classify(concept: Json | None) -> tuple[frozenset[str], str, str, str]:
    """(diagnosis value sets, system, code, display) of a Condition code / reasonCode."""
    sets, system, code, display, _ = classify_concept(concept)
    return sets, system, code, display


Classified = tuple[frozenset[str], str, str, str, frozenset[str]]
_CLASSIFIED: Final[ContentMemo[Classified]] = ContentMemo(capacity=16_384)


def forget_readings() -> None:
    """Empty the readings kept per resource body (the benchmark's new-patient figures)."""
    _FINDINGS.clear()


def forget_classified() -> None:
    """Empty the memos (the benchmark's first-sight figures)."""
    _CLASSIFIED.clear()
    _FINDINGS.clear()


def classify_concept(concept: Json | None) -> Classified:
    """`classify` plus the value sets matched only by words (see "Named but not coded").
    Memoised by the concept's content (`content_memo`): it depends on nothing else."""
    return _CLASSIFIED.get(concept, lambda: _classify_concept(concept))


def _classify_concept(concept: Json | None) -> Classified:
    found: set[str] = set()
    suggested: set[str] = set()
    chosen: tuple[str, str, str] | None = None
    for system, code, display in codings(concept):
        hits = [
            h
            for h in valuesets.match_code(system, code)
            if valuesets.valueset_kind(h.valueset) in _DIAGNOSIS
        ]
        if hits and chosen is None:
            chosen = (system or "", code or "", display or "")
        found.update(h.valueset for h in hits)
    words = texts(concept)
    coded = frozenset(found)
    for hit in valuesets.match_names(words, _DIAGNOSIS):
        if valuesets.names_suggest(hit.valueset):
            if hit.valueset not in coded and not valuesets.excluded(hit.valueset, words):
                suggested.add(hit.valueset)
            continue
        need = valuesets.names_require(hit.valueset)
        if valuesets.excluded(hit.valueset, words):  # "CAPS, r/o Muckle-Wells"
            continue
        if need is None or need in found:
            found.add(hit.valueset)
        else:  # "NOMID" with no CAPS code: named, not coded
            suggested.add(hit.valueset)
    suggested -= coded  # a set one of the codes matched is coded, whatever the words say
    found |= suggested
    if found & {"nomid-cinca", "caps-fcas-mws"}:
        found.discard("caps-unspecified")
    if chosen is None:
        first = codings(concept)
        if first:
            system, code, display = first[0]
            chosen = (system or "", code or "", display or "")
        else:
            chosen = ("", "", "")
    display = chosen[2]
    if not display and concept is not None:
        display = str(concept.get("text") or "")
    return frozenset(found), chosen[0], chosen[1], display, frozenset(suggested)


_ABATEMENT: Final = (
    "abatementDateTime",
    "abatementAge",
    "abatementPeriod",
    "abatementRange",
    "abatementString",
    "abatementBoolean",  # written by STU3-era feeds
)


def _stands(condition: Json) -> bool:
    """Its clinical status is one of a standing diagnosis, or absent and not abated."""
    clinical = status_code(condition, "clinicalStatus")
    if clinical is not None:
        return clinical in _ACTIVE
    return not any(condition.get(key) not in (None, False, "", {}) for key in _ABATEMENT)


def condition_counts(condition: Json) -> bool:
    """Active and confirmed (or statuses absent, and not abated)."""
    verification = status_code(condition, "verificationStatus")
    if not _stands(condition):
        return False
    return verification is None or verification in _CONFIRMED


def verification_of(condition: Json) -> str | None:
    """ "confirmed" (also when not stated), a working status ("provisional", "differential",
    "unconfirmed"; an unknown code reads as "unconfirmed"), or None when refuted or
    entered in error."""
    verification = status_code(condition, "verificationStatus")
    if verification in _NOT_TRUE:
        return None
    if verification is None or verification in _CONFIRMED:
        return "confirmed"
    return verification if verification in _WORKING else "unconfirmed"


def _diagnosis_counts(condition: Json) -> str | None:
    """The verification of a Condition that stands as a diagnosis (clinical status active,
    or absent and not abated), or None."""
    if not _stands(condition):
        return None
    return verification_of(condition)


def _diagnosis(condition: Json, source: str, refs: tuple[Ref, ...]) -> Diagnosis:
    sets, system, code, display, suggested = classify_concept(get_map(condition, "code"))
    recorded = parse_date(condition.get("recordedDate")) or parse_date(
        condition.get("onsetDateTime")
    )
    return Diagnosis(
        valuesets=sets,
        system=system,
        code=code,
        display=display,
        source="order-reason" if source == "order-reason" else "condition",
        refs=refs,
        recorded=recorded,
        verification=verification_of(condition) or "confirmed",
        text_only=suggested,
    )


def diagnoses(parsed: Parsed, patient_ref: Ref | None) -> list[Diagnosis]:
    out: list[Diagnosis] = []
    for condition in parsed.of_type("Condition"):
        if not for_patient(condition, patient_ref) or _diagnosis_counts(condition) is None:
            continue
        diagnosis = _diagnosis(condition, "condition", (ref_of(condition),))
        if diagnosis.valuesets - {"mtx-contraindication"}:
            out.append(diagnosis)
    return out


def other_condition_names(parsed: Parsed, patient_ref: Ref | None) -> list[str]:
    """The recorded names (coding display, else the code's text) of the patient's standing,
    confirmed Conditions that are in no diagnosis value set, each once, in record order:
    what the chart says the patient has when no policy knows the diagnosis (a card can name
    it; no decision rests on it)."""
    names: list[str] = []
    for condition in parsed.of_type("Condition"):
        if not for_patient(condition, patient_ref) or _diagnosis_counts(condition) != "confirmed":
            continue
        sets, _, _, display, _ = classify_concept(get_map(condition, "code"))
        name = " ".join(display.split())
        if name and not sets - {"mtx-contraindication"} and name not in names:
            names.append(name)
    return names


def conditions_on_file(parsed: Parsed, patient_ref: Ref | None) -> int:
    """How many Conditions the patient's record holds, of any code and status but
    entered-in-error (read unvalidated: only their subject and status are looked at)."""
    return len(
        {
            ref_of(condition)
            for condition in parsed.candidates("Condition")
            if for_patient(condition, patient_ref)
            and status_code(condition, "verificationStatus") != "entered-in-error"
        }
    )


def order_reasons(order: Json, order_ref: Ref, parsed: Parsed) -> list[Diagnosis]:
    """The order's reasonCode and reasonReference (to a Condition) as diagnoses."""
    out: list[Diagnosis] = []
    for concept in maps(order.get("reasonCode")):
        sets, system, code, display, suggested = classify_concept(concept)
        out.append(
            Diagnosis(
                sets, system, code, display, "order-reason", (order_ref,), text_only=suggested
            )
        )
    for ref_value in maps(order.get("reasonReference")):
        target = reference(ref_value)
        condition: Json | None = None
        if target and target.startswith("#"):
            for contained in maps(order.get("contained")):
                if (
                    contained.get("resourceType") == "Condition"
                    and contained.get("id") == (target[1:])
                ):
                    condition = contained
        elif target and target.startswith("Condition/"):
            condition = parsed.by_ref.get(target)
        if condition is None or target is None:
            continue
        if verification_of(condition) is None:
            continue
        out.append(_diagnosis(condition, "order-reason", (target,)))
    return out


def _allergy_counts(allergy: Json) -> bool:
    clinical = status_code(allergy, "clinicalStatus")
    verification = status_code(allergy, "verificationStatus")
    if clinical is not None and clinical != "active":
        return False
    return verification not in _NOT_TRUE


def intolerances(parsed: Parsed, patient_ref: Ref | None) -> list[Intolerance]:
    out: list[Intolerance] = []
    for allergy in parsed.of_type("AllergyIntolerance"):
        if not for_patient(allergy, patient_ref, "patient") or not _allergy_counts(allergy):
            continue
        kind: Literal["allergy", "intolerance"] = (
            "intolerance" if allergy.get("type") == "intolerance" else "allergy"
        )
        concepts = [get_map(allergy, "code")]
        for reaction in maps(allergy.get("reaction")):
            concepts.append(get_map(reaction, "substance"))
        ref = ref_of(allergy)
        seen: set[str] = set()
        for concept in concepts:
            for identity in identify_concept(concept):
                if identity.drug in seen:
                    continue
                seen.add(identity.drug)
                out.append(
                    Intolerance(
                        valuesets=identity.valuesets,
                        kind=kind,
                        substance=identity.drug,
                        reason=f"{kind} to {valuesets.drug_display(identity.drug)} recorded",
                        refs=(ref,),
                    )
                )
            for hit in valuesets.match_names(texts(concept), frozenset({"substance"})):
                if hit.valueset in seen:
                    continue
                seen.add(hit.valueset)
                out.append(
                    Intolerance(
                        valuesets=frozenset({hit.valueset}),
                        kind=kind,
                        substance=valuesets.valueset_title(hit.valueset),
                        reason=f"{kind} to {valuesets.valueset_title(hit.valueset)} recorded",
                        refs=(ref,),
                    )
                )
    for condition in parsed.of_type("Condition"):
        if not for_patient(condition, patient_ref) or not condition_counts(condition):
            continue
        sets, _, code, display = classify(get_map(condition, "code"))
        if "mtx-contraindication" in sets:
            out.append(
                Intolerance(
                    valuesets=frozenset({"methotrexate"}),
                    kind="contraindication",
                    substance="methotrexate",
                    reason=f"condition that contraindicates methotrexate: {display or code}",
                    refs=(ref_of(condition),),
                )
            )
    return out


# --------------------------------------------------------------------------- history

_FINAL_OBSERVATION: Final = frozenset({"final", "amended", "corrected", "preliminary"})
_ABSENT_WORDS: Final = ("absent", "not present", "negative", "denies", "no ", "none")
_ABSENT_CODES: Final = frozenset(
    {
        "260385009",
        "2667000",
        "272519000",
        "373067005",
        "260415000",
        "410594000",
        "la32-8",
        "n",
        "neg",
    }
)
"""Values that say a finding is absent (SNOMED negative / absent / no evidence of / No /
not detected / definitely not present, LOINC answer No, v3 normal / negative); EHRs often
send the SNOMED answer code with no display."""


def _encounter_days(parsed: Parsed, patient_ref: Ref | None) -> dict[Ref, date | None]:
    """Conditions named by an Encounter.diagnosis, with the encounter's first day."""
    out: dict[Ref, date | None] = {}
    for candidate in parsed.candidates("Encounter"):
        if not candidate.get("diagnosis") or not for_patient(candidate, patient_ref):
            continue
        encounter = parsed.accept(candidate)
        if encounter is None:
            continue
        start = parse_date((get_map(encounter, "period") or {}).get("start"))
        for entry in maps(encounter.get("diagnosis")):
            target = reference(entry.get("condition"))
            if target and target.startswith("Condition/"):
                known = out.get(target)
                out[target] = start if known is None else known
    return out


def _categories(condition: Json) -> set[str]:
    return {
        (code or "").lower()
        for concept in maps(condition.get("category"))
        for _, code, _ in codings(concept)
    }


def _abatement(condition: Json) -> tuple[date | None, date | None, bool]:
    """(earliest, latest) days of a dated abatement, and whether any abatement is stated."""
    value = condition.get("abatementDateTime")
    if isinstance(value, str):
        return parse_date(value), parse_date(value, end=True), True
    period = get_map(condition, "abatementPeriod")
    if period is not None:
        last = period.get("end") or period.get("start")
        return parse_date(last), parse_date(last, end=True), True
    abated = any(condition.get(key) not in (None, False, "", {}) for key in _ABATEMENT)
    return None, None, abated


def _onset(condition: Json) -> tuple[date | None, date | None]:
    value = condition.get("onsetDateTime")
    if not isinstance(value, str):
        value = (get_map(condition, "onsetPeriod") or {}).get("start")
    return parse_date(value), parse_date(value, end=True)


def condition_history(parsed: Parsed, patient_ref: Ref | None) -> list[ConditionRecord]:
    """Every Condition of the patient in a diagnosis value set, of any clinical status
    (refuted and entered-in-error left out), with its onset and abatement; then findings
    recorded as Observations (see `observed_findings`).

    Source: an `encounter-diagnosis` category or a Condition an Encounter.diagnosis names
    is an encounter diagnosis (with no onset, its encounter's first day is its onset, else
    its recordedDate); a `problem-list-item` category is the problem list."""
    out: list[ConditionRecord] = []
    encounter_days = _encounter_days(parsed, patient_ref)
    for condition in parsed.of_type("Condition"):
        if not for_patient(condition, patient_ref):
            continue
        verification = verification_of(condition)
        if verification is None:
            continue
        sets, system, code, display, _ = classify_concept(get_map(condition, "code"))
        if not sets:
            continue
        ref = ref_of(condition)
        categories = _categories(condition)
        recorded = parse_date(condition.get("recordedDate"))
        onset, onset_latest = _onset(condition)
        source: ConditionSource = "condition"
        if "encounter-diagnosis" in categories or ref in encounter_days:
            source = "encounter-diagnosis"
            if onset is None:
                onset = onset_latest = encounter_days.get(ref) or recorded
        elif "problem-list-item" in categories:
            source = "problem-list"
        abatement_earliest, abatement, abated = _abatement(condition)
        out.append(
            ConditionRecord(
                valuesets=sets,
                system=system,
                code=code,
                display=display,
                ref=ref,
                source=source,
                onset=onset,
                onset_latest=onset_latest,
                abatement=abatement,
                abatement_earliest=abatement_earliest,
                abated=abated,
                clinical_status=status_code(condition, "clinicalStatus"),
                verification=verification,
                recorded=recorded,
            )
        )
    out.extend(observed_findings(parsed, patient_ref))
    return out


def _says_absent(observation: Json) -> bool:
    """The value says the finding is absent, or there is no value for a stated reason
    (dataAbsentReason: not asked, not performed): neither shows the finding."""
    if observation.get("valueBoolean") is False or observation.get("dataAbsentReason"):
        return True
    concepts = [
        get_map(observation, "valueCodeableConcept"),
        *maps(observation.get("interpretation")),
    ]
    for concept in concepts:
        for _, code, _ in codings(concept):
            if code and code.lower() in _ABSENT_CODES:
                return True
    words = [t.lower() for c in concepts for t in texts(c)]
    value = observation.get("valueString")
    if isinstance(value, str):
        words.append(value.lower())
    return any(w.startswith(_ABSENT_WORDS) or w in ("no", "false") for w in words)


def observed_findings(parsed: Parsed, patient_ref: Ref | None) -> list[ConditionRecord]:
    """Observations whose code (or coded value) is a finding in a diagnosis value set (a
    symptom charted as an observation: "urticarial rash", "hearing loss"), dated by their
    effective date, unless the value says the finding is absent ("no", "absent", false)."""
    out: list[ConditionRecord] = []
    for observation, key in parsed.keyed_candidates("Observation"):
        found = _FINDINGS.get_keyed(key, lambda: _finding_of(observation))  # noqa: B023
        if found is None:
            continue
        subject, record = found
        if not names_patient(subject, patient_ref):
            continue
        # Validation keeps the fields read above as they are (it only drops unknown ones).
        if parsed.accept(observation) is None:
            continue
        out.append(record)
    return out


_FINDINGS: Final[ContentMemo[tuple[Ref | None, ConditionRecord] | None]] = ContentMemo(
    capacity=20_000
)
"""`_finding_of` by the Observation body's content key: it depends on nothing else."""


def _finding_of(observation: Json) -> tuple[Ref | None, ConditionRecord] | None:
    """(the patient it names, the finding) of a final Observation of a finding that is not
    said absent; None for any other."""
    if observation.get("status") not in _FINAL_OBSERVATION:
        return None
    sets, system, code, display, _ = classify_concept(get_map(observation, "code"))
    if not sets:
        sets, system, code, display, _ = classify_concept(
            get_map(observation, "valueCodeableConcept")
        )
    elif _says_absent(observation):
        return None
    if not sets:
        return None
    effective = observation.get("effectiveDateTime")
    if not isinstance(effective, str):
        effective = (get_map(observation, "effectivePeriod") or {}).get("start")
    if not isinstance(effective, str):
        effective = observation.get("issued")
    record = ConditionRecord(
        valuesets=sets,
        system=system,
        code=code,
        display=display,
        ref=ref_of(observation),
        source="observation",
        onset=parse_date(effective),
        onset_latest=parse_date(effective, end=True),
        abatement=None,
        abatement_earliest=None,
        abated=False,
        clinical_status=None,
        recorded=parse_date(effective),
    )
    return reference(observation.get("subject")), record
