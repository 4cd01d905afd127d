"""Prescriber, care team and referrals (I.A.2 / I.B.2 / I.C.2), encounter and coverage.

- The requester's roles: the order's `requester` when it is a PractitionerRole, or every
  PractitionerRole among the resources whose `practitioner` is the requesting
  Practitioner; the same for `context.userId` (the user signing the order).
  The link may go through the prescriber's NPI (Synthea v3 writes
  `PractitionerRole.practitioner` as `{identifier: {system: us-npi, value}}` and the
  requester as `Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|<npi>`): a role whose
  practitioner carries the NPI of the requesting Practitioner (its `identifier`), or of an
  identifier / conditional requester reference, is the requester's role. Only the NPI system
  links people; other identifiers are local and may repeat across organisations. Specialty value
  sets come from PractitionerRole.specialty and .code (codes first, then the value set's
  names in their text). `has_role_data` is False when no role was found at all, so that the
  policy can say "unknown" rather than "not a rheumatologist". A role marked `active: false`
  or whose `period` ended before the order date is one the person no longer holds: it is
  not read (a former rheumatology post does not make today's order a rheumatologist's).
- CareTeam (status active or absent, its `period` not ended before the order date): every
  participant whose role, or whose member's PractitionerRole, is known, unless the
  participant's own `period` ended before the order date (a rheumatologist who left the
  team years ago is no consultation for this order).
- ServiceRequests (status active or completed, for the patient) whose code, performerType,
  reasonCode or performer role names a specialty value set are referrals. Only an actual
  request counts (intent order, original-order, reflex-order, filler-order, instance-order
  or absent): a `proposal` (a suggestion, e.g. from decision support) or a `plan` is not a
  referral made, so no consultation rests on it.
- Encounter.class (v3-ActCode): IMP / ACUTE / NONAC inpatient; AMB / VR / HH / FLD
  ambulatory; EMER emergency; anything else (OBSENC, SS, PRENC, unknown codes) "unknown",
  never guessed as outpatient. An encounterId whose Encounter is not among the resources:
  "unknown" with `found` False. No encounterId: no encounter fact (None), which the policy
  reads as "setting not known", never as outpatient. An Encounter that is another
  patient's, cancelled or entered in error, or finished before the order date says nothing
  about where this order is given: "unknown", with the reason in `note` (a hospital stay
  that ended is not a current admission).
- Coverage: active Coverages of the patient (beneficiary or subscriber).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, Final
from urllib.parse import unquote

from fhir_mappings import valuesets
from fhir_mappings.facts import EncounterFacts, EncounterSetting, PrescriberFacts, Ref, Referral
from fhir_mappings.fields import (
    Json,
    codings,
    for_patient,
    get_map,
    get_str,
    maps,
    parse_date,
    ref_of,
    reference,
    texts,
)
from fhir_mappings.r4 import Parsed

_SPECIALTY: Final = frozenset({"specialty"})
_SETTINGS: Final[Mapping[str, EncounterSetting]] = {
    "IMP": "inpatient",
    "ACUTE": "inpatient",
    "NONAC": "inpatient",
    "AMB": "ambulatory",
    "VR": "ambulatory",
    "HH": "ambulatory",
    "FLD": "ambulatory",
    "EMER": "emergency",
}


def specialty_sets(concepts: Iterable[Json | None]) -> frozenset[str]:
    """Specialty value sets matched by codes, else by names in the concepts' text."""
    concept_list = list(concepts)
    found = {
        hit.valueset
        for concept in concept_list
        for system, code, _ in codings(concept)
        for hit in valuesets.match_code(system, code)
        if valuesets.valueset_kind(hit.valueset) in _SPECIALTY
    }
    if not found:
        all_texts = [t for c in concept_list for t in texts(c)]
        found = {hit.valueset for hit in valuesets.match_names(all_texts, _SPECIALTY)}
    return frozenset(found)


def ended_before(resource: Json, as_of: date | None) -> bool:
    """True when the resource's `period` ended before `as_of` (no date: never)."""
    period = get_map(resource, "period")
    end = parse_date(period.get("end"), end=True) if period is not None else None
    return as_of is not None and end is not None and end < as_of


def _role_current(role: Json, as_of: date | None) -> bool:
    return role.get("active") is not False and not ended_before(role, as_of)


def _role_concepts(role: Json) -> list[Json | None]:
    return [*maps(role.get("specialty")), *maps(role.get("code"))]


