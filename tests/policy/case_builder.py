"""Turn a compact case description (YAML) into `PolicyFacts`.

A case states only what matters; everything else has a neutral default (no data).
`base: NAME` starts from `NAME.yaml` in the bases folder of the case's pack
(`tests/policy/bases` for NH.PHAR.244, `cases/bases` inside other packs) and deep-merges
the case's `facts` over it (mappings merge, lists replace). Dates are ISO dates or whole
numbers of days relative to the order date (-30 = thirty days before the order).

The order's dose (`order.dose`) takes the fields of `DoseFacts` by name: the per-day
arithmetic (`mg_per_day`, `mg_per_administration`, `syringes_per_day` ...), the schedule
(`loading_mg`, `maintenance_mg`, `interval_days`, `schedule_reasons`), the dispense
(`dispense_units`, `dispense_days`), `lines` (`{mg, per_day, sequence, count}` each) and
`weight`. The product unit (vials, syringes) is the pack's, given by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from fhir_mappings.facts import (
    ConditionRecord,
    Diagnosis,
    DoseFacts,
    DoseLine,
    EncounterFacts,
    GeneticResult,
    Intolerance,
    Measurement,
    MedicationRecord,
    OrderFacts,
    PolicyFacts,
    PrescriberFacts,
    Referral,
    TherapyRun,
    WeightFact,
)
from fhir_mappings.product_unit import ProductUnit

HERE = Path(__file__).parent
CASES = HERE / "cases"
BASES = HERE / "bases"
DEFAULT_ORDER_DATE = date(2025, 6, 2)

_CODES = {
    "rheumatoid-arthritis": ("http://hl7.org/fhir/sid/icd-10-cm", "M05.79", "Rheumatoid arthritis"),
    "nomid-cinca": ("http://snomed.info/sct", "427245005", "NOMID / CINCA"),
    "caps-unspecified": ("http://hl7.org/fhir/sid/icd-10-cm", "M04.2", "CAPS"),
    "caps-fcas-mws": ("http://snomed.info/sct", "403834004", "Muckle-Wells syndrome"),
    "dira": ("http://hl7.org/fhir/sid/icd-10-cm", "M04.8", "DIRA"),
    "autoinflammatory-other": (
        "http://hl7.org/fhir/sid/icd-10-cm",
        "M04.8",
        "Other autoinflammatory syndromes",
    ),
    "covid-19": ("http://hl7.org/fhir/sid/icd-10-cm", "U07.1", "COVID-19"),
    "mtx-contraindication": ("http://hl7.org/fhir/sid/icd-10-cm", "K70.30", "Alcoholic cirrhosis"),
}
_COMBINATION_SETS = {
    "adalimumab": ["tnf-blocker", "preferred-ra-product"],
    "etanercept": ["tnf-blocker"],
    "tocilizumab": ["interleukin-agent", "preferred-ra-product"],
    "canakinumab": ["interleukin-agent"],
    "rilonacept": ["interleukin-agent"],
    "tofacitinib": ["jak-inhibitor", "preferred-ra-product"],
    "baricitinib": ["jak-inhibitor"],
    "rituximab": ["anti-cd20"],
    "abatacept": ["costimulation-modulator"],
    "vedolizumab": ["integrin-antagonist"],
}
_DRUG_SETS = {
    "methotrexate": ["methotrexate"],
    "sulfasalazine": ["conventional-dmard"],
    "leflunomide": ["conventional-dmard"],
    "hydroxychloroquine": ["conventional-dmard"],
    "anakinra": ["anakinra"],
}


def load_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: expected a mapping"
    return data


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def case_facts_spec(case: Mapping[str, Any], bases: Path = BASES) -> dict[str, Any]:
    """The facts of a case: its base (a file of `bases`) with the case's `facts` over it."""
    spec: dict[str, Any] = {}
    if case.get("base"):
        base = load_yaml(bases / f"{case['base']}.yaml")
        spec = deep_merge(spec, base)
    return deep_merge(spec, case.get("facts") or {})


def drug_valuesets(drug: str) -> frozenset[str]:
    if drug in _COMBINATION_SETS:
        return frozenset([*_COMBINATION_SETS[drug], "biologic-dmard-or-jak-inhibitor"])
    return frozenset(_DRUG_SETS.get(drug, [drug]))


