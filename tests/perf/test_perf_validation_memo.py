"""A resource body seen valid once is not validated again, and the answer is the same as
validating it: an invalid body, or one the memo cannot key exactly, is always validated."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_mappings import r4


def _observation(value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "1988-5"}]},
        "valueQuantity": {"value": value, "unit": "mg/L"},
    }


@pytest.fixture
def validations(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Labels of the resources actually sent to the FHIR models; a fresh, empty memo."""
    seen: list[str] = []
    real = r4._checked

    def counting(model: Any, data: dict[str, Any], label: str) -> Any:
        seen.append(label)
        return real(model, data, label)

    monkeypatch.setattr(r4, "_checked", counting)
    monkeypatch.setattr(r4, "_VALID", r4._SeenValid(capacity=2))
    return seen


def test_a_valid_body_is_validated_once_and_read_the_same(validations: list[str]) -> None:
    first = r4.validate(_observation(3.5))
    second = r4.validate(_observation(3.5))
    assert first == second == (r4.normalise(_observation(3.5)), ())
    assert validations == ["Observation/o1"]


def test_an_invalid_body_is_validated_every_time(validations: list[str]) -> None:
    for _ in range(2):
        data, problems = r4.validate(_observation("high"))
        assert data is None
        assert problems
    assert len(validations) == 2


def test_another_value_is_another_body(validations: list[str]) -> None:
    r4.validate(_observation(3.5))
    r4.validate(_observation(4))
    r4.validate(_observation(4.0))
    assert len(validations) == 3


def test_bodies_the_digest_cannot_tell_apart_are_not_memoised(validations: list[str]) -> None:
    for value in (float("inf"), None, 10**30):
        r4.validate(_observation(value))
        r4.validate(_observation(value))
    assert len(validations) == 6


def test_the_memo_is_bounded(validations: list[str]) -> None:
    for value in (1, 2, 3, 1):  # capacity 2: the first body is forgotten by the time it returns
        r4.validate(_observation(value))
    assert len(validations) == 4
    assert len(r4._VALID) == 2


def test_classified_codes_are_kept_by_content_and_answer_the_same() -> None:
    from fhir_mappings import conditions

    conditions.forget_classified()
    concept = {
        "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M05.79"}],
        "text": "Rheumatoid arthritis",
    }
    first = conditions.classify_concept(concept)
    again = conditions.classify_concept(dict(concept))
    assert again == first == conditions._classify_concept(concept)
    assert len(conditions._CLASSIFIED) == 1
    other = {"coding": [{"system": "http://snomed.info/sct", "code": "38341003"}]}
    assert conditions.classify_concept(other) == conditions._classify_concept(other)
    assert len(conditions._CLASSIFIED) == 2
