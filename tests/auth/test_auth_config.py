"""The trusted-issuers file: a bad file stops start-up with a message that says what is wrong."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from cds_service.auth import DEFAULT_SCHEMA_PATH, ConfigError, TrustedIssuers

from .conftest import FHIR, ISS, Signer, WriteConfig, jwks

REPO = Path(__file__).resolve().parents[2]
JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"


def url_issuer(**extra: Any) -> dict[str, Any]:
    return {"iss": ISS, "jwks_url": JWKS_URL, "fhir_servers": [FHIR], **extra}


def config_error(write_config: WriteConfig, *issuers: dict[str, Any], **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        write_config(*issuers, **kwargs)
    return str(caught.value)


def test_schema_is_a_valid_json_schema():
    schema = json.loads(DEFAULT_SCHEMA_PATH.read_text())

    jsonschema.Draft202012Validator.check_schema(schema)


def test_example_file_in_the_repository_loads():
    issuers = TrustedIssuers.load(REPO / "hooks" / "trusted-issuers.example.json")

    sandbox = issuers.get("https://sandbox.cds-hooks.org")
    assert sandbox is not None
    assert "ES384" in sandbox.algorithms
    assert sandbox.jku_allowlist == ("https://sandbox.cds-hooks.org/.well-known/jwks.json",)
    ehr = issuers.get("https://ehr.example.org/")  # trailing slash ignored
    assert ehr is not None
    assert ehr.tenant is not None


def test_defaults_are_es384_and_rs384(write_config: WriteConfig):
    issuer = write_config(url_issuer()).get(ISS)

    assert issuer is not None
    assert issuer.algorithms == ("ES384", "RS384")
    assert issuer.fhir_servers == (FHIR,)


def test_key_file_is_read_relative_to_the_config_file(tmp_path: Path, es384: Signer):
    (tmp_path / "conf" / "keys").mkdir(parents=True)
    (tmp_path / "conf" / "keys" / "ehr.json").write_text(json.dumps(jwks(es384)))
    config = tmp_path / "conf" / "trusted.json"
    config.write_text(
        json.dumps(
            {"issuers": [{"iss": ISS, "jwks_file": "keys/ehr.json", "fhir_servers": [FHIR]}]}
        )
    )

    issuer = TrustedIssuers.load(config).get(ISS)

    assert issuer is not None
    assert list(issuer.keys) == [es384.kid]


@pytest.mark.parametrize(
    ("server", "allowed"),
    [
        ("https://ehr.example.org/fhir", True),
        ("http://127.0.0.1:8081/fhir", True),
        ("http://localhost:8081/fhir", True),
        ("http://[::1]:8081/fhir", True),
        ("http://ehr.example.org/fhir", False),
        ("http://10.0.0.5/fhir", False),
        ("ftp://ehr.example.org/fhir", False),
        ("https://user@ehr.example.org/fhir", False),
        ("https://ehr.example.org/fhir?_format=json", False),
        ("ehr.example.org/fhir", False),
    ],
)
def test_fhir_servers_must_be_https_unless_loopback(
    write_config: WriteConfig, server: str, allowed: bool
):
    if allowed:
        assert write_config(url_issuer(fhir_servers=[server])).get(ISS) is not None
    else:
        message = config_error(write_config, url_issuer(fhir_servers=[server]))
        assert "fhir_servers" in message


def test_http_jku_off_loopback_is_refused(write_config: WriteConfig):
    message = config_error(
        write_config, url_issuer(jku_allowlist=["http://ehr.example.org/jwks.json"])
    )

    assert "jku_allowlist" in message
    assert "https" in message


@pytest.mark.parametrize("alg", ["HS256", "none", "PS256", "ES512"])
def test_algorithms_outside_the_supported_set_are_refused(write_config: WriteConfig, alg: str):
    message = config_error(write_config, url_issuer(algorithms=["ES384", alg]))

    assert "algorithms" in message


def test_an_issuer_without_any_key_source_is_refused(write_config: WriteConfig):
    message = config_error(write_config, {"iss": ISS, "fhir_servers": [FHIR]})

    assert "no key source" in message


def test_two_key_sources_are_refused(write_config: WriteConfig, es384: Signer):
    message = config_error(
        write_config,
        url_issuer(jwks_file="k.json"),
        key_files={"k.json": jwks(es384)},
    )

    assert "at most one" in message


def test_missing_key_file_names_the_file(write_config: WriteConfig):
    message = config_error(
        write_config, {"iss": ISS, "jwks_file": "absent.json", "fhir_servers": []}
    )

    assert "absent.json" in message


def test_private_key_in_a_key_file_is_refused(write_config: WriteConfig, es384: Signer):
    leaked = jwks(es384)
    leaked["keys"][0]["d"] = "c2VjcmV0"

    message = config_error(
        write_config,
        {"iss": ISS, "jwks_file": "k.json", "fhir_servers": [FHIR]},
        key_files={"k.json": leaked},
    )

    assert "private key" in message


def test_duplicate_issuers_are_refused(write_config: WriteConfig):
    message = config_error(write_config, url_issuer(), url_issuer(iss=ISS + "/"))

    assert "twice" in message


def test_unknown_fields_are_refused(write_config: WriteConfig):
    message = config_error(write_config, url_issuer(fhir_server=FHIR))

    assert "fhir_server" in message


def test_invalid_json_is_reported_with_its_line(tmp_path: Path):
    path = tmp_path / "trusted.json"
    path.write_text('{\n  "issuers": [\n    {"iss": }\n  ]\n}\n')

    with pytest.raises(ConfigError, match="line 3"):
        TrustedIssuers.load(path)


def test_missing_file_is_reported(tmp_path: Path):
    with pytest.raises(ConfigError, match="cannot read"):
        TrustedIssuers.load(tmp_path / "nope.json")
