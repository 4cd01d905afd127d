"""Card words come from the pack's cards.yaml: loading, checking, and rendering them."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cds_service.cards import Evaluation, NotEvaluated, render_response
from cds_service.cards.texts import (
    SCHEMA_PATH,
    CardTexts,
    CardTextsError,
    load_card_texts,
    texts_for,
)
from cds_service.crd.coverage import demo_call
from cds_service.policy.definition import PACKS_DIR, PolicyFileError
from tests.cards.builders import NOW, SETTINGS, uuid_counter
from tests.cards.cases import CASES

NH_DIR = PACKS_DIR / "NH.PHAR.244"
OTHER_ID = "IL1.RIL.01"
OTHER_SETTINGS = dataclasses.replace(
    SETTINGS, policy_label=f"{OTHER_ID} Rilonacept (Arcalyst) — Example Health Plan"
)


def nh_cards() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((NH_DIR / "cards.yaml").read_text(encoding="utf-8"))
    return data


def write_pack(folder: Path, cards: dict[str, Any], policy: dict[str, Any] | None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cards.yaml").write_text(yaml.safe_dump(cards, sort_keys=False), encoding="utf-8")
    if policy is not None:
        (folder / "policy.yaml").write_text(yaml.safe_dump(policy), encoding="utf-8")
    return folder


def policy_with(*checks: str, off_label: bool = False) -> dict[str, Any]:
    """A raw policy document whose criteria use these checks."""
    section: dict[str, Any] = {
        "id": "I.A",
        "criteria": [{"id": f"I.A.{n}", "check": c} for n, c in enumerate(checks, 1)],
    }
    if off_label:
        section["off_label"] = True
    return {"id": OTHER_ID, "sections": [section]}


def arcalyst_cards() -> dict[str, Any]:
    cards = nh_cards()
    cards["product"] = "Arcalyst"
    cards["hypersensitivity"]["detail"] = (
        "{product} is contraindicated in patients with known hypersensitivity to rilonacept "
        "or any component of the product."
    )
    cards["not_met"]["step_therapy_criteria"] = ["I.A.3"]
    cards["off_label"]["policy"] = "CP.PMN.99"
    cards["off_label"]["references"] = ["CP.PMN.99"]
    return cards


def render(case: str, texts: CardTexts) -> dict[str, Any]:
    hook, evaluations = CASES[case]()
    return render_response(
        hook,
        evaluations,
        settings=OTHER_SETTINGS,
        uuid_factory=uuid_counter(),
        now=NOW,
        card_texts=lambda _policy_id: texts,
    )


def all_words(response: dict[str, Any]) -> str:
    return yaml.safe_dump(response)


# -- the NH.PHAR.244 pack ----------------------------------------------------------------


def test_the_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(yaml.safe_load(SCHEMA_PATH.read_text()))


def test_nh_phar_244_texts_load_with_every_kind_its_policy_triggers() -> None:
    texts = load_card_texts(NH_DIR)
    assert texts.product == "Kineret"
    for kind in ("combination", "duplicate", "hypersensitivity", "care_setting", "off_label"):
        assert texts.has(kind), kind
    assert texts.step_therapy_criteria == {"I.A.4", "I.A.5"}
    assert texts.off_label_policy == "CP.PMN.53"
    assert texts_for("NH.PHAR.244") == texts


def test_a_text_fills_the_product_and_its_own_placeholders() -> None:
    texts = texts_for("NH.PHAR.244")
    assert texts.text("not_met", "summary", reasons="age 16, the plan's minimum is 18") == (
        "Kineret not covered: age 16, the plan's minimum is 18"
    )
    with pytest.raises(TypeError, match="reasons"):
        texts.text("not_met", "summary")


def test_a_criterion_label_is_plain_words_and_its_reason_names_what_was_found() -> None:
    texts = texts_for("NH.PHAR.244")
    assert texts.label("I.A.4", "fallback") == "methotrexate trial dates"
    assert texts.label("Diagnosis", "fallback") == "fallback"  # an id the engine adds
    assert texts.confirm("I.A.2") == "confirm the prescriber is a rheumatologist"
    found = {"age": 16, "minimum": 18}
    assert texts.not_met("I.A.3", found, "reason") == "age 16, the plan's minimum is 18"
    # A value the check did not give: the check's own reason, never an empty slot.
    assert texts.not_met("I.A.3", {"age": 16}, "Age 16 on the order date") == (
        "Age 16 on the order date"
    )


def test_every_criterion_of_the_policy_needs_a_label(tmp_path: Path) -> None:
    cards = nh_cards()
    del cards["criteria"]["I.A.2"]
    policy = policy_with("diagnosis", "prescriber-specialty")
    with pytest.raises(CardTextsError, match=r"criteria: no plain label for I\.A\.2"):
        load_card_texts(write_pack(tmp_path / OTHER_ID, cards, policy))


@pytest.mark.parametrize(
    ("kind", "key", "text"),
    [
        ("documentation_needed", "summary", "{product} PA needed: send I.A.4 ({actions})"),
        ("combination", "detail", "{product} with {drugs}: see policy section III.B"),
    ],
)
def test_a_card_text_that_names_a_clause_is_refused(
    tmp_path: Path, kind: str, key: str, text: str
) -> None:
    cards = nh_cards()
    cards[kind][key] = text
    with pytest.raises(CardTextsError, match=rf"{kind}\.{key}: names the policy clause"):
        load_card_texts(write_pack(tmp_path / OTHER_ID, cards, None))


def test_a_criterion_label_that_names_a_clause_is_refused(tmp_path: Path) -> None:
    cards = nh_cards()
    cards["criteria"]["I.A.4"] = {"label": "documentation for I.A.4"}
    with pytest.raises(CardTextsError, match=r"criteria\.I\.A\.4\.label: names the policy"):
        load_card_texts(write_pack(tmp_path / OTHER_ID, cards, None))


# -- a cards.yaml that cannot be used stops the load, naming file and key ------------------


def test_an_unknown_placeholder_names_the_file_and_the_key(tmp_path: Path) -> None:
    cards = nh_cards()
    cards["combination"]["summary"] = "{product} with {drug_names}: not covered"
    folder = write_pack(tmp_path / OTHER_ID, cards, None)
    with pytest.raises(CardTextsError) as failure:
        load_card_texts(folder)
    message = str(failure.value)
    assert str(folder / "cards.yaml") in message
    assert "combination.summary" in message
    assert "{drug_names}" in message
    assert "{drugs}" in message  # what the text may use instead


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{product} for {}", "not a plain name"),
        ("{product:>20} dose", "no conversion or format"),
        ("{product!r} dose", "no conversion or format"),
        ("{product.upper} dose", "not a plain name"),
        ("{product dose", "not a valid template"),
    ],
)
def test_a_malformed_template_is_refused(tmp_path: Path, template: str, problem: str) -> None:
    cards = nh_cards()
    cards["actions"]["remove_order"] = template
    folder = write_pack(tmp_path / OTHER_ID, cards, None)
    with pytest.raises(CardTextsError, match=problem) as failure:
        load_card_texts(folder)
    assert "actions.remove_order" in str(failure.value)


def test_a_kind_the_policy_triggers_without_its_texts_fails(tmp_path: Path) -> None:
    cards = nh_cards()
    del cards["hypersensitivity"]
    folder = write_pack(tmp_path / OTHER_ID, cards, policy_with("diagnosis", "hypersensitivity"))
    with pytest.raises(PolicyFileError) as failure:
        load_card_texts(folder)
    message = str(failure.value)
    assert str(folder / "cards.yaml") in message
    assert "hypersensitivity: missing" in message


@pytest.mark.parametrize(
    ("kind", "policy"),
    [
        ("off_label", policy_with("diagnosis", off_label=True)),
        ("care_setting", policy_with("care-setting")),
        ("combination", policy_with("no-concurrent-therapy")),
        ("dose", policy_with("dose-limit")),
        ("dose", policy_with("dose-increase-limit")),
        ("not_covered", policy_with("not-covered")),
    ],
)
def test_each_triggered_kind_is_required(tmp_path: Path, kind: str, policy: Any) -> None:
    cards = nh_cards()
    cards.pop(kind, None)
    folder = write_pack(tmp_path / OTHER_ID, cards, policy)
    with pytest.raises(CardTextsError, match=f"{kind}: missing"):
        load_card_texts(folder)


def test_duplicate_texts_are_required_only_when_duplicate_drafts_are_checked(
    tmp_path: Path,
) -> None:
    cards = nh_cards()
    del cards["duplicate"]
    cards["not_met"]["step_therapy_criteria"] = []
    plain = policy_with("no-concurrent-therapy")
    assert not load_card_texts(write_pack(tmp_path / "a", cards, plain)).has("duplicate")
    drafts = copy.deepcopy(plain)
    drafts["sections"][0]["criteria"][0]["params"] = {"duplicate_drafts": True}
    with pytest.raises(CardTextsError, match="duplicate: missing"):
        load_card_texts(write_pack(tmp_path / "b", cards, drafts))


def test_switch_texts_are_required_only_when_a_switch_is_checked(tmp_path: Path) -> None:
    cards = nh_cards()
    cards["not_met"]["step_therapy_criteria"] = []
    plain = policy_with("no-concurrent-therapy")
    assert not load_card_texts(write_pack(tmp_path / "a", cards, plain)).has("switch")
    switching = copy.deepcopy(plain)
    switching["sections"][0]["criteria"][0]["params"] = {"switch_from": ["anakinra"]}
    with pytest.raises(CardTextsError, match="switch: missing"):
        load_card_texts(write_pack(tmp_path / "b", cards, switching))


def test_kinds_a_policy_never_triggers_may_be_left_out(tmp_path: Path) -> None:
    cards = nh_cards()
    for kind in ("combination", "duplicate", "hypersensitivity", "care_setting", "off_label"):
        del cards[kind]
    cards["not_met"]["step_therapy_criteria"] = []
    texts = load_card_texts(write_pack(tmp_path / OTHER_ID, cards, policy_with("diagnosis")))
    assert not texts.has("care_setting")


def test_a_check_nested_in_another_checks_params_needs_no_card(tmp_path: Path) -> None:
    cards = nh_cards()
    del cards["hypersensitivity"]
    policy = policy_with("any-of")
    policy["sections"][0]["criteria"][0]["params"] = {"checks": [{"check": "hypersensitivity"}]}
    cards["not_met"]["step_therapy_criteria"] = []
    assert not load_card_texts(write_pack(tmp_path / OTHER_ID, cards, policy)).has(
        "hypersensitivity"
    )


def test_step_therapy_criteria_must_be_criteria_of_the_policy(tmp_path: Path) -> None:
    cards = nh_cards()
    for kind in ("combination", "duplicate", "hypersensitivity", "care_setting", "off_label"):
        del cards[kind]
    folder = write_pack(tmp_path / OTHER_ID, cards, policy_with("diagnosis"))
    with pytest.raises(CardTextsError, match=r"not_met\.step_therapy_criteria: .*I\.A\.4"):
        load_card_texts(folder)


def test_a_schema_error_names_the_place(tmp_path: Path) -> None:
    cards = nh_cards()
    cards["criteria_met"]["summry"] = "typo"
    folder = write_pack(tmp_path / OTHER_ID, cards, None)
    with pytest.raises(CardTextsError, match=r"cards\.yaml: criteria_met: .*summry"):
        load_card_texts(folder)


def test_a_missing_always_needed_kind_is_a_schema_error(tmp_path: Path) -> None:
    cards = nh_cards()
    del cards["could_not_check"]
    folder = write_pack(tmp_path / OTHER_ID, cards, None)
    with pytest.raises(CardTextsError, match="could_not_check"):
        load_card_texts(folder)


def test_a_missing_cards_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(CardTextsError, match=r"cards\.yaml: cannot read"):
        load_card_texts(tmp_path)


# -- another pack's words on its own cards -------------------------------------------------


@pytest.fixture
def arcalyst(tmp_path: Path) -> CardTexts:
    policy = policy_with(
        "diagnosis",
        "prescriber-specialty",
        "trial-or-intolerance",
        "no-concurrent-therapy",
        "hypersensitivity",
        "care-setting",
        off_label=True,
    )
    policy["sections"][0]["criteria"][3]["params"] = {"duplicate_drafts": True}
    return load_card_texts(write_pack(tmp_path / OTHER_ID, arcalyst_cards(), policy))


@pytest.mark.parametrize("case", sorted(CASES))
def test_another_pack_renders_its_own_product_name(arcalyst: CardTexts, case: str) -> None:
    response = render(case, arcalyst)
    words = all_words(response)
    assert "Kineret" not in words
    for card in response["cards"]:
        assert "Arcalyst" in card["summary"]
    for action in response.get("systemActions", []):
        assert "Arcalyst" in action["description"]


def test_another_pack_renders_its_own_clause_words(arcalyst: CardTexts) -> None:
    [card] = render("hypersensitivity", arcalyst)["cards"]
    assert "hypersensitivity to rilonacept" in card["detail"]
    assert "E. coli-derived proteins, anakinra" not in card["detail"]
    [combination] = [
        c for c in render("combination_draft", arcalyst)["cards"] if c["indicator"] == "critical"
    ]
    assert combination["summary"].startswith("Arcalyst with adalimumab")
    assert "Remove this Arcalyst order" in [s["label"] for s in combination["suggestions"]]
    switching = [r["display"] for r in combination["overrideReasons"]]
    assert "The other therapy is being stopped (switching to Arcalyst)" in switching


def test_step_therapy_criteria_come_from_the_pack(arcalyst: CardTexts) -> None:
    # other_not_met fails I.A.3 (age) and I.A.4 (methotrexate trial).
    nh = render("other_not_met", texts_for("NH.PHAR.244"))
    other = render("other_not_met", arcalyst)
    assert nh["cards"][0]["source"]["topic"]["code"] == "therapy-alternatives-req"
    assert other["cards"][0]["source"]["topic"]["code"] == "therapy-alternatives-req"
    texts = dataclasses.replace(arcalyst, step_therapy_criteria=frozenset({"II.A.1"}))
    assert render("other_not_met", texts)["cards"][0]["source"]["topic"]["code"] == (
        "off-guideline"
    )


def test_the_off_label_policy_comes_from_the_pack(arcalyst: CardTexts) -> None:
    hook, [evaluation] = CASES["off_label"]()
    assert isinstance(evaluation, Evaluation)
    bare = Evaluation(
        evaluation.facts, dataclasses.replace(evaluation.decision, policy_references=())
    )
    response = render_response(
        hook,
        [bare],
        settings=SETTINGS,
        uuid_factory=uuid_counter(),
        now=NOW,
        card_texts=lambda _policy_id: arcalyst,
    )
    [card] = response["cards"]
    assert card["summary"].startswith("Off-label use of Arcalyst")
    assert "off-label use policy (CP.PMN.99)" in card["detail"]


def test_one_call_with_two_packs_gives_each_order_its_packs_words(
    arcalyst: CardTexts,
) -> None:
    _, [kineret] = CASES["criteria_met"]()
    assert isinstance(kineret, Evaluation)
    other = Evaluation(
        kineret.facts,
        dataclasses.replace(
            kineret.decision, policy_id=OTHER_ID, order_ref="MedicationRequest/arcalyst-1"
        ),
    )
    lookup = {"NH.PHAR.244": texts_for("NH.PHAR.244"), OTHER_ID: arcalyst}
    response = render_response(
        "order-sign",
        [kineret, other, NotEvaluated("MedicationRequest/x", "unreadable", policy_id=OTHER_ID)],
        settings=SETTINGS,
        uuid_factory=uuid_counter(),
        now=NOW,
        card_texts=lookup.__getitem__,
    )
    # Criteria met with coverage information: no card repeats it (CRD resp-12); the
    # criteria-met cards are rendered when it is switched off.
    assert [c["summary"] for c in response["cards"]] == [
        "Could not complete the Arcalyst coverage check: submit for manual review"
    ]
    cards_only = render_response(
        "order-sign",
        [kineret, other, NotEvaluated("MedicationRequest/x", "unreadable", policy_id=OTHER_ID)],
        settings=SETTINGS,
        uuid_factory=uuid_counter(),
        now=NOW,
        card_texts=lookup.__getitem__,
        coverage=dataclasses.replace(demo_call(), enabled=False),
    )
    summaries = [card["summary"] for card in cards_only["cards"]]
    assert summaries[0].startswith("Kineret meets the plan's criteria")
    assert summaries[1].startswith("Arcalyst meets the plan's criteria")
    assert (
        summaries[2] == "Could not complete the Arcalyst coverage check: submit for manual review"
    )
    reasons = [
        part["valueCodeableConcept"]["text"]
        for action in response["systemActions"]
        for ext in action["resource"]["extension"]
        for part in ext["extension"]
        if part["url"] == "reason"
    ]
    assert reasons[0].startswith(
        "The chart documents every criterion of the plan's policy NH.PHAR.244."
    )
    assert reasons[1].startswith(
        f"The chart documents every criterion of the plan's policy {OTHER_ID}."
    )
