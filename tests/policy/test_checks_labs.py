"""Laboratory checks: thresholds with unit conversion and reference ranges, improvement since
a drug started, screening tests within a time, minimum body weight."""

from __future__ import annotations

import pytest

from cds_service.policy.checks import bound_side
from cds_service.policy.checks_labs import to_mg_per_l
from cds_service.policy.model import Status
from tests.policy.check_helpers import run, status

MET, NOT_MET, UNKNOWN = Status.MET, Status.NOT_MET, Status.UNKNOWN

ELEVATED = {
    "kinds": ["crp", "saa"],
    "direction": "above",
    "thresholds": {"crp": {"value": 10, "unit": "mg/L"}, "saa": {"value": 10, "unit": "mg/L"}},
    "use_reference_range": True,
    "when": "before-drug-start",
}
REMISSION = {
    "kinds": ["crp"],
    "direction": "below",
    "thresholds": {"crp": {"value": 5, "unit": "mg/L"}},
    "use_reference_range": False,
    "when": "latest",
    "within_days": 90,
}


@pytest.mark.parametrize(
    ("value", "unit", "mg_per_l"),
    [
        (0.6, "mg/dL", 6.0),
        (5, "mg/L", 5.0),
        (1.2, "mg/dl", 12.0),
        (7, "ug/mL", 7.0),
        (3, None, None),
    ],
)
def test_mass_concentration_in_mg_per_l(value, unit, mg_per_l):
    assert to_mg_per_l(value, unit) == (pytest.approx(mg_per_l) if mg_per_l else None)


def test_crp_0_6_mg_dl_is_not_below_5_mg_l():
    verdict = run(
        "lab-threshold",
        REMISSION,
        {"measurements": [{"kind": "crp", "value": 0.6, "unit": "mg/dL", "date": -10}]},
    )
    assert verdict.status is NOT_MET
    assert "0.6 mg/dL" in verdict.reason
    assert "5 mg/L" in verdict.reason


def test_crp_0_4_mg_dl_is_below_5_mg_l():
    assert (
        status(
            "lab-threshold",
            REMISSION,
            {"measurements": [{"kind": "crp", "value": 0.4, "unit": "mg/dL", "date": -10}]},
        )
        is MET
    )


def test_a_result_equal_to_the_threshold_is_not_below_it():
    assert (
        status(
            "lab-threshold",
            REMISSION,
            {"measurements": [{"kind": "crp", "value": 5, "unit": "mg/L", "date": -1}]},
        )
        is NOT_MET
    )


def test_remission_reads_the_latest_result_only():
    facts = {
        "measurements": [
            {"kind": "crp", "value": 2, "unit": "mg/L", "date": -60},
            {"kind": "crp", "value": 9, "unit": "mg/L", "date": -5},
        ]
    }
    assert status("lab-threshold", REMISSION, facts) is NOT_MET


def test_remission_result_older_than_the_window_is_unknown():
    verdict = run(
        "lab-threshold",
        REMISSION,
        {"measurements": [{"kind": "crp", "value": 1, "unit": "mg/L", "date": -120}]},
    )
    assert verdict.status is UNKNOWN
    assert verdict.documentation


def test_result_without_a_unit_is_unknown_never_met():
    assert (
        status(
            "lab-threshold",
            REMISSION,
            {"measurements": [{"kind": "crp", "value": 1, "unit": None, "date": -3}]},
        )
        is UNKNOWN
    )


def test_reference_range_upper_limit_comes_before_the_fixed_threshold():
    # 8 mg/L is under the 10 mg/L default but above this laboratory's 5 mg/L limit.
    facts = {
        "measurements": [{"kind": "crp", "value": 8, "unit": "mg/L", "ref_high": 5, "date": -20}]
    }
    verdict = run("lab-threshold", ELEVATED, facts)
    assert verdict.status is MET
    assert "reference range" in verdict.reason


def test_reference_range_in_mg_dl_for_a_result_in_mg_l():
    facts = {
        "measurements": [
            {
                "kind": "crp",
                "value": 8,
                "unit": "mg/L",
                "ref_high": 1.0,
                "ref_unit": "mg/dL",
                "date": -20,
            }
        ]
    }
    assert status("lab-threshold", ELEVATED, facts) is NOT_MET


