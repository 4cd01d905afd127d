"""The time one mapping may take, checked as it goes.

The caller (the service, for one CDS Hooks call) runs the mapping inside
`within(expired)`; the mapping calls `check()` between its stages and for each text and
resource it reads, and `check()` raises `OutOfTimeError` once `expired()` is true. Outside
`within`, `check()` does nothing (the mapping used as a library, `evaluate_file`).

A context variable, so that concurrent calls (threads, or greenlets under gevent) each
see their own limit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class OutOfTimeError(Exception):
    """The call's time ran out while its record was being mapped."""


_expired: ContextVar[Callable[[], bool] | None] = ContextVar("mapping_expired", default=None)


@contextmanager
def within(expired: Callable[[], bool]) -> Iterator[None]:
    """Run the block with `expired` as the limit of every `check()` in it."""
    token = _expired.set(expired)
    try:
        yield
    finally:
        _expired.reset(token)


def check() -> None:
    """Raise `OutOfTimeError` when the current limit has passed."""
    expired = _expired.get()
    if expired is not None and expired():
        raise OutOfTimeError