class _Builder:
    def __init__(self, spec: Mapping[str, Any], unit: ProductUnit | None = None):
        self.spec = spec
        self.unit = unit
        self.order_date: date = self.when(spec.get("order_date"), DEFAULT_ORDER_DATE) or (
            DEFAULT_ORDER_DATE
        )
        self.counter = 0

    def when(self, value: Any, default: date | None = None) -> date | None:
        if value is None:
            return default
        if isinstance(value, bool):
            raise TypeError("a date cannot be true/false")
        if isinstance(value, int):
            return getattr(self, "order_date", DEFAULT_ORDER_DATE) + timedelta(days=value)
        if isinstance(value, date):
            return value
        return date.fromisoformat(str(value))

    def ref(self, resource_type: str) -> str:
        self.counter += 1
        return f"{resource_type}/{resource_type.lower()}-{self.counter}"

    def diagnosis(self, raw: Any, source: str) -> Diagnosis:
        if isinstance(raw, str):
            raw = {"valuesets": [raw]}
        sets = raw.get("valuesets", [])
        system, code, display = _CODES.get(sets[0] if sets else "", ("local", "X", "Other"))
        return Diagnosis(
            valuesets=frozenset(sets),
            system=raw.get("system", system),
            code=raw.get("code", code),
            display=raw.get("display", display),
            source="order-reason" if source == "reason" else "condition",
            refs=(raw.get("ref") or self.ref("Condition"),),
            recorded=self.when(raw.get("recorded")),
            verification=raw.get("verification", "confirmed"),
            text_only=frozenset(raw.get("text_only", ())),
        )

    def condition_record(self, raw: Any) -> ConditionRecord:
        """A recorded condition: `valuesets`, `onset` / `onset_latest`, `abatement` /
        `abatement_earliest` (dates or day offsets), `abated` (default: an abatement is
        given), `status` (clinical status), `source`, `verification`, `code`, `display`."""
        sets = raw.get("valuesets", [])
        onset = self.when(raw.get("onset"))
        abatement = self.when(raw.get("abatement"))
        return ConditionRecord(
            valuesets=frozenset(sets),
            system=raw.get("system", "http://snomed.info/sct"),
            code=raw.get("code", "X"),
            display=raw.get("display", sets[0] if sets else "Other"),
            ref=raw.get("ref") or self.ref("Condition"),
            source=raw.get("source", "problem-list"),
            onset=onset,
            onset_latest=self.when(raw.get("onset_latest")) or onset,
            abatement=abatement,
            abatement_earliest=self.when(raw.get("abatement_earliest")) or abatement,
            abated=bool(raw.get("abated", abatement is not None)),
            clinical_status=raw.get("status"),
            verification=raw.get("verification", "confirmed"),
            recorded=self.when(raw.get("recorded")),
        )

    def dose(self, raw: Mapping[str, Any]) -> DoseFacts:
        weight = None
        if raw.get("weight"):
            w = raw["weight"]
            weight = WeightFact(
                kg=float(w["kg"]),
                effective=self.when(w.get("date"), self.order_date),
                ref=w.get("ref") or self.ref("Observation"),
            )
        return DoseFacts(
            mg_per_day=raw.get("mg_per_day"),
            administrations_per_day=raw.get("administrations_per_day"),
            mg_per_administration=tuple(raw.get("mg_per_administration", ())),
            syringes_per_day=raw.get("syringes_per_day"),
            weight_based_syringes_per_day=raw.get("weight_based_syringes_per_day"),
            mg_per_kg_per_day=raw.get("mg_per_kg_per_day"),
            weight=weight,
            dispense_syringes_per_day=raw.get("dispense_syringes_per_day"),
            duration_days=raw.get("duration_days"),
            unknown_reasons=tuple(raw.get("unknown_reasons", ())),
            from_text=bool(raw.get("from_text", False)),
            lines=tuple(
                DoseLine(
                    mg=line.get("mg"),
                    per_day=line.get("per_day"),
                    sequence=line.get("sequence"),
                    count=line.get("count"),
                )
                for line in raw.get("lines", ())
            ),
            unit=self.unit,
            loading_mg=raw.get("loading_mg"),
            maintenance_mg=raw.get("maintenance_mg"),
            interval_days=raw.get("interval_days"),
            schedule_reasons=tuple(raw.get("schedule_reasons", ())),
            dispense_units=raw.get("dispense_units"),
            dispense_days=raw.get("dispense_days"),
        )

    def build(self) -> PolicyFacts:
        s = self.spec
        o = s.get("order") or {}
        authored = o.get("authored_on", 0)
        order = OrderFacts(
            ref="MedicationRequest/order-1",
            resource_id="order-1",
            authored_on=self.when(authored) if authored is not None else None,
            status="draft",
            intent="order",
            matched_by="ingredient-code",
            reasons=tuple(self.diagnosis(r, "reason") for r in o.get("reasons", [])),
            dose=self.dose(o.get("dose") or {}),
            requester_ref="PractitionerRole/requester",
            resource={"resourceType": "MedicationRequest", "id": "order-1"},
        )
        p = s.get("prescriber") or {}
        prescriber = PrescriberFacts(
            requester_ref="PractitionerRole/requester",
            specialty_valuesets=frozenset(p.get("specialties", [])),
            specialty_codes=tuple(p.get("codes", [])),
            has_role_data=bool(p.get("has_role_data", bool(p.get("specialties")))),
            refs=("PractitionerRole/requester",),
            care_team=tuple(
                (frozenset(sets), self.ref("CareTeam")) for sets in p.get("care_team", [])
            ),
            referrals=tuple(
                Referral(
                    valuesets=frozenset(r.get("valuesets", ["rheumatology"])),
                    authored=self.when(r.get("authored")),
                    refs=(self.ref("ServiceRequest"),),
                )
                for r in p.get("referrals", [])
            ),
        )
        medications = tuple(
            MedicationRecord(
                ref=m.get("ref") or self.ref(m.get("type", "MedicationStatement")),
                resource_type=m.get("type", "MedicationStatement"),
                drug=m["drug"],
                valuesets=frozenset(m["valuesets"])
                if "valuesets" in m
                else frozenset()
                if m.get("unidentified")
                else drug_valuesets(m["drug"]),
                matched_by="none" if m.get("unidentified") else "ingredient-code",
                status=m.get("status", "active"),
                start=self.when(m.get("start")),
                end=self.when(m.get("end")),
                is_draft_order=bool(m.get("draft", False)),
                mg_per_day=m.get("mg_per_day"),
                unidentified=bool(m.get("unidentified", False)),
                days_supply=m.get("days_supply"),
            )
            for m in s.get("medications", [])
        )
        runs = []
        for r in s.get("therapy_runs", []):
            start = self.when(r["start"])
            end = self.when(r["end"])
            assert start is not None
            assert end is not None
            runs.append(
                TherapyRun(
                    drug=r["drug"],
                    valuesets=frozenset(r["valuesets"])
                    if "valuesets" in r
                    else drug_valuesets(r["drug"]),
                    start=start,
                    end=end,
                    days=int(r.get("days", (end - start).days)),
                    refs=(self.ref(r.get("type", "MedicationStatement")),),
                    certainty=r.get("certainty", "documented"),
                    open_ended=bool(r.get("open_ended", False)),
                    estimated_from=tuple(r.get("estimated_from", ())),
                )
            )
        intolerances = tuple(
            Intolerance(
                valuesets=frozenset(i.get("valuesets") or drug_valuesets(i["substance"])),
                kind=i.get("kind", "allergy"),
                substance=i["substance"],
                reason=i.get("reason", ""),
                refs=(self.ref("AllergyIntolerance"),),
            )
            for i in s.get("intolerances", [])
        )
        measurements = tuple(
            Measurement(
                kind=m["kind"],
                value=m.get("value"),
                unit=m.get("unit"),
                effective=self.when(m.get("date"), self.order_date)
                if m.get("date", 0) is not None
                else None,
                ref=self.ref("Observation"),
                reference_high=m.get("ref_high"),
                interpretation=m.get("interpretation"),
                reference_unit=m.get("ref_unit"),
            )
            for m in s.get("measurements", [])
        )
        weight = order.dose.weight
        if weight is not None and not any(m.kind == "body-weight" for m in measurements):
            # The mapping reads the dose's weight from the body weights on file: a case that
            # gives only the dose's weight has that body weight too.
            measurements += (
                Measurement(
                    kind="body-weight",
                    value=weight.kg,
                    unit="kg",
                    effective=weight.effective,
                    ref=weight.ref,
                ),
            )
        genetic = tuple(
            GeneticResult(
                gene=g.get("gene", "IL1RN"),
                finding=g["finding"],
                effective=self.when(g.get("date"), self.order_date),
                refs=(self.ref("Observation"),),
            )
            for g in s.get("genetic", [])
        )
        enc = s.get("encounter")
        encounter = (
            EncounterFacts(ref="Encounter/enc-1", setting=enc["setting"], class_code=None)
            if enc
            else None
        )
        birth = s.get("birth_date")
        return PolicyFacts(
            order=order,
            patient_ref="Patient/p1",
            birth_date=self.when(birth) if birth is not None else None,
            diagnoses=tuple(self.diagnosis(d, "condition") for d in s.get("diagnoses", [])),
            prescriber=prescriber,
            medications=medications,
            therapy_runs=tuple(runs),
            intolerances=intolerances,
            measurements=measurements,
            genetic_results=genetic,
            encounter=encounter,
            coverage_refs=("Coverage/c1",),
            unavailable=frozenset(s.get("unavailable", [])),
            condition_history=tuple(
                self.condition_record(c) for c in s.get("condition_history", [])
            ),
        )


def build_facts(
    spec: Mapping[str, Any], unit: ProductUnit | None = None
) -> tuple[PolicyFacts, date]:
    """The facts of a case and the `today` to evaluate them with (the order date);
    `unit`: the product unit of the pack's drug (drug.json), for doses counted in units."""
    builder = _Builder(spec, unit)
    return builder.build(), builder.order_date
