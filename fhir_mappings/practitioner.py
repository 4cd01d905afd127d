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
from dataclasses import dataclass, field, replace
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


@dataclass(frozen=True)
class Role:
    """One PractitionerRole of the chart, as the role look-ups read it."""

    ref: Ref
    practitioner: Ref | None
    """`PractitionerRole.practitioner` as a reference, when it is one."""
    practitioner_npi: str | None
    """The NPI `PractitionerRole.practitioner` names by identifier or condition, if any."""
    specialty_valuesets: frozenset[str]
    """Value sets matched by the role's specialties and codes (`specialty_sets`)."""
    specialty_codes: tuple[str, ...]
    concepts: tuple[Json | None, ...] = field(compare=False, hash=False, repr=False)
    """`specialty` then `code` as sent (a CareTeam participant's role is read with them)."""
    active: bool = True
    """False when the role is marked `active: false`: a post the person no longer holds."""
    ended: date | None = None
    """The last day of the role's `period`, when it states one."""


@dataclass(frozen=True)
class People:
    """The people and roles of one chart, read once per request: every PractitionerRole,
    the NPIs of every Practitioner, the care team and the referrals. Who ordered is per
    order (`prescriber`), looked up here."""

    roles: tuple[Role, ...] = ()
    practitioner_npis: tuple[tuple[Ref, frozenset[str]], ...] = ()
    """(Practitioner reference, the NPIs among its identifiers) for every Practitioner."""
    care_team: tuple[tuple[frozenset[str], Ref, date | None], ...] = ()
    """As `PrescriberFacts.care_team`, each with the last day the membership holds (the
    earliest end of the team's, the participant's and the member role's periods; None when
    none ends): `prescriber` keeps those current on the order date."""
    referrals: tuple[Referral, ...] = ()


def _role(role: Json) -> Role:
    concepts = _role_concepts(role)
    return Role(
        ref=ref_of(role),
        practitioner=reference(role.get("practitioner")),
        practitioner_npi=npi_of_reference(role.get("practitioner")),
        specialty_valuesets=specialty_sets(concepts),
        specialty_codes=tuple(code for c in concepts for _, code, _ in codings(c) if code),
        concepts=tuple(concepts),
        active=role.get("active") is not False,
        ended=period_end(role),
    )


def period_end(resource: Json) -> date | None:
    """The last day of the resource's `period`, when it states one."""
    period = get_map(resource, "period")
    return parse_date(period.get("end"), end=True) if period is not None else None


def _current(ended: date | None, as_of: date | None) -> bool:
    """Not ended before `as_of` (no end, or no date to compare with: current)."""
    return ended is None or as_of is None or ended >= as_of


def _role_current(role: Role, as_of: date | None) -> bool:
    return role.active and _current(role.ended, as_of)


def people(parsed: Parsed, patient_ref: Ref | None) -> People:
    """The chart's roles, practitioners' NPIs, care team and referrals (see the module
    docstring)."""
    index = People(
        roles=tuple(_role(role) for role in parsed.of_type("PractitionerRole")),
        practitioner_npis=tuple((ref_of(p), npis_of(p)) for p in parsed.of_type("Practitioner")),
    )
    return People(
        roles=index.roles,
        practitioner_npis=index.practitioner_npis,
        care_team=tuple(_care_team(parsed, patient_ref, index)),
        referrals=tuple(_referrals(parsed, patient_ref, index)),
    )


def roles_of(ref: Ref | None, index: People, *, npi: str | None = None) -> list[Role]:
    """PractitionerRoles for a PractitionerRole or Practitioner reference, or for the
    person an NPI names (`npi`, from an identifier or conditional reference).

    A role belongs to a Practitioner when its `practitioner` references it, or names by
    identifier an NPI that the Practitioner (or `npi`) carries."""
    if ref is not None and ref.startswith("PractitionerRole/"):
        return [role for role in index.roles if role.ref == ref][:1]
    persons: set[str] = set()
    npis: set[str] = {npi} if npi else set()
    if ref is not None and ref.startswith("Practitioner/"):
        persons.add(ref)
        for person, found in index.practitioner_npis:
            if person == ref:
                npis |= found
                break
    if npis:
        persons |= {person for person, found in index.practitioner_npis if found & npis}
    if not persons and not npis:
        return []
    return [
        role
        for role in index.roles
        if role.practitioner in persons or role.practitioner_npi in npis
    ]


def _person_ref(npi: str | None, index: People) -> Ref | None:
    """The Practitioner an NPI names, or a plain label for it when none was sent."""
    if npi is None:
        return None
    for person, found in index.practitioner_npis:
        if npi in found:
            return person
    return f"Practitioner (NPI {npi})"


