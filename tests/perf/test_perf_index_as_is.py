"""A resource that needs no fixing is indexed as it was sent, without a copy; every other one
is fixed exactly as before (list fields sent as one object, dosage lists sent as one object,
an Encounter class sent as a list)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from fhir_mappings import r4

BASES: dict[str, dict[str, Any]] = {
    "MedicationRequest": {
        "resourceType": "MedicationRequest",
        "id": "m1",
        "status": "active",
        "intent": "order",
        "category": [{"text": "outpatient"}],
        "dosageInstruction": [{"text": "100 mg daily", "doseAndRate": [{"type": {}}]}],
        "reasonCode": [{"text": "RA"}],
    },
    "MedicationStatement": {
        "resourceType": "MedicationStatement",
        "id": "s1",
        "status": "active",
        "dosage": [{"text": "daily", "additionalInstruction": [{"text": "with food"}]}],
    },
    "MedicationDispense": {
        "resourceType": "MedicationDispense",
        "id": "d1",
        "status": "completed",
        "dosageInstruction": [{"text": "daily"}],
        "authorizingPrescription": [{"reference": "MedicationRequest/m1"}],
    },
    "Observation": {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "category": [{"text": "laboratory"}],
        "interpretation": [{"text": "high"}],
        "component": [{"code": {"text": "x"}}],
    },
    "Encounter": {"resourceType": "Encounter", "id": "e1", "class": {"code": "AMB"}},
    "Patient": {"resourceType": "Patient", "id": "p1", "dosage": {"text": "not a field"}},
}


def _variants(base: dict[str, Any]) -> list[dict[str, Any]]:
    """The resource as sent well, and with each list (and each dosage list) sent as one
    object, alone and two at a time."""
    edits: list[tuple[str, ...]] = []
    for key, value in base.items():
        if isinstance(value, list):
            edits.append((key,))
            if value and isinstance(value[0], dict):
                edits.extend((key, inner) for inner, v in value[0].items() if isinstance(v, list))
    if base["resourceType"] == "Encounter":
        edits.append(("class",))
    out = [copy.deepcopy(base)]
    for chosen in itertools.chain(
        itertools.combinations(edits, 1), itertools.combinations(edits, 2)
    ):
        body = copy.deepcopy(base)
        for path in chosen:
            if path == ("class",):
                body["class"] = [body["class"]]
            elif len(path) == 1:
                body[path[0]] = body[path[0]][0]
            elif isinstance(body[path[0]], list):
                body[path[0]][0][path[1]] = body[path[0]][0][path[1]][0]
        out.append(body)
    return out


@pytest.mark.parametrize("rtype", sorted(BASES))
def test_indexed_as_sent_exactly_when_nothing_needs_fixing(rtype: str) -> None:
    for body in _variants(BASES[rtype]):
        sent = copy.deepcopy(body)
        parsed = r4.parse_resources([body])
        [raw] = parsed.candidates(rtype)
        assert raw == r4.normalise(sent)
        assert (raw is body) == (r4.normalise(sent) == sent)
        assert body == sent  # the request's own resource is never changed
