"""The CRD "request form completion" suggestion: a Task asking someone at the practice to
complete the plan's documentation form (a FHIR Questionnaire) for one order.

CRD STU 2.2 (cards, "Request Form Completion Response Type"; profile
`profile-taskquestionnaire`, derived from the SDC questionnaire Task): the suggestion creates a
Task with status `ready`, intent `order`, code `complete-questionnaire` (SDC temporary codes),
the order in `basedOn`, the patient in `for`, the payer as `requester`, the reason "prior
authorization" and two inputs: the Questionnaire's canonical (`url|version`) and what to do
with the completed form (include it in the prior authorization request). The client keeps the
Task in its work list, so the form can be completed now or handed to a colleague; a DTR client
fills it from the chart first (`$questionnaire-package`), leaving what the chart lacks.

Pure: no I/O, no clock (the day comes in).
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

from cds_service.cards.codes import CRD_TEMP

TASK_PROFILE: Final = (
    "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/profile-taskquestionnaire"
)
SDC_TEMP: Final = "http://hl7.org/fhir/uv/sdc/CodeSystem/temp"
COMPLETE_QUESTIONNAIRE: Final = "complete-questionnaire"
"""Task.code of a form to complete (SDC temporary codes, as CRD's profile uses)."""


def form_task(
    *,
    questionnaire: str,
    order_ref: str,
    patient_ref: str,
    payer_name: str,
    description: str,
    today: date | None,
) -> dict[str, Any]:
    """The Task to create: complete `questionnaire` (a canonical) for the order `order_ref`
    of `patient_ref`, asked by the payer `payer_name`; `description` is what a person reads in
    the work list."""
    task: dict[str, Any] = {
        "resourceType": "Task",
        "meta": {"profile": [TASK_PROFILE]},
        "status": "ready",
        "intent": "order",
        "code": {
            "coding": [{"system": SDC_TEMP, "code": COMPLETE_QUESTIONNAIRE}],
            "text": "Complete the questionnaire",
        },
        "description": description,
        "basedOn": [{"reference": order_ref}],
        "for": {"reference": patient_ref},
        "requester": {"display": payer_name},
        "reasonCode": {
            "coding": [
                {"system": CRD_TEMP, "code": "reason-prior-auth", "display": "Prior authorization"}
            ],
            "text": "Needed for prior authorization",
        },
        "input": [
            {
                "type": {
                    "coding": [{"system": SDC_TEMP, "code": "questionnaire"}],
                    "text": "questionnaire",
                },
                "valueCanonical": questionnaire,
            },
            {
                "type": {
                    "coding": [{"system": CRD_TEMP, "code": "after-completion-action"}],
                    "text": "after completion",
                },
                "valueCodeableConcept": {
                    "coding": [
                        {
                            "system": CRD_TEMP,
                            "code": "prior-auth-include",
                            "display": "Include in prior authorization",
                        }
                    ]
                },
            },
        ],
    }
    if today is not None:
        task["authoredOn"] = today.isoformat()
    return task


def form_suggestion(label: str, task: dict[str, Any]) -> dict[str, Any]:
    """The recommended suggestion that creates `task` (the renderer adds its uuid)."""
    return {
        "label": label,
        "isRecommended": True,
        "actions": [{"type": "create", "description": label, "resource": task}],
    }
