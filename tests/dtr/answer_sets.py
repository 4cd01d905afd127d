"""Answers a prescriber gives to the open items of some sandbox patients (test data)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tests.dtr.package_helpers import first_code, record

Answers = Callable[[Mapping[str, Any]], dict[str, list[dict[str, Any]]]]


def _date(day: str) -> dict[str, str]:
    return {"valueDate": day}


def _mg(value: float, unit: str = "mg") -> dict[str, Any]:
    return {
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        }
    }


def ra_trial_and_score(
    package: Mapping[str, Any], *, start: str = "2025-09-01"
) -> dict[str, list[dict[str, Any]]]:
    """A 5-month methotrexate trial and a baseline CDAI."""
    return {
        "I.A.4": [
            record(
                "I.A.4/first-line/trial",
                drug={"valueCoding": first_code(package, "methotrexate")},
                start=_date(start),
                end=_date("2026-02-01"),
                dose=_mg(15),
            )
        ],
        "I.A.6": [
            record(
                "I.A.6/measurement",
                test={"valueCoding": {"system": "http://loinc.org", "code": "88982-4"}},
                value={"valueDecimal": 25},
                date=_date("2026-11-01"),
            )
        ],
    }


def rheumatology_consult(package: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        "I.A.2": [
            record(
                "I.A.2/specialty",
                specialty={
                    "valueCoding": {
                        "system": "http://nucc.org/provider-taxonomy",
                        "code": "207RR0500X",
                    }
                },
                role={"valueString": "A consulting specialist"},
                date=_date("2026-10-01"),
            )
        ]
    }


def il1rn_pathogenic(package: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        "I.C.1": [
            record(
                "I.C.1/gene-result",
                gene={"valueString": "IL1RN"},
                classification={"valueString": "Pathogenic"},
                date=_date("2026-06-01"),
            )
        ]
    }


def nomid_confirmed(package: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        "I.B.1": [
            record(
                "I.B.1/diagnosis",
                code={"valueCoding": first_code(package, "nomid-cinca")},
                confirmed={"valueBoolean": True},
                date=_date("2024-03-01"),
            )
        ]
    }


def colchicine_intolerance(package: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        "I.C.4": [
            {
                "linkId": "I.C.4/2",
                "item": [
                    record(
                        "I.C.4/2/intolerance",
                        drug={"valueCoding": first_code(package, "colchicine")},
                        kind={"valueString": "Intolerance (adverse effect)"},
                        description={"valueString": "severe diarrhoea on colchicine"},
                        date=_date("2026-08-01"),
                    )
                ],
            }
        ]
    }


COMPLETIONS: Mapping[str, Answers] = {
    "ra-documentation-needed": ra_trial_and_score,
    "ra-prescriber-not-rheumatologist": rheumatology_consult,
    "dira-without-genetic-result": il1rn_pathogenic,
    "caps-m04-2-only": nomid_confirmed,
    "ril-rp-colchicine-failure-needs-nsaid": colchicine_intolerance,
}
"""Per documentation-needed sandbox patient: answers to its open items that the policy
accepts, so that signing again is criteria-met."""


def covered(names: Sequence[str]) -> set[str]:
    return set(names) & set(COMPLETIONS)
