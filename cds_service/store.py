"""Audit and feedback store (SQLAlchemy 2 Core): SQLite by default, PostgreSQL by URL.

What is stored, and what never is:
- per call: hookInstance, service id, hook, time, the patient REFERENCE
  (`Patient/<id>`), timings in ms; per order: its reference, the id and version of the
  policy pack that decided it, section and outcome (a card, and the feedback on it, is
  counted under the pack of its order); per card: uuid, order, indicator, CRD topic and the
  uuids of its suggestions; per order: the CRD coverage-assertion-ids;
- per feedback item: card uuid, outcome, outcomeTimestamp, accepted suggestion
  ids, the override reason Coding (system / code / display) and only WHETHER
  the clinician wrote a comment, never its text (free text can name a patient);
- JWT ids (issuer, jti, expiry) for replay protection.
Never stored: resource bodies, names, birth dates, free text, tokens.

Feedback on an unknown card uuid (or a card of another service) is not stored;
it is reported back in `FeedbackResult.unknown_cards` so the endpoint can log
a count. A repeated delivery (same card, outcome and outcomeTimestamp) is
stored once.

Schema versions live in `schema_version`; `create_schema()` creates a new
database or migrates an older one, and refuses a newer one.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = 1
EVALUATION_EXTENSION_KEY = "com.anakinra-cds.evaluation"
COVERAGE_INFORMATION_URL = (
    "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the audit store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

invocations = Table(
    "invocations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hook_instance", String(128), nullable=False, index=True),
    Column("service_id", String(128), nullable=False),
    Column("hook", String(64), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False, index=True),
    Column("patient_ref", String(256)),
    Column("timings_ms", JSON, nullable=False),
)

order_outcomes = Table(
    "order_outcomes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("invocation_id", Integer, ForeignKey("invocations.id"), nullable=False, index=True),
    Column("order_ref", String(256), nullable=False),
    Column("outcome", String(64), nullable=False),
    Column("policy_id", String(64)),
    Column("policy_version", String(64)),
    Column("section", String(16)),
)

cards = Table(
    "cards",
    metadata,
    Column("card_uuid", String(64), primary_key=True),
    Column("invocation_id", Integer, ForeignKey("invocations.id"), nullable=False, index=True),
    Column("service_id", String(128), nullable=False),
    Column("order_ref", String(256)),
    Column("indicator", String(16), nullable=False),
    Column("topic", String(64)),
    Column("suggestion_uuids", JSON, nullable=False),
)

card_criteria = Table(
    "card_criteria",
    metadata,
    Column("card_uuid", String(64), ForeignKey("cards.card_uuid"), primary_key=True),
    Column("criterion_id", String(32), primary_key=True),
    Column("status", String(16), nullable=False),
)
"""The criteria of a card's order that were not met or unknown when it was shown (what the
card asked about); `cds-service report` counts feedback per criterion from it. A new table:
`create_schema` adds it to an existing database."""

coverage_assertions = Table(
    "coverage_assertions",
    metadata,
    Column("assertion_id", String(64), primary_key=True),
    Column("invocation_id", Integer, ForeignKey("invocations.id"), nullable=False, index=True),
    Column("order_ref", String(256)),
    Column("coverage_ref", String(256)),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("service_id", String(128), nullable=False),
    Column("card_uuid", String(64), ForeignKey("cards.card_uuid"), nullable=False, index=True),
    Column("outcome", String(16), nullable=False),
    Column("outcome_timestamp", String(40), nullable=False),
    Column("accepted_suggestions", JSON, nullable=False),
    Column("override_system", String(256)),
    Column("override_code", String(128)),
    Column("override_display", String(256)),
    Column("has_comment", Boolean, nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    UniqueConstraint("card_uuid", "outcome", "outcome_timestamp", name="uq_feedback_delivery"),
)

jwt_ids = Table(
    "jwt_ids",
    metadata,
    Column("issuer", String(512), primary_key=True),
    Column("jti", String(256), primary_key=True),
    Column("expires_at", UTCDateTime(), nullable=False),
)

MIGRATIONS: dict[int, Callable[[Connection], None]] = {}
"""`MIGRATIONS[n]` brings a database from version n-1 to n (none yet)."""


# -- records ------------------------------------------------------------------------


@dataclass(frozen=True)
class CardRecord:
    uuid: str
    order_ref: str | None
    indicator: str
    topic: str | None
    suggestion_uuids: tuple[str, ...] = ()
    criteria: tuple[tuple[str, str], ...] = ()
    """(criterion id, status) of the card's order, for those not met or unknown."""


