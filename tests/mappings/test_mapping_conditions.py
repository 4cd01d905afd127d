"""Diagnoses, order reasons, intolerances and contraindications."""

from __future__ import annotations

from typing import Any

import pytest

from fhir_mappings.facts import PolicyFacts
from tests.mappings.mapping_builders import (
    ICD,
    LOINC,
    PATIENT_RES,
    RXNORM,
    SCT,
    cc,
    condition,
    context,
    med_request,
    observation,
    qty,
)
from tests.routed import build_facts


def facts_for(*resources, order=None) -> PolicyFacts:
    result = build_facts(context(order or med_request()), [PATIENT_RES, *resources])
    return result.orders[0]


def sets_of(code_cc) -> frozenset[str]:
    facts = facts_for(condition("c", code_cc))
    return facts.diagnoses[0].valuesets if facts.diagnoses else frozenset()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("M05.79", {"rheumatoid-arthritis"}),
        ("M0579", {"rheumatoid-arthritis"}),
        ("M05.A", {"rheumatoid-arthritis"}),
        ("M06.9", {"rheumatoid-arthritis"}),
        ("M06.1", {"stills-disease"}),  # adult-onset Still's disease: not rheumatoid arthritis
        ("M06.4", set()),
        ("M04.2", {"caps-unspecified"}),
        ("M04.8", {"autoinflammatory-other"}),
        ("U07.1", {"covid-19"}),
        ("Z20.822", set()),
    ],
)
def test_icd10_diagnoses(code, expected):
    assert sets_of(cc(ICD, code)) == expected


def test_snomed_ra_without_display():
    assert sets_of(cc(SCT, "69896004")) == {"rheumatoid-arthritis"}


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("239791005", "Seropositive rheumatoid arthritis"),
        ("239792003", "Seronegative rheumatoid arthritis"),
        ("1073791000119101", "Rheumatoid arthritis of right hand"),
        ("201791009", "Flare of rheumatoid arthritis"),
        ("57160007", "Felty's syndrome"),
        ("1162677006", "Rheumatoid arthritis with rheumatoid lung disease"),
    ],
)
def test_snomed_ra_subtype_alone_is_ra(code, display):
    # A chart coded only with a SNOMED RA subtype (no ICD-10-CM) is still an RA indication.
    assert sets_of(cc(SCT, code)) == {"rheumatoid-arthritis"}
    assert sets_of(cc(SCT, code, display)) == {"rheumatoid-arthritis"}


@pytest.mark.parametrize(
    ("code", "display"),
    [
        ("410795001", "Juvenile rheumatoid arthritis"),
        ("410502007", "Juvenile idiopathic arthritis"),
        ("201796004", "Systemic onset juvenile chronic arthritis"),
        ("239920006", "Adult onset Still's disease"),
        ("161567008", "History of rheumatoid arthritis"),
    ],
)
def test_snomed_juvenile_still_and_history_are_not_ra(code, display):
    # Juvenile RA / JIA and Still's disease are not adult RA for this policy, even when
    # the display says "rheumatoid arthritis"; a past-history code is not an active diagnosis.
    # The first four are known as diagnoses the policy does not cover (so that, as an
    # order's reason, they decide the request is off-label).
    expected = frozenset() if code == "161567008" else frozenset({"uncovered-arthritis"})
    if code in {"239920006", "201796004"}:
        expected |= {"stills-disease"}  # a canakinumab indication, still not RA
    assert sets_of(cc(SCT, code, display, text=display)) == expected


def test_caps_code_naming_nomid_is_nomid():
    assert sets_of(
        cc(ICD, "M04.2", text="NOMID (neonatal-onset multisystem inflammatory disease)")
    ) == {"nomid-cinca"}
    assert sets_of(
        cc(ICD, "M04.2", "Cryopyrin-associated periodic syndromes", text="Muckle-Wells syndrome")
    ) == {"caps-fcas-mws"}


def test_nomid_text_without_a_caps_code_is_named_but_not_coded():
    # Issue 12: a diagnosis recorded as text only is documentation-needed (code it), not
    # off-label; it used to match nothing.
    facts = facts_for(condition("c", cc(text="possible NOMID")))
    (diagnosis,) = facts.diagnoses
    assert diagnosis.valuesets == diagnosis.text_only == {"nomid-cinca"}
    assert not diagnosis.established(frozenset({"nomid-cinca"}))


def test_dira_by_text_and_m04_8():
    assert sets_of(cc(text="Deficiency of the interleukin-1 receptor antagonist")) == {"dira"}
    assert sets_of(cc(ICD, "M04.8", text="DIRA")) == {"dira", "autoinflammatory-other"}


@pytest.mark.parametrize(
    ("clinical", "verification", "kept", "established"),
    [
        ("active", "confirmed", True, True),
        (None, None, True, True),
        ("relapse", "confirmed", True, True),
        ("remission", "confirmed", True, True),
        ("inactive", "confirmed", False, False),
        ("resolved", "confirmed", False, False),
        ("active", "refuted", False, False),
        ("active", "entered-in-error", False, False),
        # Working diagnoses claim the indication but do not establish it (issue 12: they
        # used to be dropped, which sent the order to off-label review).
        ("active", "differential", True, False),
        ("active", "provisional", True, False),
        ("active", "unconfirmed", True, False),
    ],
)
def test_condition_statuses(clinical, verification, kept, established):
    facts = facts_for(
        condition("c", cc(ICD, "M06.9"), clinical=clinical, verification=verification)
    )
    assert bool(facts.diagnoses) is kept
    ra = frozenset({"rheumatoid-arthritis"})
    assert any(d.established(ra) for d in facts.diagnoses) is established


