"""Daily-dose arithmetic for anakinra orders."""

from __future__ import annotations

import math
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cds_service.policy.packs import default_registry
from fhir_mappings import dosing
from fhir_mappings.dosing import banded_units, banded_units_per_day
from fhir_mappings.facts import DoseFacts, WeightFact
from fhir_mappings.fields import Json
from tests.mappings.mapping_builders import GTS, dosage, every, qty, timing_code

UNIT = default_registry().units["anakinra"]  # the product's unit from its pack's drug.json
APPENDIX_E_BAND_MG = 105.0  # NH.PHAR.244 Appendix E (the policy's syringe_band_mg)


def compute_dose(
    dosages: list[Json], weight: WeightFact | None, request: Json | None = None
) -> DoseFacts:
    return dosing.compute_dose(dosages, weight, request, UNIT)


def appendix_e_syringes(mg: float) -> int:
    return banded_units(mg, APPENDIX_E_BAND_MG)


def fixed_syringes(mg: float) -> int:
    assert UNIT is not None
    return UNIT.units_for(mg)


def weight_based(facts: DoseFacts) -> float | None:
    return banded_units_per_day(facts, APPENDIX_E_BAND_MG)


W20 = WeightFact(kg=20.0, effective=date(2026, 2, 1), ref="Observation/w")


def test_100_mg_once_daily_is_one_syringe_a_day():
    facts = compute_dose([dosage(100, "mg", "mg", timing=every(1, 1, "d"))], None)
    assert facts.mg_per_day == 100
    assert facts.administrations_per_day == 1
    assert facts.syringes_per_day == 1
    assert facts.unknown_reasons == ()


def test_bid_timing_code_doubles_the_daily_dose():
    facts = compute_dose([dosage(100, "mg", "mg", timing=timing_code("BID"))], None)
    assert facts.mg_per_day == 200
    assert facts.syringes_per_day == 2


@pytest.mark.parametrize(
    ("code", "per_day"),
    [
        ("QD", 1),
        ("TID", 3),
        ("QID", 4),
        ("Q6H", 4),
        ("Q8H", 3),
        ("Q12H", 2),
        ("QOD", 0.5),
        ("AM", 1),
        ("WK", 1 / 7),
    ],
)
def test_timing_codes(code, per_day):
    facts = compute_dose([dosage(100, timing=timing_code(code))], None)
    assert facts.administrations_per_day == pytest.approx(per_day)


def test_ml_goes_through_the_product_strength():
    facts = compute_dose([dosage(0.67, "mL", "mL", timing=every())], None)
    assert facts.mg_per_day == pytest.approx(100)
    assert facts.syringes_per_day == 1  # 0.67 mL is exactly one syringe, not two


@pytest.mark.parametrize(
    ("unit", "code"),
    [
        ("syringe", "{syringe}"),
        ("Syringe", "{Syringe}"),
        ("PFS", None),
        ("syringe", None),
        ("1 syringe", None),
    ],
)
def test_syringe_units(unit, code):
    facts = compute_dose([dosage(1, unit, code, timing=every())], None)
    assert facts.mg_per_day == 100
    assert facts.syringes_per_day == 1


def test_grams_and_micrograms():
    grams = compute_dose([dosage(0.1, "g", "g", timing=every())], None)
    micro = compute_dose([dosage(100000, "mcg", "ug", timing=every())], None)
    assert grams.mg_per_day == pytest.approx(100)
    assert micro.mg_per_day == pytest.approx(100)


def test_unknown_unit_is_unknown_with_reason():
    facts = compute_dose([dosage(2, "puffs", None, timing=every())], None)
    assert facts.mg_per_day is None
    assert facts.syringes_per_day is None
    assert any("unit" in r for r in facts.unknown_reasons)


def test_no_timing_is_unknown():
    facts = compute_dose([dosage(100)], None)
    assert facts.mg_per_day is None
    assert any("timing" in r for r in facts.unknown_reasons)


def test_as_needed_without_frequency_is_unknown():
    line = dosage(100)
    line["asNeededBoolean"] = True
    facts = compute_dose([line], None)
    assert facts.mg_per_day is None
    assert any("as needed" in r for r in facts.unknown_reasons)


def test_unknown_timing_code_is_unknown():
    facts = compute_dose(
        [dosage(100, timing={"code": {"coding": [{"system": GTS, "code": "ZZZ"}]}})], None
    )
    assert facts.mg_per_day is None
    assert any("timing code" in r for r in facts.unknown_reasons)