NPI_SYSTEMS: Final = frozenset({"http://hl7.org/fhir/sid/us-npi", "urn:oid:2.16.840.1.113883.4.6"})


def _npi_system(system: str | None) -> bool:
    return system is not None and system.strip().rstrip("/") in NPI_SYSTEMS


def npi_of_reference(value: Any) -> str | None:
    """The NPI a Reference names: a logical reference `{identifier: {system: us-npi,
    value}}`, or a conditional one `Practitioner?identifier=<us-npi>|<value>`."""
    if not isinstance(value, Mapping):
        return None
    ident = get_map(value, "identifier")
    if ident is not None and _npi_system(get_str(ident, "system")):
        npi = get_str(ident, "value")
        if npi:
            return npi.strip()
    ref = get_str(value, "reference")
    if ref is None or "?" not in ref:
        return None
    kind, _, query = ref.strip().partition("?")
    if kind.rsplit("/", 1)[-1] != "Practitioner":
        return None
    for part in query.split("&"):
        key, _, raw = part.partition("=")
        system, bar, npi = unquote(raw).rpartition("|")
        if key == "identifier" and bar and _npi_system(system) and npi.strip():
            return npi.strip()
    return None


def npis_of(resource: Json | None) -> frozenset[str]:
    """The NPIs in a Practitioner's identifiers."""
    if resource is None:
        return frozenset()
    return frozenset(
        npi.strip()
        for ident in maps(resource.get("identifier"))
        if _npi_system(get_str(ident, "system")) and (npi := get_str(ident, "value"))
    )


def roles_of(ref: Ref | None, parsed: Parsed, *, npi: str | None = None) -> list[Json]:
    """PractitionerRoles for a PractitionerRole or Practitioner reference, or for the
    person an NPI names (`npi`, from an identifier or conditional reference).

    A role belongs to a Practitioner when its `practitioner` references it, or names by
    identifier an NPI that the Practitioner (or `npi`) carries."""
    if ref is not None and ref.startswith("PractitionerRole/"):
        role = parsed.by_ref.get(ref)
        return [role] if role is not None else []
    people: set[str] = set()
    npis: set[str] = {npi} if npi else set()
    if ref is not None and ref.startswith("Practitioner/"):
        people.add(ref)
        npis |= npis_of(parsed.by_ref.get(ref))
    if npis:
        people |= {ref_of(p) for p in parsed.of_type("Practitioner") if npis_of(p) & npis}
    if not people and not npis:
        return []
    return [
        role
        for role in parsed.of_type("PractitionerRole")
        if reference(role.get("practitioner")) in people
        or npi_of_reference(role.get("practitioner")) in npis
    ]


def _person_ref(npi: str | None, parsed: Parsed) -> Ref | None:
    """The Practitioner an NPI names, or a plain label for it when none was sent."""
    if npi is None:
        return None
    for person in parsed.of_type("Practitioner"):
        if npi in npis_of(person):
            return ref_of(person)
    return f"Practitioner (NPI {npi})"


def prescriber(
    requester_ref: Ref | None,
    user_ref: Ref | None,
    parsed: Parsed,
    patient_ref: Ref | None,
    requester: Any = None,
    as_of: date | None = None,
) -> PrescriberFacts:
    """`requester`: the order's requester Reference as sent, for a requester named by NPI
    (identifier or conditional reference) rather than by id. `as_of`: the order date (roles
    and care-team memberships that ended before it are not read)."""
    npi = npi_of_reference(requester)
    if npi is not None and (requester_ref is None or "?" in requester_ref):
        requester_ref = _person_ref(npi, parsed)
    roles: dict[str, Json] = {}
    for ref, ref_npi in ((requester_ref, npi), (user_ref, None)):
        for role in roles_of(ref, parsed, npi=ref_npi):
            if _role_current(role, as_of):
                roles.setdefault(ref_of(role), role)
    sets: set[str] = set()
    codes: list[str] = []
    for role in roles.values():
        concepts = _role_concepts(role)
        sets |= specialty_sets(concepts)
        for concept in concepts:
            codes.extend(code for _, code, _ in codings(concept) if code)
    refs = tuple(dict.fromkeys([*(r for r in (requester_ref,) if r), *roles]))
    return PrescriberFacts(
        requester_ref=requester_ref or user_ref,
        specialty_valuesets=frozenset(sets),
        specialty_codes=tuple(dict.fromkeys(codes)),
        has_role_data=bool(roles),
        refs=refs,
        care_team=tuple(_care_team(parsed, patient_ref, as_of)),
        referrals=tuple(_referrals(parsed, patient_ref)),
    )


