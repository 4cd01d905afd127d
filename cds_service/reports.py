"""The operator's view: how prescribers answered the cards over a period, from the audit
store. `cds-service report` prints it (a table, or CSV) and `GET /reports/overrides` serves it
as a small HTML page with a plot (inline SVG made here; nothing loaded from elsewhere).

Only counts leave the store: card types, indicators, criterion ids, policy ids, days. Never
a patient or order reference, a hookInstance or free text.

Counting rules: a card counts once per outcome however often its feedback was sent. Feedback
`overridden` on an info card is a dismissal, never an override (`store.is_override`). The
override rate is overridden / (accepted + overridden) of warning and critical cards; the
acceptance rate is accepted / answered (cards with any feedback). Per criterion, a card counts
under each criterion of its order that was not met or unknown when it was shown.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from html import escape
from typing import Final

from sqlalchemy import and_, func, select

from cds_service.store import (
    INFO_INDICATOR,
    AuditStore,
    card_criteria,
    cards,
    feedback,
    invocations,
    is_override,
    order_outcomes,
)

DEFAULT_DAYS: Final = 30
OUTCOMES: Final = (
    "criteria-met",
    "documentation-needed",
    "criteria-not-met",
    "off-label-review",
    "not-evaluated",
)
COLOURS: Final = {
    "criteria-met": "#2e7d32",
    "documentation-needed": "#f9a825",
    "criteria-not-met": "#c62828",
    "off-label-review": "#6a1b9a",
    "not-evaluated": "#757575",
    "other": "#90a4ae",
}


@dataclass(frozen=True)
class ShownCard:
    """One card shown in the period, as the report needs it (no references)."""

    uuid: str
    day: date
    policy_id: str | None
    topic: str | None
    indicator: str


@dataclass(frozen=True)
class RateRow:
    """Cards of one group (a card type, or a criterion) and how they were answered."""

    policy_id: str
    group: str
    """The card type (CRD topic) and indicator, or the criterion id."""
    shown: int
    accepted: int
    overridden: int
    dismissed: int

    @property
    def answered(self) -> int:
        return self.accepted + self.overridden + self.dismissed

    @property
    def acceptance_rate(self) -> float | None:
        return None if self.answered == 0 else self.accepted / self.answered

    overridable: bool = True
    """False when every card of the group is an info card (nothing to override)."""

    @property
    def override_rate(self) -> float | None:
        judged = self.accepted + self.overridden
        return None if judged == 0 or not self.overridable else self.overridden / judged


@dataclass(frozen=True)
class DayPoint:
    day: date
    outcomes: Mapping[str, int]
    overrides: int


@dataclass(frozen=True)
class OverrideReport:
    since: date
    until: date
    by_card_type: Sequence[RateRow]
    by_criterion: Sequence[RateRow]
    days: Sequence[DayPoint]
    decisions: int = 0
    cards_shown: int = 0
    notes: Sequence[str] = field(default_factory=tuple)


def default_period(today: date) -> tuple[date, date]:
    return today - timedelta(days=DEFAULT_DAYS - 1), today


def _bounds(since: date, until: date) -> tuple[datetime, datetime]:
    """[since 00:00 UTC, the day after until 00:00 UTC)."""
    start = datetime.combine(since, time(), UTC)
    return start, datetime.combine(until + timedelta(days=1), time(), UTC)


# -- pure aggregation -------------------------------------------------------------------------


def _rates(
    groups: Iterable[tuple[tuple[str, str], ShownCard]],
    answers: Mapping[str, frozenset[str]],
) -> list[RateRow]:
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for key, card in groups:
        outcomes = answers.get(card.uuid, frozenset())
        counts[key]["shown"] += 1
        counts[key]["overridable"] += card.indicator != INFO_INDICATOR
        counts[key]["accepted"] += "accepted" in outcomes
        if "overridden" in outcomes:
            kind = "overridden" if is_override(card.indicator, "overridden") else "dismissed"
            counts[key][kind] += 1
    return [
        RateRow(
            policy_id=key[0],
            group=key[1],
            shown=c["shown"],
            accepted=c["accepted"],
            overridden=c["overridden"],
            dismissed=c["dismissed"],
            overridable=c["overridable"] > 0,
        )
        for key, c in sorted(counts.items())
    ]


def aggregate(
    since: date,
    until: date,
    shown: Sequence[ShownCard],
    answers: Mapping[str, frozenset[str]],
    criteria: Mapping[str, Sequence[str]],
    decisions: Sequence[tuple[date, str]],
) -> OverrideReport:
    """The report from the period's cards, their answers, their open criteria and the
    orders decided (day, outcome)."""
    by_type = _rates(
        ((((c.policy_id or "-"), f"{c.topic or '-'} / {c.indicator}"), c) for c in shown),
        answers,
    )
    by_criterion = _rates(
        (
            (((c.policy_id or "-"), criterion), c)
            for c in shown
            for criterion in criteria.get(c.uuid, ())
        ),
        answers,
    )
    outcome_days: dict[date, Counter[str]] = defaultdict(Counter)
    for day, outcome in decisions:
        outcome_days[day][outcome if outcome in OUTCOMES else "other"] += 1
    override_days: Counter[date] = Counter(
        c.day
        for c in shown
        if "overridden" in answers.get(c.uuid, frozenset())
        and is_override(c.indicator, "overridden")
    )
    days = []
    day = since
    while day <= until:
        days.append(DayPoint(day, dict(outcome_days.get(day, {})), override_days.get(day, 0)))
        day += timedelta(days=1)
    return OverrideReport(
        since=since,
        until=until,
        by_card_type=by_type,
        by_criterion=by_criterion,
        days=days,
        decisions=len(decisions),
        cards_shown=len(shown),
    )


# -- the store (I/O) --------------------------------------------------------------------------


def build_report(store: AuditStore, since: date, until: date) -> OverrideReport:
    """Read the period's cards, feedback and decisions from `store` and aggregate them."""
    start, end = _bounds(since, until)
    in_period = and_(invocations.c.received_at >= start, invocations.c.received_at < end)
    pack = (
        select(
            order_outcomes.c.invocation_id,
            order_outcomes.c.order_ref,
            func.max(order_outcomes.c.policy_id).label("policy_id"),
        )
        .group_by(order_outcomes.c.invocation_id, order_outcomes.c.order_ref)
        .subquery()
    )
    card_rows = (
        select(
            cards.c.card_uuid,
            invocations.c.received_at,
            pack.c.policy_id,
            cards.c.topic,
            cards.c.indicator,
        )
        .select_from(
            cards.join(invocations, invocations.c.id == cards.c.invocation_id).outerjoin(
                pack,
                (pack.c.invocation_id == cards.c.invocation_id)
                & (pack.c.order_ref == cards.c.order_ref),
            )
        )
        .where(in_period)
    )
    period_cards = (
        select(cards.c.card_uuid)
        .join(invocations, invocations.c.id == cards.c.invocation_id)
        .where(in_period)
    )
    with store.engine.connect() as conn:
        shown = [
            ShownCard(uuid, received.astimezone(UTC).date(), policy, topic, indicator)
            for uuid, received, policy, topic, indicator in conn.execute(card_rows)
        ]
        answered: dict[str, set[str]] = defaultdict(set)
        for uuid, outcome in conn.execute(
            select(feedback.c.card_uuid, feedback.c.outcome)
            .distinct()
            .where(feedback.c.card_uuid.in_(period_cards))
        ):
            answered[uuid].add(outcome)
        open_criteria: dict[str, list[str]] = defaultdict(list)
        for uuid, criterion in conn.execute(
            select(card_criteria.c.card_uuid, card_criteria.c.criterion_id).where(
                card_criteria.c.card_uuid.in_(period_cards)
            )
        ):
            open_criteria[uuid].append(criterion)
        decisions = [
            (received.astimezone(UTC).date(), outcome)
            for received, outcome in conn.execute(
                select(invocations.c.received_at, order_outcomes.c.outcome)
                .join(order_outcomes, order_outcomes.c.invocation_id == invocations.c.id)
                .where(in_period)
            )
        ]
    answers = {uuid: frozenset(outcomes) for uuid, outcomes in answered.items()}
    return aggregate(since, until, shown, answers, open_criteria, decisions)