def test_without_reference_range_crp_above_1_mg_dl_is_elevated():
    facts = {"measurements": [{"kind": "crp", "value": 1.1, "unit": "mg/dL", "date": -20}]}
    assert status("lab-threshold", ELEVATED, facts) is MET


def test_saa_elevated_is_enough_when_crp_is_normal():
    facts = {
        "measurements": [
            {"kind": "crp", "value": 3, "unit": "mg/L", "date": -20},
            {"kind": "saa", "value": 40, "unit": "mg/L", "date": -20},
        ]
    }
    assert status("lab-threshold", ELEVATED, facts) is MET


def test_normal_markers_before_treatment_are_not_met():
    facts = {"measurements": [{"kind": "crp", "value": 3, "unit": "mg/L", "date": -20}]}
    assert status("lab-threshold", ELEVATED, facts) is NOT_MET


def test_no_marker_on_file_is_unknown():
    verdict = run("lab-threshold", ELEVATED, {})
    assert verdict.status is UNKNOWN
    assert "CRP or SAA" in verdict.reason


def test_before_drug_start_ignores_results_since_the_drug_started():
    facts = {
        "measurements": [
            {"kind": "crp", "value": 30, "unit": "mg/L", "date": -100},
            {"kind": "crp", "value": 2, "unit": "mg/L", "date": -10},
        ]
    }
    assert status("lab-threshold", ELEVATED, facts, first_drug_day=-60) is MET
    assert status("lab-threshold", ELEVATED, facts) is NOT_MET  # never given: latest decides


def test_pick_any_finds_an_elevated_result_among_later_normal_ones():
    facts = {
        "measurements": [
            {"kind": "crp", "value": 30, "unit": "mg/L", "date": -100},
            {"kind": "crp", "value": 2, "unit": "mg/L", "date": -10},
        ]
    }
    assert status("lab-threshold", {**ELEVATED, "pick": "any"}, facts) is MET


def test_flag_high_without_a_value_reads_as_above_normal():
    facts = {"measurements": [{"kind": "saa", "interpretation": "high", "date": -5}]}
    assert status("lab-threshold", ELEVATED, facts) is MET


# --------------------------------------------------------------------------- improved


def test_lab_improved_met_not_met_unknown():
    params = {"kinds": ["crp", "saa"]}
    lower = {
        "measurements": [
            {"kind": "crp", "value": 4.0, "unit": "mg/dL", "date": -200},
            {"kind": "crp", "value": 6, "unit": "mg/L", "date": -7},
        ]
    }
    assert status("lab-improved", params, lower, first_drug_day=-180) is MET
    higher = {
        "measurements": [
            {"kind": "crp", "value": 0.5, "unit": "mg/dL", "date": -200},
            {"kind": "crp", "value": 6, "unit": "mg/L", "date": -7},
        ]
    }
    assert status("lab-improved", params, higher, first_drug_day=-180) is NOT_MET
    only_after = {"measurements": [{"kind": "crp", "value": 1, "unit": "mg/L", "date": -7}]}
    assert status("lab-improved", params, only_after, first_drug_day=-180) is UNKNOWN
    assert status("lab-improved", params, lower) is UNKNOWN  # start of therapy unknown


# --------------------------------------------------------------------------- screening

TB = {
    "kinds": ["tb-skin-test", "tb-igra"],
    "within_months": 12,
    "treated_valuesets": ["latent-tb-treatment"],
}
TREATED = {
    "drug": "isoniazid",
    "valuesets": ["latent-tb-treatment"],
    "status": "completed",
    "start": -300,
    "end": -30,
}


def test_negative_igra_within_12_months_is_met():
    assert (
        status(
            "test-negative-within",
            TB,
            {"measurements": [{"kind": "tb-igra", "interpretation": "negative", "date": -100}]},
        )
        is MET
    )


def test_indeterminate_igra_is_not_negative():
    verdict = run(
        "test-negative-within",
        TB,
        {"measurements": [{"kind": "tb-igra", "interpretation": "indeterminate", "date": -20}]},
    )
    assert verdict.status is UNKNOWN
    assert "indeterminate" in verdict.reason
    assert verdict.documentation