def _care_team(
    parsed: Parsed, patient_ref: Ref | None, as_of: date | None
) -> list[tuple[frozenset[str], Ref]]:
    out: list[tuple[frozenset[str], Ref]] = []
    for team in parsed.of_type("CareTeam"):
        if team.get("status") not in {None, "active"} or not for_patient(team, patient_ref):
            continue
        if ended_before(team, as_of):
            continue
        for participant in maps(team.get("participant")):
            if ended_before(participant, as_of):
                continue
            role_concepts = list(maps(participant.get("role")))
            member_value = participant.get("member")
            member = reference(member_value)
            member_roles = [
                role
                for role in roles_of(member, parsed, npi=npi_of_reference(member_value))
                if _role_current(role, as_of)
            ]
            if member_roles:
                for role in member_roles:
                    sets = specialty_sets(role_concepts + _role_concepts(role))
                    out.append((sets, ref_of(role)))
            elif role_concepts:
                out.append((specialty_sets(role_concepts), ref_of(team)))
    return out


_REFERRAL_INTENTS: Final = frozenset(
    {None, "order", "original-order", "reflex-order", "filler-order", "instance-order"}
)


def _referrals(parsed: Parsed, patient_ref: Ref | None) -> list[Referral]:
    out: list[Referral] = []
    for request in parsed.of_type("ServiceRequest"):
        if request.get("status") not in {"active", "completed"}:
            continue
        if request.get("intent") not in _REFERRAL_INTENTS:
            continue
        if not for_patient(request, patient_ref):
            continue
        concepts: list[Json | None] = [get_map(request, "code")]
        concepts += list(maps(request.get("performerType")))
        concepts += list(maps(request.get("reasonCode")))
        sets = set(specialty_sets(concepts))
        refs = [ref_of(request)]
        for performer in maps(request.get("performer")):
            for role in roles_of(reference(performer), parsed, npi=npi_of_reference(performer)):
                role_sets = specialty_sets(_role_concepts(role))
                if role_sets:
                    sets |= role_sets
                    refs.append(ref_of(role))
        if sets:
            out.append(
                Referral(frozenset(sets), parse_date(request.get("authoredOn")), tuple(refs))
            )
    return out


def _not_this_stay(resource: Json, patient_ref: Ref | None, as_of: date | None) -> str | None:
    """Why an Encounter cannot stand for the setting of today's order, or None."""
    if not for_patient(resource, patient_ref):
        return "The encounter sent with the order is not this patient's"
    status = get_str(resource, "status")
    if status in {"cancelled", "entered-in-error"}:
        return f"The encounter sent with the order is {status.replace('-', ' ')}"
    if status == "finished" and ended_before(resource, as_of):
        return "The encounter sent with the order ended before the order date"
    return None


def encounter(
    encounter_id: str | None,
    parsed: Parsed,
    patient_ref: Ref | None = None,
    as_of: date | None = None,
) -> EncounterFacts | None:
    """The setting of the encounter the order is placed in; None without an encounterId."""
    if not encounter_id:
        return None
    ref = encounter_id if "/" in encounter_id else f"Encounter/{encounter_id}"
    resource = parsed.by_ref.get(ref)
    if resource is None:
        return EncounterFacts(ref=ref, setting="unknown", class_code=None, found=False)
    coding = get_map(resource, "class")
    code = coding.get("code") if coding is not None else None
    code_str = code if isinstance(code, str) else None
    note = _not_this_stay(resource, patient_ref, as_of)
    if note is not None:
        return EncounterFacts(ref=ref, setting="unknown", class_code=code_str, note=note)
    setting = _SETTINGS.get((code_str or "").upper(), "unknown")
    return EncounterFacts(ref=ref, setting=setting, class_code=code_str)


def coverage_refs(parsed: Parsed, patient_ref: Ref | None) -> tuple[Ref, ...]:
    out: list[Ref] = []
    for coverage in parsed.of_type("Coverage"):
        if coverage.get("status") != "active":
            continue
        people = {reference(coverage.get("beneficiary")), reference(coverage.get("subscriber"))}
        if patient_ref is None or patient_ref in people:
            out.append(ref_of(coverage))
    return tuple(out)
