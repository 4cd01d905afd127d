"""The scenarios of the synthetic patients, as `sandbox/patients/scenarios.json` lists them
(the first policy pack's patients) and `sandbox/patients/<folder>/scenarios.json` (another
pack's patients each).

`python -m sandbox.make_patients` writes those files; this module only reads them (and the
draft orders beside them) for the demo and the end-to-end tests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.fhir_sandbox import PATIENTS_DIR


@dataclass(frozen=True)
class Scenario:
    """One row of `scenarios.json`: the patient, the prescriber, and what the service should
    decide for the patient's draft order."""

    name: str
    bundle: str
    """File name of the patient's transaction Bundle."""
    order: str
    """File name of the draft MedicationRequest."""
    patient_id: str
    encounter_id: str
    role_id: str
    """FHIR id of the prescriber's PractitionerRole."""
    practitioner_id: str
    description: str
    expected_outcome: str
    expected_not_met: frozenset[str]
    expected_unknown: frozenset[str]
    directory: Path = field(default=PATIENTS_DIR, compare=False)
    """The folder of the scenario's files."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any], directory: Path = PATIENTS_DIR) -> Scenario:
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
            directory=directory,
        )

    @property
    def bundle_path(self) -> Path:
        return self.directory / self.bundle

    def user_ids(self) -> dict[str, str]:
        """The prefetch user tokens an EHR knows for this prescriber."""
        return {
            "userPractitionerId": self.practitioner_id,
            "userPractitionerRoleId": self.role_id,
        }


def load_scenarios(directory: Path = PATIENTS_DIR) -> list[Scenario]:
    """Every scenario of `directory`'s `scenarios.json`, in the file's order."""
    rows = json.loads((directory / "scenarios.json").read_text(encoding="utf-8"))
    return [Scenario.from_row(row, directory) for row in rows]


def scenario_dirs(directory: Path = PATIENTS_DIR) -> list[Path]:
    """`directory` and each subfolder with a `scenarios.json` (one per policy pack)."""
    return [directory, *sorted(p.parent for p in directory.glob("*/scenarios.json"))]


def load_all_scenarios(directory: Path = PATIENTS_DIR) -> list[Scenario]:
    """The scenarios of every patient set: `directory`'s first, then each subfolder's."""
    return [s for folder in scenario_dirs(directory) for s in load_scenarios(folder)]


def load_order(scenario: Scenario) -> dict[str, Any]:
    """The scenario's draft MedicationRequest (a fresh copy on every call)."""
    path = scenario.directory / scenario.order
    order: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return order