def test_mg_per_kg_needs_a_weight():
    line = dosage(2, "mg/kg", "mg/kg", timing=every())
    without = compute_dose([line], None)
    with_weight = compute_dose([line], W20)
    assert without.mg_per_day is None
    assert any("weight" in r for r in without.unknown_reasons)
    assert with_weight.mg_per_day == pytest.approx(40)
    assert with_weight.mg_per_kg_per_day == pytest.approx(2)


def test_weight_based_split_dose_uses_a_syringe_per_dose():
    # 8 mg/kg/day for 20 kg split BID: 80 mg twice, a new syringe each time.
    facts = compute_dose([dosage(80, timing=timing_code("BID"))], W20)
    assert facts.mg_per_kg_per_day == pytest.approx(8)
    assert weight_based(facts) == 2
    assert facts.syringes_per_day == 2


@pytest.mark.parametrize(
    ("mg", "syringes"),
    [(50, 1), (104.99, 1), (105, 2), (209.99, 2), (210, 3), (735, 8), (839.99, 8)],
)
def test_appendix_e_table(mg, syringes):
    assert appendix_e_syringes(mg) == syringes


def test_several_lines_add_up():
    facts = compute_dose(
        [dosage(100, timing=timing_code("AM")), dosage(50, timing=timing_code("PM"))], W20
    )
    assert facts.mg_per_day == 150
    assert facts.mg_per_administration == (100, 50)
    assert facts.syringes_per_day == 2
    assert facts.administrations_per_day == 2


def test_sequential_phases_take_the_highest_phase():
    facts = compute_dose(
        [dosage(50, timing=every(), sequence=1), dosage(100, timing=every(), sequence=2)], None
    )
    assert facts.mg_per_day == 100


def test_weekly_period_and_dispense_quantity():
    request = {
        "quantity": qty(28, "syringe", "{syringe}"),
        "expectedSupplyDuration": qty(28, "days", "d"),
    }
    facts = compute_dose([dosage(100, timing=every(1, 1, "d"))], None, request)
    assert facts.dispense_syringes_per_day == pytest.approx(1)
    ml = {"quantity": qty(18.76, "mL", "mL"), "expectedSupplyDuration": qty(2, "wk", "wk")}
    assert compute_dose([dosage(100, timing=every())], None, ml).dispense_syringes_per_day == (
        pytest.approx(2)
    )


def test_dispense_in_cartons_is_unknown_with_reason():
    request = {"quantity": qty(1, "carton"), "expectedSupplyDuration": qty(7, "days", "d")}
    facts = compute_dose([dosage(100, timing=every())], None, request)
    assert facts.dispense_syringes_per_day is None
    assert any("dispense" in r for r in facts.unknown_reasons)
    assert facts.mg_per_day == 100


def test_duration_from_bounds():
    timing = every()
    timing["repeat"]["boundsDuration"] = qty(10, "days", "d")
    assert compute_dose([dosage(100, timing=timing)], None).duration_days == 10
    timing = every()
    timing["repeat"]["boundsPeriod"] = {"start": "2026-03-01", "end": "2026-03-10"}
    assert compute_dose([dosage(100, timing=timing)], None).duration_days == 10
    timing = every(2, 1, "d")
    timing["repeat"]["count"] = 20
    assert compute_dose([dosage(100, timing=timing)], None).duration_days == 10


def test_dose_range_high_is_used():
    line = {
        "doseAndRate": [{"doseRange": {"low": qty(50, "mg", "mg"), "high": qty(100, "mg", "mg")}}],
        "timing": every(),
    }
    assert compute_dose([line], None).mg_per_day == 100


# Properties -----------------------------------------------------------------------------

doses = st.floats(min_value=1, max_value=800, allow_nan=False, allow_infinity=False)
factors = st.floats(min_value=0.1, max_value=10, allow_nan=False, allow_infinity=False)
frequencies = st.integers(min_value=1, max_value=6)


@given(doses, factors, frequencies)
def test_scaling_the_dose_scales_the_daily_dose(mg, factor, freq):
    base = compute_dose([dosage(mg, timing=every(freq))], None).mg_per_day
    scaled = compute_dose([dosage(mg * factor, timing=every(freq))], None).mg_per_day
    assert base is not None
    assert scaled is not None
    assert scaled == pytest.approx(base * factor, rel=1e-6, abs=1e-6)


@given(doses, frequencies)
def test_unit_conversions_agree(mg, freq):
    in_mg = compute_dose([dosage(mg, "mg", "mg", timing=every(freq))], None)
    in_g = compute_dose([dosage(mg / 1000, "g", "g", timing=every(freq))], None)
    in_ml = compute_dose([dosage(mg * 0.67 / 100, "mL", "mL", timing=every(freq))], None)
    in_syringes = compute_dose([dosage(mg / 100, "syringe", "{syringe}", timing=every(freq))], None)
    for other in (in_g, in_ml, in_syringes):
        assert other.mg_per_day == pytest.approx(in_mg.mg_per_day, rel=1e-6, abs=1e-6)


