"""Documentation the prescriber gave in a completed QuestionnaireResponse, as chart records.

The service's documentation templates (`cds_service/dtr/questionnaire.py`) ask for records of
a few generic shapes, each a group whose linkId ends in the shape's name, with fields
`<group>/<field>`. This module turns each answered group into the FHIR resource a chart would
hold for it, so that the ordinary mapping reads it like any other record and the policy
decides with it. It knows shapes and fields, never a drug, a criterion or a policy.

| shape | record |
|---|---|
| `trial`, `current-therapy`| MedicationStatement (drug, period, dose); no end: to the day written |
| `intolerance` | AllergyIntolerance to the drug (allergy; else intolerance) |
| `measurement` | Observation (test code, value with unit, date) |
| `test-result` | Observation (test code, interpretation: the result in words, date) |
| `body-weight` | Observation LOINC 29463-7 |
| `specialty` | ServiceRequest (a referral to the specialty, performerType, dated) |
| `diagnosis` | Condition (code, confirmed or provisional, onset) |
| `gene-result` | Observation LOINC 69548-6 with the gene (48018-6) and the classification |
| `episode` | Condition (code, onset, abatement: resolved) |
| `findings` | Condition per finding picked |
| `response` | Observation (the group's code, interpretation: improved / unchanged / worse) |
| `birth-date` | fills the Patient's birth date when the chart has none or only part of it |

Every record made here has the id `<response id>.<n>` and `meta.source`
`QuestionnaireResponse/<response id>#<linkId>`: `provenance` maps the record back to the
answer, so the evidence can say "documented by the prescriber". Other shapes (dose, setting,
stopped therapy, evidence ...) are statements for the reviewer and make no record.

Answers are checked on the way: a date after `as_of`, a quantity in a unit the field does not
take, a choice with no coding: the answer is not used and an `AnswerIssue` says why; the other
answers of the response are still used. A birth date that contradicts the chart's is never
used: the chart decides, and the conflict is an issue too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fhir_mappings.fields import parse_date

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
USED_STATUSES = frozenset({"completed", "amended"})
QUANTITY_UNITS: Mapping[str, frozenset[str]] = {
    "dose": frozenset({"mg", "g", "ug", "mcg"}),
    "current": frozenset({"mg", "g", "ug", "mcg"}),
    "amount": frozenset({"mg", "g", "ug", "mcg"}),
    "body-weight": frozenset({"kg", "g", "[lb_av]", "lb"}),
    "measurement": frozenset({"mg/L", "mg/dL"}),
}
"""Units a quantity answer may be in, by the field (or, for `value`, the group's shape)."""


@dataclass(frozen=True)
class AnswerIssue:
    link_id: str
    message: str
    severity: str = "error"


@dataclass(frozen=True)
class Documented:
    """What the responses add to the chart."""

    resources: tuple[Mapping[str, Any], ...] = ()
    provenance: Mapping[str, str] = field(default_factory=dict)
    """`ResourceType/id` of a made record -> `QuestionnaireResponse/<id>#<linkId>`."""
    issues: tuple[AnswerIssue, ...] = ()
    responses: tuple[str, ...] = ()
    """`QuestionnaireResponse/<id>` of every response read."""


def _shape(link_id: str) -> str:
    return link_id.rsplit("/", 1)[-1]


def _fields(group: Mapping[str, Any]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for item in group.get("item") or []:
        if isinstance(item, Mapping) and isinstance(item.get("linkId"), str):
            answers = [a for a in item.get("answer") or [] if isinstance(a, Mapping)]
            out[_shape(item["linkId"])] = answers
    return out


def _groups(items: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    """Every group of the response (a group: an item with items), depth first."""
    for item in items:
        if not isinstance(item, Mapping):
            continue
        children = item.get("item")
        if isinstance(children, list) and children:
            yield item
            yield from _groups(children)


@dataclass
class _Reader:
    response_id: str
    patient_ref: str
    authored: date | None
    as_of: date
    issues: list[AnswerIssue] = field(default_factory=list)

    def issue(self, link_id: str, message: str) -> None:
        self.issues.append(AnswerIssue(link_id, message))

    def date_of(self, group: str, name: str, answers: Sequence[Mapping[str, Any]]) -> str | None:
        for answer in answers:
            text = answer.get("valueDate") or answer.get("valueDateTime")
            if not isinstance(text, str):
                self.issue(f"{group}/{name}", "a date is expected")
                return None
            parsed = parse_date(text)
            if parsed is None:
                self.issue(f"{group}/{name}", f"{text!r} is not a date")
                return None
            if parsed > self.as_of:
                self.issue(f"{group}/{name}", f"{text} is in the future: not used")
                return None
            return text
        return None

    def coding(
        self, group: str, name: str, answers: Sequence[Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for answer in answers:
            coding = answer.get("valueCoding")
            if isinstance(coding, Mapping) and (coding.get("code") or coding.get("display")):
                out.append(dict(coding))
            else:
                self.issue(f"{group}/{name}", "a coded answer (valueCoding) is expected")
        return out

    def quantity(
        self, group: str, name: str, answers: Sequence[Mapping[str, Any]], shape: str
    ) -> Mapping[str, Any] | None:
        for answer in answers:
            value = answer.get("valueQuantity")
            if not isinstance(value, Mapping) or not isinstance(value.get("value"), int | float):
                if isinstance(answer.get("valueDecimal"), int | float) and shape != "body-weight":
                    return {"value": answer["valueDecimal"]}
                self.issue(f"{group}/{name}", "a quantity with a value and a unit is expected")
                return None
            unit = value.get("code") or value.get("unit")
            allowed = QUANTITY_UNITS.get(name) or QUANTITY_UNITS.get(shape)
            if allowed is not None and unit not in allowed:
                self.issue(
                    f"{group}/{name}",
                    f"unit {unit!r} is not one this item takes ({', '.join(sorted(allowed))}):"
                    " not used",
                )
                return None
            return {"value": value["value"], "unit": unit, "system": UCUM, "code": unit}
        return None

    def text(self, answers: Sequence[Mapping[str, Any]]) -> str | None:
        for answer in answers:
            for key in ("valueString", "valueCoding"):
                value = answer.get(key)
                if isinstance(value, str):
                    return value
                if isinstance(value, Mapping):
                    return str(value.get("display") or value.get("code") or "") or None
        return None

    def boolean(self, answers: Sequence[Mapping[str, Any]]) -> bool | None:
        for answer in answers:
            if isinstance(answer.get("valueBoolean"), bool):
                return bool(answer["valueBoolean"])
        return None


def _subject(reader: _Reader) -> dict[str, str]:
    return {"reference": reader.patient_ref}


def _trial(reader: _Reader, link: str, f: Mapping[str, Any]) -> list[dict[str, Any]]:
    drugs = reader.coding(link, "drug", f.get("drug", []))
    start = reader.date_of(link, "start", f.get("start", []))
    dose = reader.quantity(link, "dose", f.get("dose", []), "trial")
    if not drugs or start is None:
        if f.get("drug") or f.get("start"):
            reader.issue(link, "a drug and a start date are needed for the record to count")
        return []
    end = reader.date_of(link, "end", f.get("end", [])) or reader.date_of(
        link, "last", f.get("last", [])
    )
    still = end is None
    if still:
        end = reader.authored.isoformat() if reader.authored else None
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "status": "active" if still else "completed",
        "medicationCodeableConcept": {"coding": drugs, "text": drugs[0].get("display")},
        "subject": _subject(reader),
        "effectivePeriod": {"start": start, **({"end": end} if end else {})},
    }
    if dose is not None:
        resource["dosage"] = [{"doseAndRate": [{"doseQuantity": dose}]}]
    return [resource]


def _intolerance(reader: _Reader, link: str, f: Mapping[str, Any]) -> list[dict[str, Any]]:
    drugs = reader.coding(link, "drug", f.get("drug", []))
    kind = (reader.text(f.get("kind", [])) or "").lower()
    if not drugs:
        return []
    noted = reader.date_of(link, "date", f.get("date", []))
    resource: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "clinicalStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active"
        ),
        "verificationStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed"
        ),
        "type": "allergy" if kind.startswith("allergy") else "intolerance",
        "category": ["medication"],
        "code": {"coding": drugs, "text": drugs[0].get("display")},
        "patient": _subject(reader),
    }
    description = reader.text(f.get("description", []))
    if description:
        resource["note"] = [{"text": description}]
    if noted:
        resource["recordedDate"] = noted
    return [resource]


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _observation(
    reader: _Reader, code: Sequence[Mapping[str, Any]], when: str, **values: Any
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": list(code), "text": code[0].get("display") if code else None},
        "subject": _subject(reader),
        "effectiveDateTime": when,
        **values,
    }


def _measurement(reader: _Reader, link: str, f: Mapping[str, Any]) -> list[dict[str, Any]]:
    tests = reader.coding(link, "test", f.get("test", []))
    when = reader.date_of(link, "date", f.get("date", []))
    value = reader.quantity(link, "value", f.get("value", []), "measurement")
    if not tests or when is None or value is None:
        return []
    return [_observation(reader, tests, when, valueQuantity=value)]


def _test_result(reader: _Reader, link: str, f: Mapping[str, Any]) -> list[dict[str, Any]]:
    tests = reader.coding(link, "test", f.get("test", []))
    when = reader.date_of(link, "date", f.get("date", []))
    result = reader.text(f.get("result", []))
    if not tests or when is None or not result:
        return []
    return [_observation(reader, tests, when, interpretation=[{"text": result}])]


def _body_weight(reader: _Reader, link: str, f: Mapping[str, Any]) -> list[dict[str, Any]]:
    when = reader.date_of(link, "date", f.get("date", []))
    value = reader.quantity(link, "value", f.get("value", []), "body-weight")
    if when is None or value is None:
        return []
    code = [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]
    return [_observation(reader, code, when, valueQuantity=value)]


def _specialty(reader: _Reader, link: str, f: Mapping[str, Any]) -> list[dict[str, Any]]:
    specialties = reader.coding(link, "specialty", f.get("specialty", []))
    if not specialties:
        return []
    when = reader.date_of(link, "date", f.get("date", []))
    authored = when or (reader.authored.isoformat() if reader.authored else None)
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "completed",
        "intent": "order",
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "3457005"}]}],
        "code": {"text": "Consultation documented by the prescriber"},
        "performerType": {"coding": specialties},
        "subject": _subject(reader),
    }
    if authored:
        resource["authoredOn"] = authored
    name = reader.text(f.get("name", []))
    if name:
        resource["note"] = [{"text": name}]
    return [resource]