def test_condition_of_another_patient_is_ignored():
    other = condition("c", cc(ICD, "M06.9"))
    other["subject"] = {"reference": "Patient/someone-else"}
    assert facts_for(other).diagnoses == ()


def test_order_reason_code_and_reference():
    ra = condition("ra", cc(ICD, "M05.79"))
    order = med_request(
        reasonCode=[cc(ICD, "L40.50", text="psoriatic arthritis")],
        reasonReference=[{"reference": "Condition/ra"}],
    )
    facts = facts_for(ra, order=order)
    reasons = facts.order.reasons
    assert [(r.code, r.valuesets, r.source) for r in reasons] == [
        ("L40.50", frozenset(), "order-reason"),
        ("M05.79", frozenset({"rheumatoid-arthritis"}), "order-reason"),
    ]
    assert reasons[1].refs == ("Condition/ra",)


def allergy(
    rid: str,
    code: dict[str, Any],
    *,
    kind: str | None = None,
    clinical: str = "active",
    verification: str = "confirmed",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "resourceType": "AllergyIntolerance",
        "id": rid,
        "patient": {"reference": "Patient/p1"},
        "code": code,
        "clinicalStatus": cc(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", clinical
        ),
        "verificationStatus": cc(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", verification
        ),
    }
    if kind:
        out["type"] = kind
    return out


def test_allergies_to_mtx_anakinra_and_e_coli_proteins():
    facts = facts_for(
        allergy("a1", cc(RXNORM, "6851", "methotrexate"), kind="intolerance"),
        allergy("a2", cc(SCT, "385549000", "Anakinra (substance)")),
        allergy("a3", cc(text="E. coli-derived proteins")),
        allergy("a4", cc(RXNORM, "6851"), clinical="resolved"),
        allergy("a5", cc(RXNORM, "6851"), verification="refuted"),
    )
    got = {(i.substance, i.kind, i.refs) for i in facts.intolerances}
    assert got == {
        ("methotrexate", "intolerance", ("AllergyIntolerance/a1",)),
        ("anakinra", "allergy", ("AllergyIntolerance/a2",)),
        ("E. coli-derived proteins", "allergy", ("AllergyIntolerance/a3",)),
    }


def test_mtx_contraindicating_condition():
    facts = facts_for(condition("liver", cc(ICD, "K70.30", text="Alcoholic cirrhosis")))
    assert [(i.kind, i.substance, i.valuesets) for i in facts.intolerances] == [
        ("contraindication", "methotrexate", frozenset({"methotrexate"}))
    ]
    assert facts.diagnoses == ()


def test_child_bearing_potential_is_not_a_contraindication():
    facts = facts_for(condition("cbp", cc(text="Female of child-bearing potential")))
    assert facts.intolerances == ()


def alcohol(rid: str, value: float, unit: str = "{drinks}/wk", when: str = "2026-01-10"):
    return observation(rid, cc(text="Alcohol units per week"), value=qty(value, unit), when=when)


def alcohol_per_week(facts: PolicyFacts) -> list[float | None]:
    return [m.value for m in facts.measurements if m.kind == "alcohol-units-per-week"]


@pytest.mark.parametrize("value", [14, 15, 2.5])
def test_alcohol_use_is_a_weekly_measurement_not_a_mapping_verdict(value):
    # The 14-units rule of Appendix D is the policy's (I.A.4 check); the mapping only reads
    # the amount.
    facts = facts_for(alcohol("al", value))
    assert alcohol_per_week(facts) == [value]
    assert facts.intolerances == ()


def test_alcohol_per_day_is_converted_to_a_week():
    assert alcohol_per_week(facts_for(alcohol("al", 3, "/d"))) == [21]


def test_alcohol_observation_code_is_loinc_agnostic():
    # No LOINC code is verified for alcohol units a week: a coded-only observation with an
    # unknown code is not guessed at.
    facts = facts_for(observation("x", cc(LOINC, "11331-6"), value=qty(30, "/wk")))
    assert alcohol_per_week(facts) == []


def test_conditions_no_value_set_knows_are_kept_as_names_only():
    facts = facts_for(
        condition("gout", cc(ICD, "M10.9", "Gout, unspecified")),
        condition("gout-again", cc(SCT, "90560007", text="  Gout,   unspecified ")),
        condition("htn", cc(text="Essential hypertension")),
        condition("ra", cc(ICD, "M05.79", "Rheumatoid arthritis")),
        condition("old", cc(text="Pneumonia"), clinical="resolved"),
        condition("maybe", cc(text="Psoriasis"), verification="provisional"),
        condition("wrong", cc(text="Lupus"), verification="refuted"),
    )
    # Standing and confirmed, in no diagnosis value set, each name once, as recorded.
    assert facts.other_conditions == ("Gout, unspecified", "Essential hypertension")
    # No decision rests on them: the known diagnosis is still the only diagnosis.
    assert [d.code for d in facts.diagnoses] == ["M05.79"]
