"""A client that does not show coverage information (the official CDS Hooks sandbox ignores
system actions) still tells the prescriber that an order meets the criteria: the short
criteria-met card is kept beside the coverage-information action. Every other client gets
the action alone (CRD resp-12).

Per client with authentication on (`shows_coverage_information` in the trusted-issuers
file), service-wide with it off (`CDS_CLIENT_SHOWS_COVERAGE_INFORMATION`)."""

from __future__ import annotations

import json
from itertools import count
from pathlib import Path
from typing import Any

import pytest

from cds_service import create_app
from cds_service.config import SettingsError, load_settings, validate_startup
from tests.answers import covered
from tests.auth.conftest import Signer, jwks, make_signer
from tests.conftest import PINNED_NOW, base_config, load_example

SIGN = "/cds-services/prior-auth-order-sign"
HOST = "http://localhost"
EXAMPLE_ISSUERS = Path(__file__).resolve().parents[2] / "hooks" / "trusted-issuers.example.json"
_jti = count(1)


def criteria_met_answer(config: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    body = load_example("order-sign-prefetch.json")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = create_app(config).test_client().post(SIGN, json=body, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer: dict[str, Any] = response.get_json()
    return answer


def summaries(answer: dict[str, Any]) -> list[str]:
    return [card["summary"] for card in answer["cards"]]


def draft_order(answer: dict[str, Any]) -> str:
    resource = answer["systemActions"][0]["resource"]
    return f"{resource['resourceType']}/{resource['id']}"


def test_by_default_a_criteria_met_order_is_answered_by_the_coverage_information_alone():
    answer = criteria_met_answer(base_config())

    assert answer["cards"] == []
    assert covered(answer, draft_order(answer)) == "covered"


@pytest.mark.parametrize("value", ["false", "0", "no", False])
def test_auth_off_clients_that_do_not_show_it_get_the_criteria_met_card_beside_it(value: Any):
    answer = criteria_met_answer(base_config(CDS_CLIENT_SHOWS_COVERAGE_INFORMATION=value))

    [card] = answer["cards"]
    assert card["summary"].startswith("Kineret meets the plan's criteria: send the PA request")
    assert card["indicator"] == "info"
    # The coverage information is still sent, for the EHR systems that read it.
    assert covered(answer, draft_order(answer)) == "covered"


def test_the_setting_set_to_true_changes_nothing():
    answer = criteria_met_answer(base_config(CDS_CLIENT_SHOWS_COVERAGE_INFORMATION="true"))

    assert answer["cards"] == []


def test_a_value_that_is_not_true_or_false_names_the_setting():
    with pytest.raises(
        SettingsError, match=r"CDS_CLIENT_SHOWS_COVERAGE_INFORMATION.*true or false"
    ):
        load_settings({"CDS_CLIENT_SHOWS_COVERAGE_INFORMATION": "sometimes"})


def test_with_auth_on_the_service_wide_setting_is_refused_at_start():
    settings = load_settings(
        {
            "CDS_AUTH": "enabled",
            "CDS_TRUSTED_ISSUERS": str(EXAMPLE_ISSUERS),
            "CDS_PUBLIC_BASE_URL": HOST,
            "CDS_CLIENT_SHOWS_COVERAGE_INFORMATION": "false",
        }
    )
    with pytest.raises(SettingsError, match='"shows_coverage_information": false') as refused:
        validate_startup(settings, database=False)
    assert "\n" not in str(refused.value)


# --- authentication on: per client ----------------------------------------------------------


@pytest.fixture(scope="module")
def signer() -> Signer:
    return make_signer("ES384", "client-shows-coverage")


def issuers_file(tmp_path: Path, signer: Signer, **flags: bool) -> Path:
    entries = [
        {
            "iss": iss,
            "jwks": jwks(signer),
            "fhir_servers": ["https://ehr.example.org/fhir"],
            **({"shows_coverage_information": shown} if shown is not None else {}),
        }
        for iss, shown in (
            ("https://sandbox.example.org", flags.get("sandbox")),
            ("https://ehr.example.org", flags.get("ehr")),
        )
    ]
    path = tmp_path / "trusted-issuers.json"
    path.write_text(json.dumps({"issuers": entries}), encoding="utf-8")
    return path


def token(signer: Signer, iss: str) -> str:
    now = int(PINNED_NOW.timestamp())
    claims = {"iss": iss, "aud": HOST + SIGN, "iat": now, "exp": now + 300}
    return signer.sign({**claims, "jti": f"jti-{next(_jti)}"})


def auth_config(tmp_path: Path, issuers: Path) -> dict[str, Any]:
    return base_config(
        CDS_AUTH="enabled",
        CDS_TRUSTED_ISSUERS=str(issuers),
        CDS_PUBLIC_BASE_URL=HOST,
        CDS_DATABASE_URL=f"sqlite:///{tmp_path / 'audit.sqlite'}",
    )


def test_auth_on_only_the_client_marked_as_not_showing_it_gets_the_card(
    tmp_path: Path, signer: Signer
):
    config = auth_config(tmp_path, issuers_file(tmp_path, signer, sandbox=False))

    sandbox = criteria_met_answer(config, token(signer, "https://sandbox.example.org"))
    ehr = criteria_met_answer(config, token(signer, "https://ehr.example.org"))

    assert [s.split(":")[0] for s in summaries(sandbox)] == ["Kineret meets the plan's criteria"]
    assert covered(sandbox, draft_order(sandbox)) == "covered"
    assert ehr["cards"] == []  # unset: the client shows coverage information
    assert covered(ehr, draft_order(ehr)) == "covered"


def test_auth_on_a_client_marked_as_showing_it_gets_no_card(tmp_path: Path, signer: Signer):
    config = auth_config(tmp_path, issuers_file(tmp_path, signer, sandbox=True))

    answer = criteria_met_answer(config, token(signer, "https://sandbox.example.org"))

    assert answer["cards"] == []


def test_the_field_must_be_true_or_false(tmp_path: Path, signer: Signer):
    path = issuers_file(tmp_path, signer)
    data = json.loads(path.read_text())
    data["issuers"][0]["shows_coverage_information"] = "no"
    path.write_text(json.dumps(data))

    with pytest.raises(SettingsError, match="shows_coverage_information"):
        create_app(auth_config(tmp_path, path))


def test_the_example_file_marks_the_official_sandbox_as_not_showing_it():
    from cds_service.auth import TrustedIssuers

    issuers = TrustedIssuers.load(EXAMPLE_ISSUERS)
    sandbox = issuers.get("https://sandbox.cds-hooks.org")
    ehr = issuers.get("https://ehr.example.org")
    assert sandbox is not None
    assert not sandbox.shows_coverage_information
    assert ehr is not None
    assert ehr.shows_coverage_information