@dataclass(frozen=True)
class OrderOutcome:
    order_ref: str
    outcome: str
    policy_id: str | None = None
    policy_version: str | None = None
    section: str | None = None


@dataclass(frozen=True)
class CoverageAssertion:
    assertion_id: str
    order_ref: str | None
    coverage_ref: str | None


@dataclass(frozen=True)
class InvocationRecord:
    hook_instance: str
    service_id: str
    hook: str
    received_at: datetime
    patient_ref: str | None
    orders: tuple[OrderOutcome, ...] = ()
    cards: tuple[CardRecord, ...] = ()
    coverage_assertions: tuple[CoverageAssertion, ...] = ()
    timings_ms: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_response(
        cls,
        *,
        hook_instance: str,
        service_id: str,
        hook: str,
        received_at: datetime,
        patient_ref: str | None,
        response: Mapping[str, Any],
        timings_ms: Mapping[str, float] | None = None,
    ) -> InvocationRecord:
        """Pick the audit facts out of a rendered response body (nothing else of it)."""
        open_criteria = _open_criteria(response)
        card_records = []
        for card in response.get("cards", []):
            associated = card.get("extension", {}).get("davinci-crd.associated-resource", [])
            order_ref = associated[0].get("reference") if associated else None
            card_records.append(
                CardRecord(
                    uuid=str(card.get("uuid")),
                    order_ref=order_ref,
                    indicator=str(card.get("indicator", "info")),
                    topic=card.get("source", {}).get("topic", {}).get("code"),
                    suggestion_uuids=tuple(
                        str(s["uuid"]) for s in card.get("suggestions", []) if "uuid" in s
                    ),
                    criteria=open_criteria.get(order_ref or "", ()),
                )
            )
        orders = tuple(
            OrderOutcome(
                order_ref=str(item.get("order")),
                outcome=str(item.get("outcome")),
                policy_id=item.get("policy", {}).get("id"),
                policy_version=item.get("policy", {}).get("version"),
                section=item.get("section"),
            )
            for item in response.get("extension", {}).get(EVALUATION_EXTENSION_KEY, [])
        )
        assertions = []
        for action in response.get("systemActions", []):
            resource = action.get("resource", {})
            order_ref = (
                f"{resource.get('resourceType')}/{resource.get('id')}"
                if resource.get("id")
                else None
            )
            for ext in resource.get("extension", []):
                if ext.get("url") != COVERAGE_INFORMATION_URL:
                    continue
                parts = {p.get("url"): p for p in ext.get("extension", [])}
                assertion = parts.get("coverage-assertion-id", {}).get("valueString")
                coverage = parts.get("coverage", {}).get("valueReference", {}).get("reference")
                if assertion:
                    assertions.append(CoverageAssertion(str(assertion), order_ref, coverage))
        return cls(
            hook_instance=hook_instance,
            service_id=service_id,
            hook=hook,
            received_at=received_at,
            patient_ref=patient_ref,
            orders=orders,
            cards=tuple(card_records),
            coverage_assertions=tuple(assertions),
            timings_ms=dict(timings_ms or {}),
        )


def _open_criteria(response: Mapping[str, Any]) -> dict[str, tuple[tuple[str, str], ...]]:
    """Per order, its criteria that were not met or unknown (from the evaluation)."""
    found: dict[str, tuple[tuple[str, str], ...]] = {}
    for item in response.get("extension", {}).get(EVALUATION_EXTENSION_KEY, []):
        pairs = tuple(
            (str(c.get("id"))[:32], str(c.get("status")))
            for c in item.get("criteria", [])
            if c.get("status") in ("not-met", "unknown") and c.get("id")
        )
        found[str(item.get("order"))] = tuple(dict.fromkeys(pairs))
    return found


