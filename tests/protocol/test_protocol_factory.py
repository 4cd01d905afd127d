"""The application factory, settings and start-up validation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from cds_service import create_app, pipeline
from cds_service.api import get_state
from cds_service.cli import main
from cds_service.config import Settings, SettingsError, load_settings
from cds_service.hooks import HookFileError, load_catalog
from tests.conftest import HOOKS_DIR, PINNED_NOW, base_config, load_example


def test_factory_reads_overrides_not_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDS_REQUEST_DEADLINE", "9")
    app = create_app(base_config(CDS_REQUEST_DEADLINE=1.5))
    settings = get_state(app).settings
    assert settings.request_deadline == 1.5
    assert settings.auth == "disabled"
    assert app.testing


def test_factory_without_config_reads_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDS_HOOKS_DIR", str(HOOKS_DIR))
    monkeypatch.setenv("CDS_FHIR_SERVERS", "https://ehr.example.org/fhir, https://b.example/r4")
    monkeypatch.setenv("CDS_MAX_BODY_BYTES", "1234")
    monkeypatch.setenv("CDS_DATABASE_URL", "sqlite://")
    monkeypatch.setenv("CDS_TRUSTED_ISSUERS", str(HOOKS_DIR / "trusted-issuers.example.json"))
    monkeypatch.setenv("CDS_PUBLIC_BASE_URL", "https://cds.example.org")
    app = create_app()
    settings = get_state(app).settings
    assert settings.fhir_servers == ("https://ehr.example.org/fhir", "https://b.example/r4")
    assert settings.auth == "enabled"
    assert get_state(app).authenticator is not None
    assert app.config["MAX_CONTENT_LENGTH"] == 1234
    assert not app.testing


def test_settings_defaults() -> None:
    settings = Settings()
    assert settings.request_deadline == 4.0
    assert settings.cors_origins == ("*",)
    assert settings.fhir_servers == ()
    assert settings.database_url.startswith("sqlite:///")
    assert settings.database_url.endswith("var/cds.sqlite")
    assert settings.auth == "enabled"
    assert settings.max_json_depth == 64
    assert settings.max_draft_orders == 100
    assert settings.auth_clock_skew == 30.0


def test_http_fhir_server_is_allowed_on_loopback_only() -> None:
    settings = load_settings({"CDS_FHIR_SERVERS": "http://127.0.0.1:8081/fhir,https://a.example"})
    assert settings.fhir_servers == ("http://127.0.0.1:8081/fhir", "https://a.example")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CDS_REQUEST_DEADLINE", "soon"),
        ("CDS_REQUEST_DEADLINE", "0"),
        ("CDS_MAX_FHIR_QUERIES", "0"),
        ("CDS_AUTH", "maybe"),
        ("CDS_FHIR_SERVERS", "ftp://ehr.example.org"),
        ("CDS_PUBLIC_BASE_URL", "not a url"),
        ("CDS_FHIR_SERVERS", "http://ehr.example.org/fhir"),
        ("CDS_MAX_JSON_DEPTH", "-3"),
        ("CDS_JWKS_REFRESH_INTERVAL", "-1"),
        ("CDS_AUTH_MAX_TOKEN_LIFETIME", "0"),
        ("CDS_LOG_LEVEL", "NOPE"),
    ],
)
def test_bad_setting_is_refused_with_its_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_clock_and_ids_reach_the_pipeline(make_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[pipeline.CallContext] = []

    def fake_run(call: pipeline.CallContext, resources: Any, engine: Any = None) -> dict[str, Any]:
        seen.append(call)
        return {"cards": []}

    monkeypatch.setattr(pipeline, "run", fake_run)
    app = make_app(UUID_FACTORY=lambda: "fixed-id")
    body = load_example("order-sign-prefetch.json")
    response = app.test_client().post("/cds-services/prior-auth-order-sign", json=body)
    assert response.status_code == 200
    (call,) = seen
    assert call.now == PINNED_NOW
    assert call.uuid_factory() == "fixed-id"
    assert call.service_id == "prior-auth-order-sign"
    assert call.hook_instance == body["hookInstance"]
    assert call.fhir_server_used is False


def _copy_hooks(tmp_path: Path) -> Path:
    target = tmp_path / "hooks"
    shutil.copytree(HOOKS_DIR, target)
    return target


def _edit_service(hooks: Path, name: str, change: Any) -> None:
    path = hooks / "services" / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["prefetch"].update(x="Observation?patient={{context.foo}}"), "context.foo"),
        (lambda d: d["prefetch"].update(x="Patient/{{context.patientId"), "unbalanced"),
        (lambda d: d.update(requiredPrefetch=["nope"]), "requiredPrefetch 'nope'"),
        (lambda d: d.update(id="other-id"), "does not match the file name"),
        (lambda d: d.update(hook="patient-view"), "/hook"),
        (lambda d: d.pop("description"), "description"),
        (lambda d: d.update(title="Check for {drug}"), "unknown placeholder '{drug}'"),
        (
            lambda d: d.update(aliases=["prior-auth-order-select"]),
            "alias 'prior-auth-order-select' is already the id",
        ),
        (lambda d: d.update(aliases=["Bad Id"]), "/aliases/0"),
    ],
)
def test_invalid_service_file_stops_start_up(tmp_path: Path, change: Any, expected: str) -> None:
    hooks = _copy_hooks(tmp_path)
    _edit_service(hooks, "prior-auth-order-sign.json", change)
    with pytest.raises(HookFileError) as caught:
        create_app(base_config(CDS_HOOKS_DIR=str(hooks)))
    assert any(expected in problem for problem in caught.value.problems)


def test_unreadable_json_and_broken_schema_stop_start_up(tmp_path: Path) -> None:
    hooks = _copy_hooks(tmp_path)
    (hooks / "services" / "prior-auth-order-select.json").write_text("{not json")
    (hooks / "schemas" / "response.schema.json").write_text('{"type": 12}')
    with pytest.raises(HookFileError) as caught:
        load_catalog(hooks)
    text = "\n".join(caught.value.problems)
    assert "prior-auth-order-select.json: cannot read JSON" in text
    assert "response.schema.json: not a valid 2020-12 schema" in text


def test_missing_hooks_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(HookFileError, match="hooks folder not found"):
        create_app(base_config(CDS_HOOKS_DIR=str(tmp_path / "absent")))


def test_check_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDS_HOOKS_DIR", str(HOOKS_DIR))
    monkeypatch.setenv("CDS_DATABASE_URL", f"sqlite:///{tmp_path / 'audit.sqlite'}")
    monkeypatch.delenv("CDS_AUTH", raising=False)
    monkeypatch.delenv("CDS_TRUSTED_ISSUERS", raising=False)
    monkeypatch.delenv("CDS_PUBLIC_BASE_URL", raising=False)
    # Authentication is on by default: without trusted issuers the check fails and says why.
    assert main(["check"]) == 1
    assert "CDS_TRUSTED_ISSUERS" in capsys.readouterr().err

    monkeypatch.setenv("CDS_TRUSTED_ISSUERS", str(HOOKS_DIR / "trusted-issuers.example.json"))
    # As `serve`: with authentication on, the public base URL is required too.
    assert main(["check"]) == 1
    assert "CDS_PUBLIC_BASE_URL" in capsys.readouterr().err
    monkeypatch.setenv("CDS_PUBLIC_BASE_URL", "https://cds.example.org")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "audit database: ok (SQLite file" in out
    assert "trusted issuers: 3" in out
    assert (
        "https://ehr.example.org: FHIR servers that may be read: https://ehr.example.org/fhir"
        in out
    )

    monkeypatch.setenv("CDS_AUTH", "disabled")
    monkeypatch.delenv("CDS_TRUSTED_ISSUERS")
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: CDS_AUTH=disabled" in out
    assert "service prior-auth-order-sign: hook order-sign" in out
    assert "required: medicationRequests, patient" in out

    hooks = _copy_hooks(tmp_path)
    _edit_service(hooks, "prior-auth-order-sign.json", lambda d: d.update(hook="nope"))
    monkeypatch.setenv("CDS_HOOKS_DIR", str(hooks))
    assert main(["check"]) == 1
    assert "FAILED" in capsys.readouterr().err
