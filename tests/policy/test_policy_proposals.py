"""The `companions` and `alternates` blocks of policy.yaml: what the policy schema and the
linter tell a pharmacist who declares them wrong, before the service starts."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds_service.policy import lint
from cds_service.policy.definition import PACKS_DIR, PolicyFileError, read_policy_file
from cds_service.policy.packs import load_pack

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _copy(tmp_path: Path, pack_id: str) -> Path:
    copy = tmp_path / pack_id
    shutil.copytree(PACKS_DIR / pack_id, copy)
    return copy


@pytest.fixture
def ril(tmp_path: Path) -> Path:
    """A copy of IL1.RIL.01 (companions: TB screen, body weight) that a test may break."""
    return _copy(tmp_path, "IL1.RIL.01")


@pytest.fixture
def nh(tmp_path: Path) -> Path:
    """A copy of NH.PHAR.244 (alternates: the preferred products of I.A.5)."""
    return _copy(tmp_path, "NH.PHAR.244")


def _edit(pack: Path, change: Callable[[dict[str, Any]], None]) -> None:
    path = pack / "policy.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def _errors(pack: Path) -> dict[str, str]:
    return {f.place: f.message for f in lint.lint_pack(pack) if f.severity == "error"}


def test_the_shipped_blocks_load_with_their_orders(ril: Path, nh: Path) -> None:
    companions = read_policy_file(ril / "policy.yaml").proposals.companions
    assert [(c.id, c.criteria) for c in companions] == [
        ("tb-screen", ("I.A.5", "I.B.5", "I.C.5")),
        ("body-weight", ("I.B.3",)),
    ]
    (alternate,) = read_policy_file(nh / "policy.yaml").proposals.alternates
    assert alternate.criteria == ("I.A.5",)
    assert all(any(c.system == RXNORM for c in o.code) for o in alternate.orders)
    assert _errors(ril) == {}
    assert _errors(nh) == {}


def test_a_companion_for_an_unknown_criterion_is_refused(ril: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["companions"][0]["criteria"].append("I.A.99")

    _edit(ril, change)
    assert _errors(ril) == {"companions[0].criteria": "unknown criterion 'I.A.99'"}
    with pytest.raises(PolicyFileError, match=r"companions\[0\]\.criteria: unknown criterion"):
        load_pack(ril)


def test_a_companion_for_a_criterion_that_is_never_unknown_is_an_error(ril: Path) -> None:
    """III.B (not-covered) is only ever not-met: a card for its missing record never shows."""

    def change(data: dict[str, Any]) -> None:
        data["companions"][1]["criteria"] = ["III.B"]

    _edit(ril, change)
    assert _errors(ril) == {
        "companions[1].criteria": "III.B (not-covered) is never unknown: a companion for a "
        "missing record would never show"
    }


def test_a_criterion_answered_twice_is_refused(ril: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["companions"][1]["criteria"] = ["I.B.3", "I.B.5"]

    _edit(ril, change)
    assert _errors(ril) == {"companions[1].criteria": "I.B.5 is already answered by 'tb-screen'"}


def test_a_companion_takes_no_dosage_and_only_no_record(ril: Path) -> None:
    def dosage(data: dict[str, Any]) -> None:
        data["companions"][0]["orders"][0]["dosage_text"] = "once"

    _edit(ril, dosage)
    assert _errors(ril) == {
        "companions[0].orders[0].dosage_text": "a companion order (a test) takes no dosage"
    }

    def not_met(data: dict[str, Any]) -> None:
        del data["companions"][0]["orders"][0]["dosage_text"]
        data["companions"][0]["when"] = ["not-met"]

    _edit(ril, not_met)
    (place, message), *_ = _errors(ril).items()
    assert place == "companions[0].when[0]"
    assert "'no-record'" in message


def test_a_companion_test_its_criterion_would_not_read_is_a_warning(ril: Path) -> None:
    """A body-weight order proposed for the TB screen: its result would not count."""

    def change(data: dict[str, Any]) -> None:
        data["companions"][0]["orders"][0]["code"] = [
            {"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}
        ]

    _edit(ril, change)
    warnings = {f.place: f.message for f in lint.lint_pack(ril) if f.severity == "warning"}
    assert warnings["companions[0].orders[0].code"] == (
        "igra: no code is in a value set of I.A.5, I.B.5, I.C.5 (latent-tb-treatment, tb-igra, "
        "tb-skin-test): its result would be read by name only"
    )


def test_an_alternate_the_criterion_does_not_count_is_refused(nh: Path) -> None:
    """Etanercept is a biologic but not a preferred product of Appendix B: proposing it
    would send the prescriber to a trial that does not satisfy I.A.5."""

    def change(data: dict[str, Any]) -> None:
        data["alternates"][0]["orders"][0]["code"] = [
            {"system": RXNORM, "code": "261105", "display": "etanercept product"}
        ]

    _edit(nh, change)
    assert _errors(nh) == {
        "alternates[0].orders[0].code": "tofacitinib-ir: no code is in a value set of I.A.5 "
        "(preferred-ra-product): a trial of it would not count for the criterion"
    }


def test_an_alternate_needs_an_rxnorm_code(nh: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["alternates"][0]["orders"][0]["code"] = [
            {"system": "http://hl7.org/fhir/sid/ndc", "code": "00069-1001-01", "display": "x"}
        ]

    _edit(nh, change)
    assert _errors(nh)["alternates[0].orders[0].code"] == "an alternate needs an RxNorm code"


def test_an_alternate_when_not_met_on_a_criterion_never_not_met_is_a_warning(nh: Path) -> None:
    """I.A.5 with short_trial_status unknown is never not-met."""

    def change(data: dict[str, Any]) -> None:
        data["alternates"][0]["when"] = ["no-record", "not-met"]

    _edit(nh, change)
    warnings = {f.place: f.message for f in lint.lint_pack(nh) if f.severity == "warning"}
    assert warnings["alternates[0].when"] == (
        "I.A.5 (trial-or-intolerance) is never not-met with these parameters"
    )


def test_declared_companions_need_their_card_texts(ril: Path) -> None:
    cards = ril / "cards.yaml"
    data = yaml.safe_load(cards.read_text(encoding="utf-8"))
    del data["companion"]
    cards.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert _errors(ril) == {
        "companion": "missing; the policy needs these texts (the policy declares companions "
        "(orders to add))"
    }


def test_a_card_text_with_a_placeholder_it_does_not_get_is_refused(nh: Path) -> None:
    cards = nh / "cards.yaml"
    data = yaml.safe_load(cards.read_text(encoding="utf-8"))
    data["alternate"]["remove_action"] = "Remove {order}"
    cards.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert _errors(nh)["alternate.remove_action"].startswith("unknown placeholder {order}")