@dataclass(frozen=True)
class FeedbackResult:
    stored: int
    duplicates: int
    unknown_cards: tuple[str, ...]


@dataclass(frozen=True)
class DecisionRow:
    received_at: datetime
    hook_instance: str
    service_id: str
    hook: str
    order_ref: str
    outcome: str
    section: str | None
    cards: int
    policy_id: str | None = None
    """The policy pack that decided the order (None: the order was not evaluated)."""
    policy_version: str | None = None


INFO_INDICATOR = "info"
"""Feedback `overridden` on an info card is a dismissal, not an override: the card asked
for nothing to be done (CDS Hooks clients send `overridden` when a card is closed)."""


def is_override(indicator: str, outcome: str) -> bool:
    """A real override: the prescriber went against a warning or critical card."""
    return outcome == "overridden" and indicator != INFO_INDICATOR


@dataclass(frozen=True)
class OverrideRate:
    topic: str | None
    indicator: str
    shown: int
    accepted: int
    overridden: int
    """Real overrides only (warning and critical cards); see `is_override`."""
    policy_id: str | None = None
    """The pack that decided the card's order (None: no evaluated order)."""
    policy_version: str | None = None
    dismissed: int = 0
    """Info cards closed by the prescriber (feedback `overridden` on an info card)."""

    @property
    def override_rate(self) -> float | None:
        """Overridden of the answered warning / critical cards; None for info cards."""
        answered = self.accepted + self.overridden
        if self.indicator == INFO_INDICATOR or answered == 0:
            return None
        return self.overridden / answered