# -- output -----------------------------------------------------------------------------------

COLUMNS: Final = (
    "section",
    "policy",
    "group",
    "shown",
    "answered",
    "accepted",
    "overridden",
    "dismissed",
    "acceptance_rate",
    "override_rate",
)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _row_values(section: str, row: RateRow) -> list[str]:
    return [
        section,
        row.policy_id,
        row.group,
        str(row.shown),
        str(row.answered),
        str(row.accepted),
        str(row.overridden),
        str(row.dismissed),
        _percent(row.acceptance_rate),
        _percent(row.override_rate),
    ]


def _sections(report: OverrideReport) -> list[tuple[str, Sequence[RateRow]]]:
    return [("card-type", report.by_card_type), ("criterion", report.by_criterion)]


def to_csv(report: OverrideReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for section, rows in _sections(report):
        for row in rows:
            values = _row_values(section, row)
            # Rates as fractions in CSV (a spreadsheet formats them).
            values[-2:] = [
                "" if r is None else f"{r:.4f}" for r in (row.acceptance_rate, row.override_rate)
            ]
            writer.writerow(values)
    return out.getvalue()


def format_table(report: OverrideReport) -> str:
    """A readable table per section, columns aligned."""
    lines = [
        f"Card answers from {report.since.isoformat()} to {report.until.isoformat()} (UTC): "
        f"{report.decisions} order decisions, {report.cards_shown} cards shown",
        "Overridden counts warning and critical cards only; a closed info card is dismissed.",
    ]
    titles = {"card-type": "By card type (policy, type / indicator)", "criterion": "By criterion"}
    for section, rows in _sections(report):
        lines += ["", titles[section]]
        if not rows:
            lines.append("  no cards in this period")
            continue
        table = [list(COLUMNS[1:])] + [_row_values(section, row)[1:] for row in rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        for values in table:
            cells = [
                v.ljust(w) if i < 2 else v.rjust(w)
                for i, (v, w) in enumerate(zip(values, widths, strict=True))
            ]
            lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def plot_svg(days: Sequence[DayPoint], width: int = 720, height: int = 240) -> str:
    """Decisions per day, stacked by outcome, and overrides per day as a line."""
    left, right, top, bottom = 40, 10, 10, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([sum(d.outcomes.values()) for d in days] + [d.overrides for d in days] + [1])
    step = plot_w / max(len(days), 1)
    bar = max(step * 0.7, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" id="outcomes-plot">',
        "<title>Order decisions per day by outcome, and overrides per day</title>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
        'stroke="#333"/>',
        f'<text x="4" y="{top + 10}" font-size="10">{peak}</text>',
        f'<text x="4" y="{top + plot_h}" font-size="10">0</text>',
    ]
    points = []
    for index, day in enumerate(days):
        x = left + index * step + (step - bar) / 2
        y = float(top + plot_h)
        for outcome in (*OUTCOMES, "other"):
            count = day.outcomes.get(outcome, 0)
            if not count:
                continue
            h = plot_h * count / peak
            y -= h
            parts.append(
                f'<rect class="bar" data-outcome="{outcome}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{bar:.1f}" height="{h:.1f}" fill="{COLOURS[outcome]}">'
                f"<title>{day.day.isoformat()}: {count} {outcome}</title></rect>"
            )
        cx = left + index * step + step / 2
        cy = top + plot_h - plot_h * day.overrides / peak
        points.append(f"{cx:.1f},{cy:.1f}")
        if day.overrides:
            parts.append(
                f'<circle class="override" cx="{cx:.1f}" cy="{cy:.1f}" r="3" fill="#000">'
                f"<title>{day.day.isoformat()}: {day.overrides} overridden</title></circle>"
            )
    if points:
        parts.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="#000" '
            'stroke-dasharray="4 2"/>'
        )
    if days:
        labels = [(left, "start", days[0].day)]
        if len(days) > 1:
            labels.append((left + plot_w, "end", days[-1].day))
        for x_label, anchor, day_label in labels:
            parts.append(
                f'<text x="{x_label}" y="{height - 10}" font-size="10" text-anchor="{anchor}">'
                f"{day_label.isoformat()}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(rows: Sequence[RateRow], caption: str, table_id: str) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in COLUMNS[1:])
    body = (
        "".join(
            "<tr>" + "".join(f"<td>{escape(v)}</td>" for v in _row_values("", row)[1:]) + "</tr>"
            for row in rows
        )
        or f'<tr><td colspan="{len(COLUMNS) - 1}">no cards in this period</td></tr>'
    )
    return (
        f'<table id="{table_id}"><caption>{escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )


CRITERION_CAPTION: Final = "By criterion (not met or unknown on the card's order)"


def render_html(report: OverrideReport) -> str:
    legend = "".join(
        f'<li><span style="background:{COLOURS[o]}">&nbsp;&nbsp;&nbsp;</span> {escape(o)}</li>'
        for o in (*OUTCOMES, "other")
    )
    period = f"{report.since.isoformat()} to {report.until.isoformat()} (UTC)"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Card outcomes and overrides</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;"
        "margin:1em 0}td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}"
        "td:nth-child(-n+2),th:nth-child(-n+2){text-align:left}caption{text-align:left;"
        "font-weight:bold}ul.legend{list-style:none;padding:0}ul.legend li{display:inline;"
        "margin-right:1em}</style></head><body>"
        f'<h1>Card outcomes and overrides</h1><p id="period">{escape(period)}: '
        f"{report.decisions} order decisions, {report.cards_shown} cards shown.</p>"
        "<p>Overridden counts warning and critical cards only; an info card the prescriber "
        "closed is counted as dismissed.</p>"
        f"<figure>{plot_svg(report.days)}<figcaption>Order decisions per day by outcome "
        "(bars) and overrides per day (dashed line).</figcaption>"
        f'<ul class="legend">{legend}</ul></figure>'
        f"{_html_table(report.by_card_type, 'By card type', 'by-card-type')}"
        f"{_html_table(report.by_criterion, CRITERION_CAPTION, 'by-criterion')}"
        "</body></html>"
    )
