"""Loading the policy file: the packaged policy, and clear errors for bad files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from cds_service.policy.definition import DEFAULT_POLICY_PATH, PolicyFileError, parse_policy
from cds_service.policy.engine import load_policy
from cds_service.policy.model import Pathway, Status


def _raw() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return copy.deepcopy(data)


def _criterion(data: dict[str, Any], criterion_id: str) -> dict[str, Any]:
    for section in data["sections"]:
        for criterion in section["criteria"]:
            if criterion["id"] == criterion_id:
                return criterion  # type: ignore[no-any-return]
    raise KeyError(criterion_id)


def test_packaged_policy_identity() -> None:
    policy = load_policy()
    assert policy.id == "NH.PHAR.244"
    assert policy.line_of_business == "Medicaid"
    assert (policy.effective, policy.last_review) == ("06.24", "04.25")
    assert policy.version
    assert {"CP.PMN.53", "CP.PMN.255", "CP.PMN.16"} <= set(policy.references)


def test_packaged_policy_has_every_criterion_of_the_policy() -> None:
    ids = [c.id for c in load_policy().all_criteria()]
    expected = [
        *(f"I.A.{n}" for n in range(1, 9)),
        *(f"I.B.{n}" for n in range(1, 5)),
        *(f"I.C.{n}" for n in range(1, 5)),
        "I.D.1",
        "I.E",
        *(f"II.A.{n}" for n in range(1, 5)),
        "II.B.1",
        "II.C",
        "III.A",
        "III.B",
        "IV.C",
    ]
    assert sorted(ids) == sorted(expected)


def test_sections_approval_and_pathways() -> None:
    policy = load_policy()
    months = {s.id: s.approval_months for s in policy.sections}
    assert months == {
        "I.A": 6,
        "I.B": 6,
        "I.C": 6,
        "I.D": None,
        "I.E": None,
        "II.A": 12,
        "II.B": None,
        "II.C": None,
    }
    assert policy.off_label_section(Pathway.INITIAL).id == "I.E"
    assert policy.off_label_section(Pathway.CONTINUED).id == "II.C"


def test_combination_copies_are_decided_like_iii_b() -> None:
    policy = load_policy()
    iii_b = next(c for c in policy.common_criteria if c.id == "III.B")
    for criterion_id in ("I.A.7", "I.B.3", "I.C.3", "II.A.3"):
        copy_ = next(c for c in policy.all_criteria() if c.id == criterion_id)
        assert (copy_.check, dict(copy_.params)) == (iii_b.check, dict(iii_b.params))


def test_every_criterion_can_be_undecided_or_decided() -> None:
    for criterion in load_policy().all_criteria():
        assert criterion.possible_statuses(), criterion.id
        assert criterion.documentation


def test_default_load_is_the_packaged_file(tmp_path: Path) -> None:
    copy_path = tmp_path / "copy.yaml"
    copy_path.write_text(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_policy(copy_path).id == load_policy().id


@pytest.mark.parametrize(
    ("mutate", "where", "message"),
    [
        (
            lambda d: _criterion(d, "I.A.3").update(check="oldest-age"),
            "sections[0].criteria[2].check",
            "unknown check",
        ),
        (
            lambda d: _criterion(d, "I.A.4")["params"].update(first_line="metotrexate"),
            "sections[0].criteria[3].params.first_line",
            "unknown value set",
        ),
        (
            lambda d: _criterion(d, "I.A.3")["params"].pop("years"),
            "sections[0].criteria[2].params",
            "missing parameter 'years'",
        ),
        (
            lambda d: _criterion(d, "I.A.3")["params"].update(years="eighteen"),
            "sections[0].criteria[2].params.years",
            "whole number",
        ),
        (
            lambda d: _criterion(d, "I.A.8")["params"].update(mg_per_dya=100),
            "sections[0].criteria[7].params",
            "unknown parameter",
        ),
        (
            lambda d: _criterion(d, "I.A.5")["params"].update(short_trial_status="maybe"),
            "sections[0].criteria[4].params.short_trial_status",
            "expected one of",
        ),
        (
            lambda d: _criterion(d, "I.A.1").pop("documentation"),
            "sections[0].criteria[0]",
            "'documentation' is a required property",
        ),
        (
            lambda d: d["sections"][0].update(indications=["gout"]),
            "sections[0].indications",
            "unknown indication 'gout'",
        ),
        (
            lambda d: _criterion(d, "I.B.1").update(id="I.A.1"),
            "sections[1].criteria[0].id",
            "duplicate criterion id",
        ),
        (
            lambda d: d["sections"][4].update(policy_references=["CP.PMN.99"]),
            "sections[4].policy_references",
            "CP.PMN.99",
        ),
        (lambda d: d.update(effective="June 2024"), "effective", "does not match"),
    ],
)
def test_bad_policy_file_names_the_place(mutate: Any, where: str, message: str) -> None:
    data = _raw()
    mutate(data)
    with pytest.raises(PolicyFileError) as err:
        parse_policy(data, "bad.yaml")
    text = str(err.value)
    assert text.startswith(f"bad.yaml: {where}:"), text
    assert message in text


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(PolicyFileError, match="not valid YAML"):
        load_policy(broken)


def test_statuses_reachable_follow_the_parameters() -> None:
    policy = load_policy()
    by_id = {c.id: c for c in policy.all_criteria()}
    assert by_id["I.B.1"].possible_statuses() == {Status.MET, Status.UNKNOWN}
    assert by_id["I.C.1"].possible_statuses() == set(Status)
    assert by_id["I.A.5"].possible_statuses() == {Status.MET, Status.UNKNOWN}
    # Unknown when the EHR could not give the medication statements (nothing found then
    # proves nothing).
    assert by_id["III.B"].possible_statuses() == set(Status)
