"""Cards, the CRD coverage-information system action and the evaluation extension.

Public API:
    render_response(hook, evaluations, *, settings, uuid_factory, now, missing_data,
                    card_texts=texts_for) -> dict
    Evaluation(facts, decision),
    NotEvaluated(order_ref, reason, missing_data, drug_known, policy_id),
    MissingData(prefetch_key, resource_type, issue, reason), CardSettings(...)
    evaluation_to_json(decision, missing_data) -> dict
    CardTexts, load_card_texts(pack_dir) -> CardTexts, texts_for(policy_id) -> CardTexts
    (the words of a pack's cards, from its cards.yaml; see `texts`)
"""

from cds_service.cards.codes import (
    ASSOCIATED_RESOURCE_KEY,
    COVERAGE_INFORMATION_URL,
    EVALUATION_EXTENSION_KEY,
)
from cds_service.cards.model import CardSettings, Evaluation, MissingData, NotEvaluated
from cds_service.cards.render import render_response
from cds_service.cards.serialize import evaluation_to_json
from cds_service.cards.texts import CardTexts, CardTextsError, load_card_texts, texts_for

__all__ = [
    "ASSOCIATED_RESOURCE_KEY",
    "COVERAGE_INFORMATION_URL",
    "EVALUATION_EXTENSION_KEY",
    "CardSettings",
    "CardTexts",
    "CardTextsError",
    "Evaluation",
    "MissingData",
    "NotEvaluated",
    "evaluation_to_json",
    "load_card_texts",
    "render_response",
    "texts_for",
]
