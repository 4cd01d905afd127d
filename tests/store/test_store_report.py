"""`cds-service report` and the counts under it: per card type and per criterion, over a
period, only real overrides (a closed info card is a dismissal), as a table and as CSV."""

from __future__ import annotations

import csv
import dataclasses
import io
import uuid
from datetime import datetime, timedelta

import pytest

from cds_service.cards import render_response
from cds_service.cli import main
from cds_service.crd.coverage import demo_call
from cds_service.reports import build_report, format_table, to_csv
from cds_service.store import AuditStore, InvocationRecord, format_audit_report
from tests.cards.builders import NOW, SETTINGS
from tests.cards.cases import CASES

DAY = NOW.date()


def shown(
    store: AuditStore, case: str, received_at: datetime = NOW, *, coverage_info: bool = True
) -> InvocationRecord:
    """The call of `case` rendered and audited. With coverage information switched off, an
    order that meets the criteria gets its (info) criteria-met card back."""
    hook, evaluations = CASES[case]()
    response = render_response(
        hook,
        evaluations,
        settings=SETTINGS,
        uuid_factory=lambda: str(uuid.uuid4()),
        now=NOW,
        coverage=dataclasses.replace(demo_call(), enabled=coverage_info),
    )
    record = InvocationRecord.from_response(
        hook_instance=str(uuid.uuid4()),
        service_id="prior-auth-order-sign",
        hook=hook,
        received_at=received_at,
        patient_ref="Patient/p1",
        response=response,
    )
    store.record_invocation(record)
    return record


def answer(store: AuditStore, record: InvocationRecord, outcome: str, minute: int = 1) -> None:
    item = {
        "card": record.cards[0].uuid,
        "outcome": outcome,
        "outcomeTimestamp": f"2026-03-02T16:{minute:02d}:00Z",
    }
    # Sent twice: counted once.
    store.record_feedback("prior-auth-order-sign", [item, item])


@pytest.fixture
def answered(store: AuditStore) -> AuditStore:
    info = shown(store, "criteria_met", coverage_info=False)
    answer(store, info, "overridden")  # closing an info card: a dismissal
    docs = shown(store, "documentation_needed")
    answer(store, docs, "overridden")
    docs_accepted = shown(store, "documentation_needed")
    answer(store, docs_accepted, "accepted")
    shown(store, "documentation_needed")  # not answered
    combination = shown(store, "combination_draft", NOW - timedelta(days=1))
    answer(store, combination, "overridden")
    shown(store, "combination_draft", NOW - timedelta(days=40))  # before the period
    return store


def test_rates_per_card_type_count_only_real_overrides(answered: AuditStore) -> None:
    report = build_report(answered, DAY - timedelta(days=29), DAY)
    rows = {row.group: row for row in report.by_card_type}
    info = rows["guideline / info"]
    assert (info.shown, info.accepted, info.overridden, info.dismissed) == (1, 0, 0, 1)
    assert info.override_rate is None
    docs = rows["appropriate-use / warning"]
    assert (docs.shown, docs.answered, docs.accepted, docs.overridden) == (3, 2, 1, 1)
    assert docs.override_rate == 0.5
    assert docs.acceptance_rate == 0.5
    combination = rows["contraindication / critical"]
    assert (combination.shown, combination.overridden) == (1, 1)  # the older one is outside
    assert report.cards_shown == 5
    assert report.decisions == 5


def test_rates_per_criterion(answered: AuditStore) -> None:
    report = build_report(answered, DAY - timedelta(days=29), DAY)
    rows = {row.group: row for row in report.by_criterion}
    assert set(rows) == {"I.A.4", "I.A.6", "I.A.7", "III.B"}
    assert (rows["I.A.4"].shown, rows["I.A.4"].accepted, rows["I.A.4"].overridden) == (3, 1, 1)
    assert (rows["III.B"].shown, rows["III.B"].overridden) == (1, 1)
    assert all(row.policy_id == "NH.PHAR.244" for row in rows.values())


def test_overrides_over_time_and_the_period(answered: AuditStore) -> None:
    report = build_report(answered, DAY - timedelta(days=1), DAY)
    assert [d.day for d in report.days] == [DAY - timedelta(days=1), DAY]
    assert [d.overrides for d in report.days] == [1, 1]  # the info dismissal is not one
    assert report.days[1].outcomes == {"criteria-met": 1, "documentation-needed": 3}
    older = build_report(answered, DAY - timedelta(days=45), DAY - timedelta(days=35))
    assert older.cards_shown == 1
    assert sum(d.overrides for d in older.days) == 0


def test_table_and_csv(answered: AuditStore) -> None:
    report = build_report(answered, DAY - timedelta(days=29), DAY)
    table = format_table(report)
    assert "appropriate-use / warning" in table
    assert "By criterion" in table
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    by = {(r["section"], r["group"]): r for r in rows}
    assert by[("card-type", "guideline / info")]["dismissed"] == "1"
    assert by[("card-type", "guideline / info")]["override_rate"] == ""
    assert by[("criterion", "III.B")]["override_rate"] == "1.0000"
    for text in (table, to_csv(report)):
        assert "Patient/" not in text
        assert "MedicationRequest/" not in text


def test_audit_report_does_not_count_a_closed_info_card(answered: AuditStore) -> None:
    text = format_audit_report(answered, 5)
    assert "guideline / info: shown=1 accepted=0 dismissed=1" in text
    assert "contraindication / critical: shown=2 accepted=0 overridden=1" in text


def test_report_command(
    answered: AuditStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CDS_DATABASE_URL", answered.engine.url.render_as_string(False))
    period = ["--since", (DAY - timedelta(days=1)).isoformat(), "--until", DAY.isoformat()]
    assert main(["report", *period]) == 0
    out = capsys.readouterr().out
    assert f"from {DAY - timedelta(days=1)} to {DAY}" in out
    assert "contraindication / critical" in out
    assert main(["report", *period, "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["section"] for r in rows} == {"card-type", "criterion"}
    assert main(["report", "--since", "2026-03-05", "--until", "2026-03-01"]) == 2
    assert main(["report", "--since", "yesterday"]) == 2