def test_most_recent_test_decides():
    facts = {
        "measurements": [
            {"kind": "tb-skin-test", "interpretation": "negative", "date": -200},
            {"kind": "tb-igra", "interpretation": "indeterminate", "date": -20},
        ]
    }
    assert status("test-negative-within", TB, facts) is UNKNOWN


def test_positive_test_is_not_met_unless_latent_tb_was_treated():
    facts = {"measurements": [{"kind": "tb-igra", "interpretation": "positive", "date": -40}]}
    assert status("test-negative-within", TB, facts) is NOT_MET
    assert status("test-negative-within", TB, {**facts, "medications": [TREATED]}) is MET


def test_test_older_than_12_months_does_not_count():
    facts = {"measurements": [{"kind": "tb-igra", "interpretation": "negative", "date": -400}]}
    assert status("test-negative-within", TB, facts) is UNKNOWN
    assert status("test-negative-within", TB, {**facts, "medications": [TREATED]}) is MET


@pytest.mark.parametrize(("mm", "expected"), [(0, MET), (4, MET), (8, UNKNOWN), (16, NOT_MET)])
def test_skin_test_induration_in_mm(mm, expected):
    params = {**TB, "induration_negative_below_mm": 5, "induration_positive_from_mm": 15}
    facts = {"measurements": [{"kind": "tb-skin-test", "value": mm, "unit": "mm", "date": -30}]}
    assert status("test-negative-within", params, facts) is expected


def test_skin_test_induration_without_cutoffs_cannot_be_read():
    facts = {"measurements": [{"kind": "tb-skin-test", "value": 0, "unit": "mm", "date": -30}]}
    assert status("test-negative-within", TB, facts) is UNKNOWN


def test_positive_without_medication_data_from_the_ehr_is_unknown_in_the_engine():
    from cds_service.policy.checks import CHECKS

    assert Status.NOT_MET in CHECKS["test-negative-within"].absence_statuses


# --------------------------------------------------------------------------- weight


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ([{"kind": "body-weight", "value": 12, "unit": "kg", "date": -10}], MET),
        ([{"kind": "body-weight", "value": 10, "unit": "kg", "date": -10}], MET),
        ([{"kind": "body-weight", "value": 9.5, "unit": "kg", "date": -10}], NOT_MET),
        ([{"kind": "body-weight", "value": 12, "unit": "kg", "date": -100}], UNKNOWN),
        ([], UNKNOWN),
    ],
)
def test_minimum_weight(weights, expected):
    assert (
        status("minimum-weight", {"kg": 10, "within_days": 90}, {"measurements": weights})
        is expected
    )


@pytest.mark.parametrize(
    ("comparator", "bound", "direction", "expected"),
    [
        ("<", 3.0, "above", False),  # "< 3" is under a limit of 10: normal
        ("<", 10.0, "above", False),  # every value under 10 is not above 10
        ("<", 50.0, "above", None),  # may be 5 or 40
        ("<=", 10.0, "above", False),
        ("<", 3.0, "below", True),  # "< 3" is under 5: remission
        ("<", 5.0, "below", True),
        ("<=", 5.0, "below", None),  # may equal 5, which is not below 5
        ("<", 8.0, "below", None),
        (">", 160.0, "above", True),
        (">", 10.0, "above", True),
        (">=", 10.0, "above", None),  # may equal 10
        (">", 2.0, "above", None),
        (">", 2.0, "below", None),  # may be 3 or 300
        (">=", 5.0, "below", False),
        ("ad", 3.0, "below", None),  # "sufficient to achieve": not a bound we read
    ],
)
def test_a_result_reported_as_a_bound_decides_only_when_every_value_it_allows_does(
    comparator, bound, direction, expected
):
    limit = 10.0 if direction == "above" else 5.0
    assert bound_side(comparator, bound, limit, direction) is expected


@pytest.mark.parametrize(("kg", "expected"), [(40.5, MET), (40, NOT_MET), (39, NOT_MET)])
def test_minimum_weight_exclusive_is_more_than(kg, expected):
    weights = [{"kind": "body-weight", "value": kg, "unit": "kg", "date": -10}]
    params = {"kg": 40, "within_days": 90, "exclusive": True}
    verdict = run("minimum-weight", params, {"measurements": weights})
    assert verdict.status is expected
    assert "more than 40 kg" in verdict.reason