def _condition(
    reader: _Reader,
    codes: Sequence[Mapping[str, Any]],
    confirmed: bool,
    onset: str | None,
    abated: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "resolved" if abated else "active",
        ),
        "verificationStatus": _concept(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "confirmed" if confirmed else "provisional",
        ),
        "code": {"coding": list(codes), "text": codes[0].get("display")},
        "subject": _subject(reader),
    }
    if onset:
        resource["onsetDateTime"] = onset
    if abated:
        resource["abatementDateTime"] = abated
    return resource


def _diagnosis(reader: _Reader, link: str, f: Mapping[str, Any]) -> list[dict[str, Any]]:
    codes = reader.coding(link, "code", f.get("code", []))
    if not codes:
        return []
    confirmed = reader.boolean(f.get("confirmed", [])) is True
    onset = reader.date_of(link, "date", f.get("date", []))
    return [_condition(reader, codes, confirmed, onset)]


def _episode(reader: _Reader, link: str, f: Mapping[str, Any]) -> list[dict[str, Any]]:
    codes = reader.coding(link, "condition", f.get("condition", []))
    start = reader.date_of(link, "start", f.get("start", []))
    if not codes or start is None:
        return []
    end = reader.date_of(link, "end", f.get("end", []))
    return [_condition(reader, codes, True, start, end)]


