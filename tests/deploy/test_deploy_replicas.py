"""Two replicas of the service (two real gunicorn servers on two ports) on one database, as
behind a load balancer: a signed token accepted by one replica is refused by the other when
it is sent again (its `jti` record is in the shared database, not in a process), on
PostgreSQL and on one SQLite file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from sandbox.service import ServiceProcess, start_service
from tests.answers import is_answered
from tests.auth.conftest import Signer
from tests.conftest import HOOKS_DIR, load_example
from tests.deploy.build import PUBLIC, SIGN, token, trusted_issuers_folder

CLIENT_TIMEOUT = 30.0


@dataclass
class Replicas:
    first: ServiceProcess
    second: ServiceProcess
    signer: Signer


def _database_url(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'shared' / 'audit.sqlite'}"
    url = os.environ.get("CDS_TEST_POSTGRES_URL", "")
    if not url:
        pytest.skip("CDS_TEST_POSTGRES_URL is not set (run under scripts/with-postgres.sh)")
    return url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def replicas(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    folder = tmp_path_factory.mktemp(f"replicas-{request.param}")
    database_url = _database_url(request.param, folder)
    issuers, signer = trusted_issuers_folder(folder / "config")
    env = {
        "CDS_HOOKS_DIR": str(HOOKS_DIR),
        "CDS_LOG_LEVEL": "WARNING",
        "CDS_AUTH": "enabled",
        "CDS_TRUSTED_ISSUERS": str(issuers),
        "CDS_PUBLIC_BASE_URL": PUBLIC,  # both behind one public URL, as behind a load balancer
    }

    def start(name: str) -> ServiceProcess:
        return start_service(
            fhir_servers=[],
            database_url=database_url,
            log_path=folder / f"{name}.log",
            workers=1,
            timeout_s=120,  # start-up is slow on a busy machine
            extra_env=env,
        )

    # The first creates the schema; the second then finds it (as a second replica would).
    first = start("first")
    try:
        second = start("second")
    except BaseException:
        first.stop()
        raise
    try:
        yield Replicas(first, second, signer)
    finally:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda s: s.stop(), (first, second)))


def call(service: ServiceProcess, bearer: str) -> int:
    response = requests.post(
        service.base_url + SIGN,
        json=load_example("order-sign-prefetch.json"),
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=CLIENT_TIMEOUT,
    )
    if response.status_code == 200:
        assert is_answered(response.json()), "a signed call got no answer"
    return response.status_code


def test_a_token_replayed_to_the_other_replica_is_refused(replicas: Replicas) -> None:
    bearer = token(replicas.signer)
    assert call(replicas.first, bearer) == 200
    assert call(replicas.second, bearer) == 401
    assert call(replicas.first, bearer) == 401


def test_each_replica_accepts_fresh_tokens_and_refuses_the_others_replays(
    replicas: Replicas,
) -> None:
    to_second = token(replicas.signer)
    assert call(replicas.second, to_second) == 200
    assert call(replicas.first, to_second) == 401
    assert call(replicas.first, token(replicas.signer)) == 200


def test_one_token_sent_to_both_replicas_at_once_is_accepted_once(replicas: Replicas) -> None:
    for _ in range(5):
        bearer = token(replicas.signer)
        with ThreadPoolExecutor(4) as pool:
            statuses = list(
                pool.map(
                    call,
                    [replicas.first, replicas.second, replicas.first, replicas.second],
                    [bearer] * 4,
                )
            )
        assert sorted(statuses) == [200, 401, 401, 401], statuses
