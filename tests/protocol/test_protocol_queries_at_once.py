"""Without prefetch, every FHIR query of a call runs at the same time by default, so the
call waits about as long as its slowest query, not the sum of them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

from cds_service.prefetch import FetchError
from tests.conftest import load_example

SIGN = "/cds-services/prior-auth-order-sign"


class Recording:
    """Answers every query with an empty search result, counting them."""

    def __init__(self) -> None:
        self.urls: list[str] = []
        self.lock = threading.Lock()

    def get(self, url: str, headers: Any, timeout: Any, deadline: float, max_bytes: int) -> Any:
        with self.lock:
            self.urls.append(url)
        return {"resourceType": "Bundle", "type": "searchset", "entry": []}

    def close(self) -> None:
        pass


class AllAtOnce(Recording):
    """Answers a query only once `parties` queries are waiting at the same time."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=10)

    def get(self, url: str, headers: Any, timeout: Any, deadline: float, max_bytes: int) -> Any:
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError as exc:
            raise FetchError("timeout", "the queries did not run at the same time") from exc
        return super().get(url, headers, timeout, deadline, max_bytes)


def _call(make_app: Callable[..., Flask], client: Recording, **settings: Any) -> dict[str, Any]:
    body = load_example("order-sign-fhir-server.json")
    body.pop("prefetch", None)
    app = make_app(FHIR_CLIENT_FACTORY=lambda: client, CDS_REQUEST_DEADLINE=30, **settings)
    response = app.test_client().post(SIGN, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer: dict[str, Any] = response.get_json()
    return answer


def test_every_query_of_a_call_runs_at_the_same_time(make_app: Callable[..., Flask]) -> None:
    counting = Recording()
    _call(make_app, counting)
    queries = len(counting.urls)
    assert queries >= 10  # one per prefetch key the hook's context fills

    together = AllAtOnce(queries)
    _call(make_app, together)
    assert not together.barrier.broken
    assert sorted(together.urls) == sorted(counting.urls)


def test_a_lower_limit_is_kept(make_app: Callable[..., Flask]) -> None:
    counting = Recording()
    _call(make_app, counting)
    together = AllAtOnce(len(counting.urls))
    together.barrier = threading.Barrier(len(counting.urls), timeout=1)
    _call(make_app, together, CDS_MAX_CONCURRENT_QUERIES=4)
    assert together.barrier.broken  # never more than 4 at once: the rest could not join