def _findings(reader: _Reader, link: str, f: Mapping[str, Any]) -> list[dict[str, Any]]:
    noted = reader.date_of(link, "date", f.get("date", []))
    return [
        _condition(reader, [coding], True, noted)
        for coding in reader.coding(link, "finding", f.get("finding", []))
    ]


def _gene_result(reader: _Reader, link: str, f: Mapping[str, Any]) -> list[dict[str, Any]]:
    gene = reader.text(f.get("gene", []))
    classification = reader.text(f.get("classification", []))
    when = reader.date_of(link, "date", f.get("date", []))
    if not gene or not classification or when is None:
        return []
    code = [{"system": LOINC, "code": "69548-6", "display": "Genetic variant assessment"}]
    return [
        _observation(
            reader,
            code,
            when,
            valueCodeableConcept={"text": classification},
            component=[
                {
                    "code": {"coding": [{"system": LOINC, "code": "48018-6"}]},
                    "valueCodeableConcept": {"text": gene},
                }
            ],
        )
    ]


def _response(
    reader: _Reader, link: str, f: Mapping[str, Any], code: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    assessment = reader.text(f.get("assessment", []))
    when = reader.date_of(link, "date", f.get("date", []))
    if not assessment or when is None or not code:
        return []
    return [_observation(reader, code, when, interpretation=[{"text": assessment}])]


SHAPES = {
    "trial": _trial,
    "current-therapy": _trial,
    "intolerance": _intolerance,
    "measurement": _measurement,
    "test-result": _test_result,
    "body-weight": _body_weight,
    "specialty": _specialty,
    "diagnosis": _diagnosis,
    "episode": _episode,
    "findings": _findings,
    "gene-result": _gene_result,
}


def _birth_date(
    reader: _Reader, link: str, f: Mapping[str, Any], patient: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    """The Patient with the answered birth date when the chart lacks a full one; None
    otherwise (a conflict with the chart's is an issue, never used)."""
    answered = reader.date_of(link, "value", f.get("value", []))
    if answered is None or patient is None:
        return None
    on_file = patient.get("birthDate")
    if isinstance(on_file, str) and len(on_file) >= 10:
        if on_file != answered:
            reader.issue(
                f"{link}/value",
                f"the documented birth date {answered} contradicts the chart's; the chart's is"
                " used",
            )
        return None
    if isinstance(on_file, str) and on_file and not answered.startswith(on_file):
        reader.issue(
            f"{link}/value",
            f"the documented birth date {answered} does not fit the chart's {on_file}; the"
            " chart's is used",
        )
        return None
    return {**patient, "birthDate": answered}


def read_response(
    response: Mapping[str, Any],
    *,
    patient: Mapping[str, Any] | None,
    as_of: date,
    group_codes: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, str], list[AnswerIssue], Mapping[str, Any] | None]:
    """(records, provenance, issues, the Patient with a filled birth date or None) of one
    response. `group_codes`: the code a group's record takes when the response's answers
    carry none (a response assessment's), by the group's linkId."""
    response_id = str(response.get("id") or "response")
    subject = response.get("subject")
    patient_ref = subject.get("reference") if isinstance(subject, Mapping) else None
    reader = _Reader(
        response_id=response_id,
        patient_ref=str(patient_ref or ""),
        authored=parse_date(str(response.get("authored") or "")) or as_of,
        as_of=as_of,
    )
    made: list[dict[str, Any]] = []
    provenance: dict[str, str] = {}
    patient_out: Mapping[str, Any] | None = None
    for group in _groups(response.get("item") or []):
        link = str(group.get("linkId"))
        shape = _shape(link)
        f = _fields(group)
        if shape == "birth-date":
            patient_out = _birth_date(reader, link, f, patient) or patient_out
            continue
        if shape == "response":
            records = _response(reader, link, f, (group_codes or {}).get(link, ()))
        elif shape in SHAPES:
            records = SHAPES[shape](reader, link, f)
        else:
            continue
        for resource in records:
            resource["id"] = f"{response_id}.{len(made) + 1}"
            resource["meta"] = {"source": f"QuestionnaireResponse/{response_id}#{link}"}
            made.append(resource)
            provenance[f"{resource['resourceType']}/{resource['id']}"] = (
                f"QuestionnaireResponse/{response_id}#{link}"
            )
    return made, provenance, reader.issues, patient_out


def documented(
    resources: Sequence[Mapping[str, Any]],
    *,
    patient_ref: str | None,
    as_of: date,
    accepts: Any = None,
    group_codes: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> Documented:
    """The records of every completed (or amended) QuestionnaireResponse among `resources`
    about the patient whose `questionnaire` `accepts(canonical)` says is one of ours."""
    patient = next(
        (
            r
            for r in resources
            if r.get("resourceType") == "Patient"
            and patient_ref is not None
            and f"Patient/{r.get('id')}" == patient_ref
        ),
        None,
    )
    made: list[Mapping[str, Any]] = []
    provenance: dict[str, str] = {}
    issues: list[AnswerIssue] = []
    read: list[str] = []
    for response in resources:
        if response.get("resourceType") != "QuestionnaireResponse":
            continue
        if response.get("status") not in USED_STATUSES:
            continue
        subject = response.get("subject")
        ref = subject.get("reference") if isinstance(subject, Mapping) else None
        if patient_ref is None or ref != patient_ref:
            continue
        if accepts is not None and not accepts(str(response.get("questionnaire") or "")):
            continue
        records, prov, found, filled = read_response(
            response, patient=patient, as_of=as_of, group_codes=group_codes
        )
        made.extend(records)
        provenance.update(prov)
        issues.extend(found)
        read.append(f"QuestionnaireResponse/{response.get('id')}")
        if filled is not None:
            patient = filled
            made.append(filled)
            provenance[f"Patient/{filled.get('id')}"] = (
                f"QuestionnaireResponse/{response.get('id')}"
            )
    return Documented(tuple(made), provenance, tuple(issues), tuple(read))
