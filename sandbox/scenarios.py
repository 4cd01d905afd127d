"""The scenarios of the synthetic patients, as `sandbox/patients/scenarios.json` lists them.

`python -m sandbox.make_patients` writes that file; this module only reads it (and the draft
orders beside it) for the demo and the end-to-end tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.fhir_sandbox import PATIENTS_DIR


@dataclass(frozen=True)
class Scenario:
    """One row of `scenarios.json`: the patient, the prescriber, and what the service should
    decide for the patient's draft anakinra order."""

    name: str
    bundle: str
    """File name of the patient's transaction Bundle."""
    order: str
    """File name of the draft anakinra MedicationRequest."""
    patient_id: str
    encounter_id: str
    role_id: str
    """FHIR id of the prescriber's PractitionerRole."""
    practitioner_id: str
    description: str
    expected_outcome: str
    expected_not_met: frozenset[str]
    expected_unknown: frozenset[str]

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Scenario:
        return cls(
            name=row["name"],
            bundle=row["bundle"],
            order=row["order"],
            patient_id=row["patientId"],
            encounter_id=row["encounterId"],
            role_id=row["userPractitionerRoleId"],
            practitioner_id=row["userPractitionerId"],
            description=row["description"],
            expected_outcome=row["expectedOutcome"],
            expected_not_met=frozenset(row["expectedNotMet"]),
            expected_unknown=frozenset(row["expectedUnknown"]),
        )

    def user_ids(self) -> dict[str, str]:
        """The prefetch user tokens an EHR knows for this prescriber."""
        return {
            "userPractitionerId": self.practitioner_id,
            "userPractitionerRoleId": self.role_id,
        }


def load_scenarios(directory: Path = PATIENTS_DIR) -> list[Scenario]:
    """Every scenario, in the file's order."""
    rows = json.loads((directory / "scenarios.json").read_text(encoding="utf-8"))
    return [Scenario.from_row(row) for row in rows]


def load_order(scenario: Scenario, directory: Path = PATIENTS_DIR) -> dict[str, Any]:
    """The scenario's draft anakinra MedicationRequest (a fresh copy on every call)."""
    order: dict[str, Any] = json.loads((directory / scenario.order).read_text(encoding="utf-8"))
    return order
