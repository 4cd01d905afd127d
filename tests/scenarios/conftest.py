"""The client the scenario modules post to when the app's clock must be the order date."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.scenarios.harness import ORDER_NOW


@pytest.fixture
def order_date_client(make_app: Callable[..., Flask]) -> Iterator[FlaskClient]:
    """A test client of an app whose clock is pinned to the scenarios' order date."""
    app = make_app(CLOCK=lambda: ORDER_NOW)
    with app.test_client() as test_client:
        yield test_client
