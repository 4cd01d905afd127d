"""Audit store against SQLite (always) and PostgreSQL (when CDS_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, inspect, select, update

from cds_service.cards import render_response
from cds_service.store import (
    AuditStore,
    InvocationRecord,
    feedback,
    format_audit_report,
    metadata,
    schema_version,
)
from tests.cards.builders import NOW, SETTINGS, uuid_counter
from tests.cards.cases import CASES
from tests.store.conftest import FixedClock


def _record(store: AuditStore, case: str, hook_instance: str = "hi-1") -> InvocationRecord:
    hook, evaluations = CASES[case]()
    uuid_factory = uuid_counter() if hook_instance == "hi-1" else lambda: str(uuid.uuid4())
    response = render_response(
        hook, evaluations, settings=SETTINGS, uuid_factory=uuid_factory, now=NOW
    )
    record = InvocationRecord.from_response(
        hook_instance=hook_instance,
        service_id="anakinra-order-sign",
        hook=hook,
        received_at=NOW,
        patient_ref="Patient/p1",
        response=response,
        timings_ms={"total": 12.5},
    )
    store.record_invocation(record)
    return record


def test_invocation_keeps_outcomes_cards_and_assertions(store: AuditStore) -> None:
    record = _record(store, "dose_over_ra")
    assert [o.outcome for o in record.orders] == ["criteria-not-met"]
    assert [(c.indicator, c.topic) for c in record.cards] == [("warning", "limits")]
    assert len(record.cards[0].suggestion_uuids) == 1
    assert len(record.coverage_assertions) == 1
    (row,) = store.recent_decisions(5)
    assert (row.order_ref, row.outcome, row.section, row.cards) == (
        "MedicationRequest/kineret-1",
        "criteria-not-met",
        "I.A",
        1,
    )
    assert row.received_at == NOW


def test_nothing_but_references_is_stored(store: AuditStore) -> None:
    _record(store, "documentation_needed")
    with store.engine.connect() as conn:
        dumped = " ".join(
            str(row) for table in metadata.sorted_tables for row in conn.execute(select(table))
        )
    assert "Patient/p1" in dumped
    for secret in ("1970-05-01", "dosageInstruction", "methotrexate", "CDAI"):
        assert secret not in dumped


def test_feedback_round_trip_duplicate_and_unknown(store: AuditStore) -> None:
    record = _record(store, "dose_over_ra")
    card = record.cards[0]
    accepted = {
        "card": card.uuid,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card.suggestion_uuids[0]}],
        "outcomeTimestamp": "2026-03-02T12:05:00Z",
    }
    first = store.record_feedback("anakinra-order-sign", [accepted])
    again = store.record_feedback(
        "anakinra-order-sign", [{**accepted, "outcomeTimestamp": "2026-03-02T12:05:00+00:00"}]
    )
    unknown = store.record_feedback(
        "anakinra-order-sign",
        [{**accepted, "card": "11111111-2222-4333-8444-555555555555"}],
    )
    other_service = store.record_feedback("other-service", [accepted])
    assert (first.stored, first.duplicates, first.unknown_cards) == (1, 0, ())
    assert (again.stored, again.duplicates) == (0, 1)
    assert unknown.unknown_cards == ("11111111-2222-4333-8444-555555555555",)
    assert other_service.unknown_cards == (card.uuid,)
    with store.engine.connect() as conn:
        assert len(conn.execute(select(feedback)).all()) == 1


def test_override_rates_and_report(store: AuditStore) -> None:
    record = _record(store, "combination_draft")
    _record(store, "documentation_needed", hook_instance="hi-2")
    critical = record.cards[0]
    overridden = {
        "card": critical.uuid,
        "outcome": "overridden",
        "overrideReason": {
            "reason": {
                "system": SETTINGS.override_reason_system,
                "code": "switching-therapy",
                "display": "The other therapy is being stopped (switching to Kineret)",
            },
            "userComment": "Stopping adalimumab today",
        },
        "outcomeTimestamp": "2026-03-02T12:06:00Z",
    }
    store.record_feedback("anakinra-order-sign", [overridden, overridden])
    rates = {(r.topic, r.indicator): r for r in store.override_rates()}
    combo = rates[("contraindication", "critical")]
    assert (combo.shown, combo.accepted, combo.overridden, combo.override_rate) == (1, 0, 1, 1.0)
    assert rates[("appropriate-use", "warning")].override_rate is None  # documentation card
    with store.engine.connect() as conn:
        (row,) = conn.execute(select(feedback)).all()
    assert row.has_comment is True
    assert "Stopping adalimumab" not in str(row)
    report = format_audit_report(store, 10)
    assert (
        "contraindication / critical: shown=1 accepted=0 overridden=1 override-rate=100%" in report
    )
    assert "switching-therapy" in report
    assert "hi-2" in report


def test_jwt_id_replay(store: AuditStore, clock: FixedClock) -> None:
    expires = clock.now + timedelta(minutes=5)
    assert store.remember_jti("https://ehr.example.org", "jti-1", expires) is True
    assert store.remember_jti("https://ehr.example.org", "jti-1", expires) is False
    assert store.remember_jti("https://other.example.org", "jti-1", expires) is True
    clock.now = clock.now + timedelta(minutes=10)
    assert store.remember_jti("https://ehr.example.org", "jti-1", clock.now + timedelta(minutes=5))


def test_schema_is_versioned_and_newer_database_refused(store: AuditStore) -> None:
    assert store.create_schema() == 1  # a second start finds the schema and keeps it
    assert "feedback" in inspect(store.engine).get_table_names()
    with store.engine.begin() as conn:
        conn.execute(update(schema_version).values(version=99))
    with pytest.raises(RuntimeError, match="newer"):
        store.create_schema()


def test_sqlite_file_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "audit.db"
    audit = AuditStore(f"sqlite:///{path}")
    audit.create_schema()
    assert path.exists()
    with audit.engine.begin() as conn:
        conn.execute(insert(schema_version).values(version=1))
    audit.dispose()


def test_naive_datetimes_are_refused(store: AuditStore) -> None:
    with pytest.raises(Exception, match="naive"):
        store.remember_jti("iss", "j", datetime(2026, 1, 1))


def test_many_rows_of_one_call_are_all_kept_and_repeats_once(store: AuditStore) -> None:
    from sqlalchemy import func

    from cds_service.store import (
        CardRecord,
        CoverageAssertion,
        card_criteria,
        cards,
        coverage_assertions,
    )

    def call(instance: str, shown: list[tuple[str, int]]) -> InvocationRecord:
        return InvocationRecord(
            hook_instance=instance,
            service_id="anakinra-order-sign",
            hook="order-sign",
            received_at=NOW,
            patient_ref="Patient/p1",
            cards=tuple(
                CardRecord(
                    uuid=u,
                    order_ref="MedicationRequest/1",
                    indicator="warning",
                    topic="documentation",
                    suggestion_uuids=("s-1",),
                    criteria=tuple((f"C{i}", "unknown") for i in range(criteria)),
                )
                for u, criteria in shown
            ),
            coverage_assertions=(CoverageAssertion("a-1", "MedicationRequest/1", None),),
        )

    # 1,201 criteria of one card: more than one statement's worth of rows.
    first = call("hi-1", [("card-1", 3), ("card-2", 3)])
    second = call("hi-2", [("card-2", 3), ("card-3", 1201), ("card-3", 1201)])
    store.record_invocations([first, second])
    with store.engine.connect() as conn:

        def count(table: Any) -> int:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

        assert count(cards) == 3  # card-2 and the repeated card-3 once each
        assert count(coverage_assertions) == 1
        assert count(card_criteria) == 3 + 3 + 1201
        (invocation,) = conn.execute(
            select(cards.c.invocation_id).where(cards.c.card_uuid == "card-3")
        ).one()
        (second_id,) = conn.execute(
            select(cards.c.invocation_id).where(cards.c.card_uuid == "card-2")
        ).one()
        assert invocation != second_id  # card-2 stays with the call that first showed it