def prescriber(
    requester_ref: Ref | None,
    user_ref: Ref | None,
    index: People,
    requester_npi: str | None = None,
    as_of: date | None = None,
) -> PrescriberFacts:
    """Who ordered one order, from the chart's people (`people`). `requester_npi`: the NPI
    the order's requester names (`npi_of_reference`), for a requester named by NPI
    (identifier or conditional reference) rather than by id. `as_of`: the order date (roles
    and care-team memberships that ended before it are not read)."""
    npi = requester_npi
    if npi is not None and (requester_ref is None or "?" in requester_ref):
        requester_ref = _person_ref(npi, index)
    roles: dict[str, Role] = {}
    for ref, ref_npi in ((requester_ref, npi), (user_ref, None)):
        for role in roles_of(ref, index, npi=ref_npi):
            if _role_current(role, as_of):
                roles.setdefault(role.ref, role)
    sets: set[str] = set()
    codes: list[str] = []
    for role in roles.values():
        sets |= role.specialty_valuesets
        codes.extend(role.specialty_codes)
    refs = tuple(dict.fromkeys([*(r for r in (requester_ref,) if r), *roles]))
    return PrescriberFacts(
        requester_ref=requester_ref or user_ref,
        specialty_valuesets=frozenset(sets),
        specialty_codes=tuple(dict.fromkeys(codes)),
        has_role_data=bool(roles),
        refs=refs,
        care_team=tuple(
            (sets, ref) for sets, ref, ended in index.care_team if _current(ended, as_of)
        ),
        referrals=index.referrals,
    )


def _earliest(*days: date | None) -> date | None:
    known = [d for d in days if d is not None]
    return min(known) if known else None


def _care_team(
    parsed: Parsed, patient_ref: Ref | None, index: People
) -> list[tuple[frozenset[str], Ref, date | None]]:
    out: list[tuple[frozenset[str], Ref, date | None]] = []
    for team in parsed.of_type("CareTeam"):
        if team.get("status") not in {None, "active"} or not for_patient(team, patient_ref):
            continue
        team_end = period_end(team)
        for participant in maps(team.get("participant")):
            member_end = _earliest(team_end, period_end(participant))
            role_concepts = list(maps(participant.get("role")))
            member_value = participant.get("member")
            member = reference(member_value)
            member_roles = [
                role
                for role in roles_of(member, index, npi=npi_of_reference(member_value))
                if role.active
            ]
            if member_roles:
                for role in member_roles:
                    sets = specialty_sets(role_concepts + list(role.concepts))
                    out.append((sets, role.ref, _earliest(member_end, role.ended)))
            elif role_concepts:
                out.append((specialty_sets(role_concepts), ref_of(team), member_end))
    return out


_REFERRAL_INTENTS: Final = frozenset(
    {None, "order", "original-order", "reflex-order", "filler-order", "instance-order"}
)


def _referrals(parsed: Parsed, patient_ref: Ref | None, index: People) -> list[Referral]:
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
            for role in roles_of(reference(performer), index, npi=npi_of_reference(performer)):
                if role.specialty_valuesets:
                    sets |= role.specialty_valuesets
                    refs.append(role.ref)
        if sets:
            out.append(
                Referral(frozenset(sets), parse_date(request.get("authoredOn")), tuple(refs))
            )
    return out


def _not_this_stay(resource: Json, patient_ref: Ref | None) -> str | None:
    """Why an Encounter cannot stand for the setting of this order, whatever its date, or
    None (see `ended_before_order` for the date)."""
    if not for_patient(resource, patient_ref):
        return "The encounter sent with the order is not this patient's"
    status = get_str(resource, "status")
    if status in {"cancelled", "entered-in-error"}:
        return f"The encounter sent with the order is {status.replace('-', ' ')}"
    return None


ENDED_BEFORE_ORDER: Final = "The encounter sent with the order ended before the order date"


def encounter(
    encounter_id: str | None, parsed: Parsed, patient_ref: Ref | None = None
) -> EncounterFacts | None:
    """The setting of the encounter the order is placed in; None without an encounterId.
    A finished encounter keeps its end (`EncounterFacts.ended`) for `ended_before_order`."""
    if not encounter_id:
        return None
    ref = encounter_id if "/" in encounter_id else f"Encounter/{encounter_id}"
    resource = parsed.by_ref.get(ref)
    if resource is None:
        return EncounterFacts(ref=ref, setting="unknown", class_code=None, found=False)
    coding = get_map(resource, "class")
    code = coding.get("code") if coding is not None else None
    code_str = code if isinstance(code, str) else None
    note = _not_this_stay(resource, patient_ref)
    if note is not None:
        return EncounterFacts(ref=ref, setting="unknown", class_code=code_str, note=note)
    setting = _SETTINGS.get((code_str or "").upper(), "unknown")
    ended = period_end(resource) if get_str(resource, "status") == "finished" else None
    return EncounterFacts(ref=ref, setting=setting, class_code=code_str, ended=ended)


def ended_before_order(
    found: EncounterFacts | None, order_date: date | None
) -> EncounterFacts | None:
    """The encounter as the setting of an order of `order_date`: a stay that finished before
    that day says nothing about where this order is given (setting unknown, with why)."""
    if found is None or found.ended is None or order_date is None:
        return found
    if found.ended >= order_date or found.note is not None:
        return found
    return replace(found, setting="unknown", note=ENDED_BEFORE_ORDER)


def coverage_refs(parsed: Parsed, patient_ref: Ref | None) -> tuple[Ref, ...]:
    out: list[Ref] = []
    for coverage in parsed.of_type("Coverage"):
        if coverage.get("status") != "active":
            continue
        people = {reference(coverage.get("beneficiary")), reference(coverage.get("subscriber"))}
        if patient_ref is None or patient_ref in people:
            out.append(ref_of(coverage))
    return tuple(out)
