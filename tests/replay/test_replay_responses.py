"""Byte-identical answers: every request of the replay corpus (`corpus.py`: the scenario
suites, the hook examples, the CRD conformance cases, the public sample charts, the
benchmark's charts, the card goldens) is answered with exactly the bytes recorded for it.

A change meant to make the service faster must leave every answer as it was. A change meant
to change answers records them again and says so in its commit (review the diff of
`tests/replay/recorded/`):

    python -m tests.replay.record            # or UPDATE_REPLAY=1 pytest tests/replay

One app answers the whole corpus (about 15 s); its clock and uuid counter are reset for
every request, so no entry depends on another.
"""

from __future__ import annotations

import difflib
import json
import os

import orjson
import pytest

from cds_service import body_parts
from tests.replay.corpus import (
    SUITES,
    Replayer,
    answers,
    digest,
    read_record,
    read_responses,
    recorded_file,
    write_record,
)

UPDATE = os.environ.get("UPDATE_REPLAY") == "1"
RECORD_COMMAND = "python -m tests.replay.record"


@pytest.fixture(scope="module")
def replayer() -> Replayer:
    return Replayer()


def _pretty(text: str) -> list[str]:
    try:
        return json.dumps(json.loads(text), indent=1, sort_keys=True).splitlines()
    except ValueError:
        return text.splitlines()


def _what_changed(suite: str, name: str, now: bytes) -> str:
    """A unified diff of the recorded response and this one (first 60 lines)."""
    before = read_responses(suite).get(name)
    if before is None:
        return "(the recorded response is not stored)"
    lines = difflib.unified_diff(
        _pretty(before), _pretty(now.decode("utf-8")), "recorded", "now", lineterm="", n=2
    )
    return "\n".join(list(lines)[:60])


@pytest.mark.parametrize("suite", SUITES)
def test_every_answer_is_the_recorded_one(suite: str, replayer: Replayer) -> None:
    found = answers(suite, replayer)
    assert found, f"{suite}: the corpus has no entries"
    if UPDATE or not recorded_file(suite).is_file():
        write_record(suite, found)
        if not UPDATE:
            pytest.fail(f"{suite}: nothing was recorded yet; recorded now (commit it)")
    recorded = read_record(suite)
    missing = sorted(set(recorded) - set(found))
    new = sorted(set(found) - set(recorded))
    changed = [
        name
        for name in sorted(set(found) & set(recorded))
        if recorded[name] != {"status": found[name][0], "sha256": digest(found[name][1])}
    ]
    if missing or new or changed:
        report = [
            f"{suite}: {len(changed)} answer(s) changed, {len(new)} new request(s), "
            f"{len(missing)} request(s) gone. If that is intended, record again with "
            f"`{RECORD_COMMAND} {suite}` and say why in the commit.",
            *(f"new: {name}" for name in new[:10]),
            *(f"gone: {name}" for name in missing[:10]),
        ]
        for name in changed[:3]:
            status, data = found[name]
            report.append(f"--- {name}: status {recorded[name]['status']} -> {status}")
            report.append(_what_changed(suite, name, data))
        if len(changed) > 3:
            report.append(f"... and {len(changed) - 3} more: {', '.join(changed[3:13])}")
        pytest.fail("\n".join(report))


def test_a_changed_answer_is_caught(replayer: Replayer) -> None:
    """The comparison sees a one-byte change (so the guard can fail)."""
    found = answers("examples", replayer)
    name, (status, data) = next(iter(sorted(found.items())))
    recorded = read_record("examples")[name]
    assert recorded == {"status": status, "sha256": digest(data)}
    assert recorded["sha256"] != digest(data + b" ")


@pytest.mark.parametrize("suite", SUITES)
def test_every_answer_is_the_same_when_asked_again(suite: str, replayer: Replayer) -> None:
    """A chart sent again (order-select then order-sign, a retry) is read from the memos its
    first call filled (its record, its resources' keys and readings): each request asked
    twice in a row of the same worker is answered with the same bytes both times."""
    first = answers(suite, replayer)
    again = answers(suite, replayer)
    assert sorted(again) == sorted(first)
    differ = [name for name in sorted(first) if again[name] != first[name]]
    assert differ == [], f"{suite}: answered differently the second time: {differ[:10]}"


def test_no_call_changes_a_prefetch_value_it_shares(replayer: Replayer) -> None:
    """A prefetch value sent before is shared by every call that sends the same text
    (`cds_service.body_parts`): once each request has been answered, every value kept
    still equals what its text reads as (no call changed one)."""
    checked = 0
    for suite in SUITES:
        answers(suite, replayer)
        for (_, text), value in body_parts._SENT_BEFORE.items():
            assert value == orjson.loads(text), f"{suite}: a kept prefetch value was changed"
            checked += 1
    assert checked > 100
