"""The arithmetic behind the checks, at its edges."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from cds_service.policy.checks import (
    Band,
    acr_2010_score,
    age_on,
    appendix_e_syringes,
    band_of,
    months_before,
)
from fhir_mappings.facts import Measurement

ON = date(2025, 6, 2)


@pytest.mark.parametrize(
    ("mg", "syringes"),
    [
        (20, 1),
        (104.99, 1),
        (105, 2),
        (209.99, 2),
        (210, 3),
        (314.99, 3),
        (315, 4),
        (735, 8),
        (839.99, 8),
    ],
)
def test_appendix_e_rounding(mg: float, syringes: int) -> None:
    assert appendix_e_syringes(mg, 105) == syringes


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        (date(2007, 6, 2), date(2025, 6, 2), 18),
        (date(2007, 6, 3), date(2025, 6, 2), 17),
        (date(2004, 2, 29), date(2022, 2, 28), 17),
        (date(2004, 2, 29), date(2022, 3, 1), 18),
        (date(2004, 2, 29), date(2024, 2, 29), 20),
    ],
)
def test_age_on(birth: date, on: date, age: int) -> None:
    assert age_on(birth, on) == age


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2025, 6, 2), 12, date(2024, 6, 2)),
        (date(2025, 3, 31), 1, date(2025, 2, 28)),
        (date(2024, 3, 31), 1, date(2024, 2, 29)),
        (date(2025, 1, 15), 13, date(2023, 12, 15)),
    ],
)
def test_months_before(day: date, months: int, expected: date) -> None:
    assert months_before(day, months) == expected


CDAI = (Band(2.8, "remission"), Band(10, "low"), Band(22, "moderate"), Band(None, "high"))


@pytest.mark.parametrize(
    ("value", "label"),
    [(2.8, "remission"), (2.81, "low"), (10, "low"), (22, "moderate"), (22.1, "high")],
)
def test_cdai_bands(value: float, label: str) -> None:
    found = band_of(value, CDAI)
    assert found is not None
    assert found[1] == label


def _m(
    kind: str, value: float | None, ref_high: float | None = None, interpretation: str | None = None
) -> Measurement:
    return Measurement(
        kind, value, None, date(2025, 1, 1), f"Observation/{kind}", ref_high, interpretation
    )


def test_acr_results_given_as_a_bound_are_read_as_the_values_they_allow() -> None:
    """A lab result under its reporting limit ("RF < 20 IU/mL", range up to 14) may be
    negative or low-positive: it is not read as 20 (low-positive, 2 points) but as the
    whole serology range; "< 10" under the same range is negative; "CRP < 5 mg/L" with a
    range up to 3 may be normal or abnormal."""
    base = [_m("acr-joints-large", 0), _m("acr-joints-small", 2), _m("symptom-duration-weeks", 4)]
    exact = acr_2010_score([*base, _m("crp", 5, 3), _m("rheumatoid-factor", 20, 14)], ON)
    assert (exact.low, exact.high) == (5, 5)  # 2 joints + 2 serology + 1 CRP + 0
    bounded = acr_2010_score(
        [
            *base,
            replace(_m("crp", 5, 3), comparator="<"),
            replace(_m("rheumatoid-factor", 20, 14), comparator="<"),
        ],
        ON,
    )
    assert (bounded.low, bounded.high) == (2, 6)  # serology 0-3, CRP 0-1: undecided
    negative = acr_2010_score(
        [*base, _m("crp", 2, 3), replace(_m("rheumatoid-factor", 10, 14), comparator="<")], ON
    )
    assert (negative.low, negative.high) == (2, 2)
    over = acr_2010_score(
        [*base, _m("crp", 2, 3), replace(_m("rheumatoid-factor", 300, 14), comparator=">")], ON
    )
    assert (over.low, over.high) == (5, 5)  # "> 300" is over 3x the upper limit: high


def test_acr_serology_three_times_upper_limit_is_high() -> None:
    base = [
        _m("acr-joints-large", 0),
        _m("acr-joints-small", 2),
        _m("crp", 5, 10),
        _m("symptom-duration-weeks", 4),
    ]
    high = acr_2010_score([*base, _m("rheumatoid-factor", 42, 14)], ON)
    low = acr_2010_score([*base, _m("rheumatoid-factor", 41.9, 14)], ON)
    assert (high.low, high.high) == (5, 5)  # 2 joints + 3 serology + 0 + 0
    assert (low.low, low.high) == (4, 4)


def test_acr_positive_without_value_is_a_range_and_missing_categories_widen_it() -> None:
    score = acr_2010_score([_m("acpa", None, interpretation="positive")], ON)
    assert (score.low, score.high) == (2, 10)  # serology 2-3, joints 0-5, 0-1, 0-1


def test_acr_recorded_total_wins_over_components() -> None:
    score = acr_2010_score([_m("acr-2010-score", 7), _m("acr-joints-large", 1)], ON)
    assert (score.low, score.high, score.recorded_total) == (7, 7, 7)


def test_acr_nothing_recorded() -> None:
    score = acr_2010_score([], ON)
    assert score.low is None
