"""Cards, the CRD coverage-information system action and the evaluation extension.

Public API:
    render_response(hook, evaluations, *, settings, uuid_factory, now, missing_data) -> dict
    Evaluation(facts, decision), NotEvaluated(order_ref, reason, missing_data, drug_known),
    MissingData(prefetch_key, resource_type, issue, reason), CardSettings(...)
    evaluation_to_json(decision, missing_data) -> dict
"""

from cds_service.cards.codes import (
    ASSOCIATED_RESOURCE_KEY,
    COVERAGE_INFORMATION_URL,
    EVALUATION_EXTENSION_KEY,
)
from cds_service.cards.model import CardSettings, Evaluation, MissingData, NotEvaluated
from cds_service.cards.render import render_response
from cds_service.cards.serialize import evaluation_to_json

__all__ = [
    "ASSOCIATED_RESOURCE_KEY",
    "COVERAGE_INFORMATION_URL",
    "EVALUATION_EXTENSION_KEY",
    "CardSettings",
    "Evaluation",
    "MissingData",
    "NotEvaluated",
    "evaluation_to_json",
    "render_response",
]
