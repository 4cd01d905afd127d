"""Health and readiness, the start-up refusal without a public base URL, and which
proxies' forwarded headers gunicorn believes."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine

from cds_service import create_app
from cds_service.cli import main
from cds_service.config import SettingsError, load_settings
from cds_service.health import HEALTH_KEY, DatabaseProbe, readiness_problem
from cds_service.server import gunicorn_options
from tests.conftest import HOOKS_DIR, base_config


@pytest.fixture
def silent_database() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung PostgreSQL)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _postgres(port: int) -> Any:
    return create_engine(f"postgresql+psycopg://cds@127.0.0.1:{port}/cds")


def test_live_and_ready_answer_without_credentials() -> None:
    app = create_app(base_config(CDS_AUTH="enabled", AUTHENTICATOR=_RefuseAll()))
    client = app.test_client()
    assert client.get("/cds-services").status_code == 401
    live, ready = client.get("/health/live"), client.get("/health/ready")
    assert (live.status_code, live.get_json()) == (200, {"status": "live"})
    assert (ready.status_code, ready.get_json()["status"]) == (200, "ready")
    # The audit queue's counters are there for the operator: numbers, no record content.
    audit = ready.get_json()["audit"]
    assert audit["dropped"] == 0
    assert audit["queued"] == 0
    assert set(audit) >= {"written", "delayed", "dropped", "queued", "capacity", "database"}


class _RefuseAll:
    def authenticate(self, authorization_header: str | None, audience: str) -> Any:
        from cds_service.auth import AuthError

        raise AuthError("no")


def test_ready_is_503_with_a_reason_code_when_the_database_does_not_answer(
    silent_database: int,
) -> None:
    app = create_app(base_config())
    app.extensions[HEALTH_KEY] = DatabaseProbe(_postgres(silent_database), timeout=0.5)
    client = app.test_client()
    first, second = client.get("/health/ready"), client.get("/health/ready")
    for answer in (first, second):
        assert answer.status_code == 503
        body = answer.get_json()
        assert (body["status"], body["reason"]) == ("not-ready", "database-timeout")
    assert "127.0.0.1" not in first.get_data(as_text=True)
    assert client.get("/health/live").status_code == 200


def test_a_probe_still_waiting_is_not_joined_by_another(silent_database: int) -> None:
    probe = DatabaseProbe(_postgres(silent_database), timeout=0.2)
    assert probe.check() == "database-timeout"
    # The first probe still hangs: the next check says so without starting a second.
    started: list[Any] = []
    probe._probe = lambda future: started.append(future)  # type: ignore[method-assign]
    assert probe.check() == "database-timeout"
    assert started == []


def test_ready_says_unreachable_when_nothing_listens() -> None:
    probe = DatabaseProbe(_postgres(_closed_port()), timeout=5.0)
    assert probe.check() == "database-unreachable"


def test_no_policy_pack_is_not_ready() -> None:
    probe = DatabaseProbe(create_engine("sqlite://"), timeout=1.0)
    assert readiness_problem(0, probe) == "no-policy-packs"
    assert readiness_problem(2, probe) is None


def test_auth_on_without_a_public_base_url_does_not_start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SettingsError, match="CDS_PUBLIC_BASE_URL is not set"):
        create_app(
            base_config(
                CDS_AUTH="enabled",
                CDS_TRUSTED_ISSUERS=str(HOOKS_DIR / "trusted-issuers.example.json"),
            )
        )
    for name in ("CDS_PUBLIC_BASE_URL", "CDS_AUTH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CDS_TRUSTED_ISSUERS", str(HOOKS_DIR / "trusted-issuers.example.json"))
    monkeypatch.setenv("CDS_DATABASE_URL", "sqlite://")
    assert main(["serve"]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1
    assert "CDS_PUBLIC_BASE_URL is not set: set it to this service's external base URL" in error[0]


def test_forwarded_headers_are_believed_only_from_the_configured_proxies() -> None:
    default = gunicorn_options(load_settings({}), host="127.0.0.1", port=8080, workers=1)
    assert default["forwarded_allow_ips"] == ""  # gunicorn alone would trust loopback
    proxies = load_settings({"CDS_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16"})
    options = gunicorn_options(proxies, host="0.0.0.0", port=8080, workers=2)  # noqa: S104
    assert options["forwarded_allow_ips"] == "10.0.0.5,10.1.0.0/16"
    assert options["worker_class"] == "gevent"
    assert options["keepalive"] == load_settings({}).header_timeout