@given(st.floats(min_value=0.5, max_value=100, allow_nan=False), doses)
def test_mg_per_kg_agrees_with_mg(kg, mg_per_kg):
    weight = WeightFact(kg=kg, effective=date(2026, 1, 1), ref="Observation/w")
    by_kg = compute_dose([dosage(mg_per_kg / 100, "mg/kg", "mg/kg", timing=every())], weight)
    by_mg = compute_dose([dosage(mg_per_kg / 100 * kg, timing=every())], weight)
    assert by_kg.mg_per_day == pytest.approx(by_mg.mg_per_day, rel=1e-6, abs=1e-6)


@given(doses, st.integers(min_value=1, max_value=3), st.integers(min_value=2, max_value=4))
def test_splitting_a_daily_dose_never_lowers_the_syringe_count(daily, n, parts):
    # Each administration split into `parts` smaller ones: a new syringe for every dose.
    fewer = compute_dose([dosage(daily / n, timing=every(n))], None)
    more = compute_dose([dosage(daily / (n * parts), timing=every(n * parts))], None)
    assert fewer.syringes_per_day is not None
    assert more.syringes_per_day is not None
    assert more.syringes_per_day >= fewer.syringes_per_day
    banded_more, banded_fewer = weight_based(more), weight_based(fewer)
    assert banded_more is not None
    assert banded_fewer is not None
    assert banded_more >= banded_fewer
    assert more.syringes_per_day >= n * parts


@given(doses)
def test_syringe_counts_cover_the_dose(mg):
    assert fixed_syringes(mg) * 100 >= mg - 1e-6
    assert fixed_syringes(mg) == math.ceil(round(mg / 100, 6))
    assert appendix_e_syringes(mg) >= fixed_syringes(mg) - 1


def test_unit_text_is_used_when_the_code_is_not_a_known_unit():
    facts = compute_dose([dosage(1, "syringe", "1", timing=every())], None)
    assert facts.mg_per_day == 100


def test_a_frequency_range_is_checked_at_its_most():
    """ "100 mg one to two times a day" can be given as 200 mg/day: the limit check takes the
    most the order allows, as it does for a dose range."""
    timing = {"repeat": {"frequency": 1, "frequencyMax": 2, "period": 1, "periodUnit": "d"}}
    dose = compute_dose([dosage(100, timing=timing)], None)
    assert dose.administrations_per_day == 2
    assert dose.mg_per_day == 200
    assert dose.syringes_per_day == 2


def test_morning_and_evening_on_a_daily_repeat_are_two_doses_a_day():
    # A sig built as "100 mg every day, morning and evening" (repeat.when without a
    # frequency): two injections a day, 200 mg, not 100 mg.
    timing = {"repeat": {"period": 1, "periodUnit": "d", "when": ["MORN", "EVE"]}}
    facts = compute_dose([dosage(100, timing=timing)], None)
    assert facts.mg_per_day == 200
    assert facts.syringes_per_day == 2


def test_a_frequency_that_disagrees_with_its_times_of_day_is_unknown():
    timing = {
        "repeat": {
            "frequency": 1,
            "period": 1,
            "periodUnit": "d",
            "timeOfDay": ["08:00:00", "20:00:00"],
        }
    }
    facts = compute_dose([dosage(100, timing=timing)], None)
    assert facts.mg_per_day is None
    assert "times of day disagree" in facts.unknown_reasons[0]


def test_a_timing_code_that_disagrees_with_the_repeat_is_unknown():
    # "BID" beside a repeat of once a day: the order says two things; never the smaller.
    timing = {**every(1, 1, "d"), **timing_code("BID")}
    facts = compute_dose([dosage(100, timing=timing)], None)
    assert facts.mg_per_day is None
    assert "timing code and repeat state different frequencies" in facts.unknown_reasons[0]


@pytest.mark.parametrize(
    ("code", "repeat"),
    [("QD", every(1, 1, "d")), ("Q4H", every(1, 4, "h")), ("WK", every(1, 1, "wk"))],
)
def test_a_timing_code_that_agrees_with_the_repeat_is_read(code, repeat):
    facts = compute_dose([dosage(100, timing={**repeat, **timing_code(code)})], None)
    assert facts.mg_per_day is not None
    assert facts.unknown_reasons == ()