def _normal_timestamp(value: str) -> str:
    """outcomeTimestamp in one UTC form, so "Z" and "+00:00" deliveries match."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _now() -> datetime:
    return datetime.now(UTC)


_RateKey = tuple[str | None, str | None, str | None, str]
"""(policy id, policy version, CRD topic, indicator)."""


class _Watchdog:
    """Ends a database operation that outlives its time: one thread per process wakes at
    the earliest deadline and aborts the connection of each late operation (SQLite:
    `interrupt()`; PostgreSQL: the socket is shut down, so a server that stopped answering
    mid-statement cannot hold the caller; the connection is then discarded).

    Driver timeouts do not cover that case: libpq's `connect_timeout` bounds connecting
    only, and `statement_timeout` is enforced by the server, which is the part that hangs.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._late: dict[_Operation, float] = {}
        self._pid = 0

    def arm(self, operation: _Operation, deadline: float) -> None:
        with self._cond:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._late.clear()
                threading.Thread(target=self._run, name="db-watchdog", daemon=True).start()
            self._late[operation] = deadline
            self._cond.notify()

    def disarm(self, operation: _Operation) -> None:
        with self._cond:
            self._late.pop(operation, None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [op for op, at in self._late.items() if at <= now]
                for op in due:
                    del self._late[op]
                if not due:
                    nearest = min(self._late.values(), default=now + 60.0)
                    self._cond.wait(timeout=max(0.01, nearest - now))
                    continue
            for op in due:
                op.expire()


_WATCHDOG = _Watchdog()


class _Operation:
    """One bounded use of the database by one thread: which connection it holds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connection: Any = None
        self._expired = False

    def holds(self, dbapi_connection: Any) -> None:
        with self._lock:
            self._connection = dbapi_connection
            if not self._expired:
                return
        _abort(dbapi_connection)

    def releases(self, dbapi_connection: Any) -> None:
        """The connection went back to the pool: it is no longer this operation's."""
        with self._lock:
            if self._connection is dbapi_connection:
                self._connection = None

    def expire(self) -> None:
        with self._lock:
            self._expired = True
            connection = self._connection
        if connection is not None:
            _abort(connection)


def _abort(dbapi_connection: Any) -> None:
    """Make a blocked database call on `dbapi_connection` fail now (any thread)."""
    with contextlib.suppress(Exception):
        if hasattr(dbapi_connection, "interrupt"):  # sqlite3
            dbapi_connection.interrupt()
            return
        pgconn = getattr(dbapi_connection, "pgconn", None)  # psycopg
        if pgconn is not None:
            with socket.socket(fileno=os.dup(pgconn.socket)) as sock:
                sock.shutdown(socket.SHUT_RDWR)


def _sqlite_write_ahead(dbapi_connection: Any, _record: Any) -> None:
    """An SQLite file in write-ahead-log mode with `synchronous=NORMAL`: a write appends to
    the log and no longer waits for the disk on every commit (only at checkpoints), and
    readers (reports, readiness) do not block the audit writer nor it them. A committed
    record survives a crash of the process; a power loss may lose the last commits, never
    corrupt the file. (PostgreSQL is left as it is configured.)"""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _params(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
    """The parameters of one statement run for `rows`: a single row as a plain execute
    (SQLAlchemy's execute-many costs about half a millisecond more, and most batches hold
    one call), several as one execute-many."""
    return dict(rows[0]) if len(rows) == 1 else [dict(row) for row in rows]


class AuditStore:
    """The audit store. `url`: `sqlite:///path/to.db` (folder created) or
    `postgresql+psycopg://user@host:port/db`.

    Every use of the database is bounded: `connect_timeout` seconds to connect (and to
    wait for a pooled connection), `timeout` seconds for one operation (a transaction, or
    a read). PostgreSQL also gets them as libpq `connect_timeout` and a server-side
    `statement_timeout`; SQLite waits at most `timeout` seconds for a lock (its busy
    timeout). A late operation is aborted and raises a `SQLAlchemyError`."""

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], datetime] = _now,
        connect_timeout: float = 3.0,
        timeout: float = 5.0,
    ) -> None:
        parsed = make_url(url)
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            database = parsed.database
            connect_args: dict[str, Any] = {"timeout": timeout}
            if database and database != ":memory:":
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            else:
                kwargs = {"poolclass": StaticPool}
                connect_args["check_same_thread"] = False
            kwargs["connect_args"] = connect_args
        elif parsed.get_backend_name() == "postgresql":
            connect_args = {
                # libpq takes whole seconds and treats less than 2 as 2.
                "connect_timeout": max(2, math.ceil(connect_timeout)),
                "tcp_user_timeout": int(timeout * 1000),
            }
            if "options" not in parsed.query:
                connect_args["options"] = f"-c statement_timeout={int(timeout * 1000)}"
            kwargs = {"connect_args": connect_args, "pool_timeout": connect_timeout}
        self.engine: Engine = create_engine(parsed, future=True, **kwargs)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            event.listen(self.engine, "connect", _sqlite_write_ahead)
        self._clock = clock
        self._operation_seconds = connect_timeout + timeout
        self._current = threading.local()
        # insert=True: ahead of the dialect's own first-connect queries, which can hang too.
        event.listen(self.engine, "connect", self._connection_used, insert=True)
        event.listen(self.engine, "checkout", self._connection_used)
        event.listen(self.engine, "checkin", self._connection_returned)

    def _connection_used(self, dbapi_connection: Any, *_: Any) -> None:
        operation = getattr(self._current, "operation", None)
        if isinstance(operation, _Operation):
            operation.holds(dbapi_connection)

    def _connection_returned(self, dbapi_connection: Any, *_: Any) -> None:
        operation = getattr(self._current, "operation", None)
        if isinstance(operation, _Operation):
            operation.releases(dbapi_connection)

    @contextlib.contextmanager
    def _bounded(self) -> Iterator[None]:
        """Run the block as one operation that the watchdog ends when it is late."""
        operation = _Operation()
        self._current.operation = operation
        _WATCHDOG.arm(operation, time.monotonic() + self._operation_seconds)
        try:
            yield
        finally:
            _WATCHDOG.disarm(operation)
            self._current.operation = None

    @contextlib.contextmanager
    def _begin(self) -> Iterator[Connection]:
        with self._bounded(), self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _connect(self) -> Iterator[Connection]:
        with self._bounded(), self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    def release_connections(self) -> None:
        """Close the pooled connections (before worker processes are forked, so none is
        shared); an in-memory SQLite database keeps its one connection (it is the data)."""
        if not isinstance(self.engine.pool, StaticPool):
            self.engine.dispose()

    # -- schema ---------------------------------------------------------------------

    def create_schema(self) -> int:
        """Create the tables or migrate them; returns the schema version in use."""
        with self._begin() as conn:
            metadata.create_all(conn, tables=[schema_version])
            found = conn.execute(select(func.max(schema_version.c.version))).scalar()
            if found is None:
                metadata.create_all(conn)
                conn.execute(insert(schema_version).values(version=SCHEMA_VERSION))
                return SCHEMA_VERSION
            if found > SCHEMA_VERSION:
                raise RuntimeError(
                    f"audit database schema {found} is newer than this service ({SCHEMA_VERSION})"
                )
            for version in range(found + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](conn)
            if found < SCHEMA_VERSION:
                conn.execute(update(schema_version).values(version=SCHEMA_VERSION))
            metadata.create_all(conn)
            return SCHEMA_VERSION

    def drop_schema(self) -> None:
        """Drop every table (tests and throwaway databases only)."""
        with self._bounded():
            metadata.drop_all(self.engine)

    # -- writes ---------------------------------------------------------------------

    def _insert_ignore(
        self, conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]
    ) -> int:
        """Insert rows, skipping those whose key exists (or came earlier in `rows`); returns
        how many were new.

        One INSERT ... ON CONFLICT DO NOTHING RETURNING run for all the rows (executemany:
        the statement is built and compiled once; rowcount is not reliable for it on every
        driver)."""
        if not rows:
            return 0
        dialect = conn.dialect.name
        if dialect == "postgresql":
            make: Any = postgresql.insert
        elif dialect == "sqlite":
            make = sqlite.insert
        else:
            raise RuntimeError(f"unsupported database: {dialect}")
        stmt = make(table).on_conflict_do_nothing().returning(*table.primary_key.columns)
        return len(conn.execute(stmt, _params(rows)).all())

    def record_invocation(self, record: InvocationRecord) -> int:
        """Store one call; returns its row id."""
        return self.record_invocations([record])[0]

    def record_invocations(self, records: Sequence[InvocationRecord]) -> list[int]:
        """Store several calls in one transaction (all or none); returns their row ids.
        Each table gets one statement for all the calls (a worker under load writes its
        queued calls in batches)."""
        if not records:
            return []
        with self._begin() as conn:
            rows = [
                {
                    "hook_instance": r.hook_instance,
                    "service_id": r.service_id,
                    "hook": r.hook,
                    "received_at": r.received_at,
                    "patient_ref": r.patient_ref,
                    "timings_ms": {k: round(float(v), 3) for k, v in r.timings_ms.items()},
                }
                for r in records
            ]
            stmt = insert(invocations).returning(invocations.c.id, sort_by_parameter_order=True)
            ids = [int(i) for i in conn.execute(stmt, _params(rows)).scalars().all()]
            pairs = list(zip(ids, records, strict=True))
            outcomes = [
                {
                    "invocation_id": invocation_id,
                    "order_ref": o.order_ref,
                    "outcome": o.outcome,
                    "policy_id": o.policy_id,
                    "policy_version": o.policy_version,
                    "section": o.section,
                }
                for invocation_id, record in pairs
                for o in record.orders
            ]
            if outcomes:
                conn.execute(insert(order_outcomes), outcomes)
            self._insert_ignore(
                conn,
                cards,
                [
                    {
                        "card_uuid": c.uuid,
                        "invocation_id": invocation_id,
                        "service_id": record.service_id,
                        "order_ref": c.order_ref,
                        "indicator": c.indicator,
                        "topic": c.topic,
                        "suggestion_uuids": list(c.suggestion_uuids),
                    }
                    for invocation_id, record in pairs
                    for c in record.cards
                ],
            )
            self._insert_ignore(
                conn,
                card_criteria,
                [
                    {"card_uuid": c.uuid, "criterion_id": criterion, "status": status}
                    for record in records
                    for c in record.cards
                    for criterion, status in c.criteria
                ],
            )
            self._insert_ignore(
                conn,
                coverage_assertions,
                [
                    {
                        "assertion_id": a.assertion_id,
                        "invocation_id": invocation_id,
                        "order_ref": a.order_ref,
                        "coverage_ref": a.coverage_ref,
                    }
                    for invocation_id, record in pairs
                    for a in record.coverage_assertions
                ],
            )
            return ids

    def record_feedback(
        self, service_id: str, items: Sequence[Mapping[str, Any]]
    ) -> FeedbackResult:
        """Store validated CDS Hooks feedback items (see the module docstring)."""
        stored = duplicates = 0
        unknown: list[str] = []
        now = self._clock()
        with self._begin() as conn:
            for item in items:
                card_uuid = str(item["card"])
                known = conn.execute(
                    select(cards.c.card_uuid).where(
                        cards.c.card_uuid == card_uuid, cards.c.service_id == service_id
                    )
                ).first()
                if known is None:
                    unknown.append(card_uuid)
                    continue
                reason = item.get("overrideReason") or {}
                coding = reason.get("reason") or {}
                row = {
                    "service_id": service_id,
                    "card_uuid": card_uuid,
                    "outcome": str(item["outcome"]),
                    "outcome_timestamp": _normal_timestamp(str(item["outcomeTimestamp"])),
                    "accepted_suggestions": [
                        str(s["id"]) for s in item.get("acceptedSuggestions", []) if "id" in s
                    ],
                    "override_system": coding.get("system"),
                    "override_code": coding.get("code"),
                    "override_display": coding.get("display"),
                    "has_comment": bool(reason.get("userComment")),
                    "received_at": now,
                }
                if self._insert_ignore(conn, feedback, [row]):
                    stored += 1
                else:
                    duplicates += 1
        return FeedbackResult(stored, duplicates, tuple(unknown))

    def remember_jti(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        """Remember a JWT id. False when the same (issuer, jti) was seen and has
        not expired yet (a replay); True otherwise. Expired entries are purged."""
        now = self._clock()
        with self._begin() as conn:
            conn.execute(jwt_ids.delete().where(jwt_ids.c.expires_at < now))
            row = {"issuer": issuer, "jti": jti, "expires_at": expires_at}
            if self._insert_ignore(conn, jwt_ids, [row]):
                return True
            refreshed = conn.execute(
                update(jwt_ids)
                .where(jwt_ids.c.issuer == issuer, jwt_ids.c.jti == jti)
                .where(jwt_ids.c.expires_at < now)
                .values(expires_at=expires_at)
            ).rowcount
            return bool(refreshed)

    # -- reads ----------------------------------------------------------------------

    def recent_decisions(self, limit: int = 20) -> list[DecisionRow]:
        card_count = (
            select(func.count())
            .select_from(cards)
            .where(
                cards.c.invocation_id == order_outcomes.c.invocation_id,
                cards.c.order_ref == order_outcomes.c.order_ref,
            )
            .scalar_subquery()
        )
        stmt = (
            select(
                invocations.c.received_at,
                invocations.c.hook_instance,
                invocations.c.service_id,
                invocations.c.hook,
                order_outcomes.c.order_ref,
                order_outcomes.c.outcome,
                order_outcomes.c.section,
                card_count.label("cards"),
                order_outcomes.c.policy_id,
                order_outcomes.c.policy_version,
            )
            .join(order_outcomes, order_outcomes.c.invocation_id == invocations.c.id)
            .order_by(invocations.c.received_at.desc(), order_outcomes.c.id.desc())
            .limit(limit)
        )
        with self._connect() as conn:
            return [DecisionRow(**row._asdict()) for row in conn.execute(stmt)]

    def override_rates(self) -> list[OverrideRate]:
        """Cards shown, accepted and overridden, per policy pack (id and version of the
        pack that decided the card's order), CRD topic and indicator.

        A card counts once per outcome, however many times its feedback was sent."""
        pack = (
            select(
                order_outcomes.c.invocation_id,
                order_outcomes.c.order_ref,
                func.max(order_outcomes.c.policy_id).label("policy_id"),
                func.max(order_outcomes.c.policy_version).label("policy_version"),
            )
            .group_by(order_outcomes.c.invocation_id, order_outcomes.c.order_ref)
            .subquery()
        )
        carded = cards.outerjoin(
            pack,
            (pack.c.invocation_id == cards.c.invocation_id)
            & (pack.c.order_ref == cards.c.order_ref),
        )
        keys = (pack.c.policy_id, pack.c.policy_version, cards.c.topic, cards.c.indicator)
        with self._connect() as conn:
            shown: dict[_RateKey, int] = {
                (policy, version, topic, indicator): count
                for policy, version, topic, indicator, count in conn.execute(
                    select(*keys, func.count()).select_from(carded).group_by(*keys)
                )
            }
            answered = select(feedback.c.card_uuid, feedback.c.outcome).distinct().subquery()
            counts: dict[_RateKey, dict[str, int]] = {}
            for policy, version, topic, indicator, outcome, count in conn.execute(
                select(*keys, answered.c.outcome, func.count())
                .select_from(carded.join(answered, answered.c.card_uuid == cards.c.card_uuid))
                .group_by(*keys, answered.c.outcome)
            ):
                counts.setdefault((policy, version, topic, indicator), {})[outcome] = count
        return [
            OverrideRate(
                topic=key[2],
                indicator=key[3],
                shown=total,
                accepted=counts.get(key, {}).get("accepted", 0),
                overridden=counts.get(key, {}).get("overridden", 0)
                if is_override(key[3], "overridden")
                else 0,
                policy_id=key[0],
                policy_version=key[1],
                dismissed=0
                if is_override(key[3], "overridden")
                else counts.get(key, {}).get("overridden", 0),
            )
            for key, total in sorted(
                shown.items(),
                key=lambda kv: (kv[0][0] or "", kv[0][1] or "", kv[0][2] or "", kv[0][3]),
            )
        ]

    def override_reasons(self) -> list[tuple[str | None, str | None, int]]:
        """(code, display, count) of override reasons, most used first."""
        stmt = (
            select(feedback.c.override_code, feedback.c.override_display, func.count())
            .select_from(feedback.join(cards, cards.c.card_uuid == feedback.c.card_uuid))
            .where(feedback.c.outcome == "overridden", cards.c.indicator != INFO_INDICATOR)
            .group_by(feedback.c.override_code, feedback.c.override_display)
            .order_by(func.count().desc())
        )
        with self._connect() as conn:
            return [(code, display, int(count)) for code, display, count in conn.execute(stmt)]


def _pack_label(policy_id: str | None, version: str | None) -> str:
    """ "policy NH.PHAR.244 version 2025.04-1", or "policy -" when no pack decided."""
    if not policy_id:
        return "policy -"
    return f"policy {policy_id}" + (f" version {version}" if version else "")


def format_audit_report(store: AuditStore, limit: int = 20) -> str:
    """A plain-text read-out for operators: recent decisions and override rates."""
    lines = [f"Recent decisions (latest {limit})"]
    decisions = store.recent_decisions(limit)
    if not decisions:
        lines.append("  none recorded")
    for d in decisions:
        lines.append(
            f"  {d.received_at.isoformat(timespec='seconds')}  {d.service_id}  {d.hook}  "
            f"{d.order_ref}  {d.outcome}"
            + (f" ({d.section})" if d.section else "")
            + f"  {_pack_label(d.policy_id, d.policy_version)}"
            + f"  cards={d.cards}  hookInstance={d.hook_instance}"
        )
    lines += ["", "Card feedback by policy pack and topic (closing an info card is no override)"]
    rates = store.override_rates()
    if not rates:
        lines.append("  no cards recorded")
    for r in rates:
        rate = "-" if r.override_rate is None else f"{r.override_rate:.0%}"
        answers = (
            f"dismissed={r.dismissed}"
            if r.indicator == INFO_INDICATOR
            else f"overridden={r.overridden} override-rate={rate}"
        )
        lines.append(
            f"  {_pack_label(r.policy_id, r.policy_version)}  "
            f"{r.topic or '-'} / {r.indicator}: shown={r.shown} accepted={r.accepted} {answers}"
        )
    reasons = store.override_reasons()
    if reasons:
        lines += ["", "Override reasons"]
        lines += [
            f"  {count}  {code or '-'}  {display or ''}".rstrip()
            for code, display, count in reasons
        ]
    return "\n".join(lines)


__all__ = [
    "AuditStore",
    "CardRecord",
    "CoverageAssertion",
    "DecisionRow",
    "FeedbackResult",
    "InvocationRecord",
    "OrderOutcome",
    "OverrideRate",
    "format_audit_report",
]
