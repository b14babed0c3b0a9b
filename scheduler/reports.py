"""The SLA report: per-queue figures and the tickets at risk, as JSON, CSV or HTML.

Every figure is computed from times, not from the current status, so a report "as of" a past
date tells what stood then (a ticket answered later counts as unanswered at that date):

- open: received by `as_of`, not answered and not closed by then (the clock was running);
- due within 7 days / breached: open, with the deadline in the next 7 days / already passed;
- answered, answered on time (% of answered): first staff answers given in the report period
  (`reports.period_days` up to `as_of`), and those on or before the deadline;
- median and 90th percentile of hours from the clock's start to those first answers;
- extensions granted in the period: `extended` events;
- quarantined: messages in the spool, attributed to a queue by their desk recipient.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Connection, and_, case, func, or_, select

from config.settings import Settings
from scheduler.sla import sla_state
from storage.dialect import hours_between
from storage.models import EVENT, TICKET, ticket_ref
from storage.spool import QuarantineEntry

AT_RISK_DAYS = 7
TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class QueueFigures:
    queue: str
    open: int = 0
    due_within_7_days: int = 0
    breached: int = 0
    answered: int = 0
    answered_on_time: int = 0
    answered_on_time_pct: float | None = None
    median_hours_to_first_answer: float | None = None
    p90_hours_to_first_answer: float | None = None
    extensions: int = 0
    quarantined: int = 0


@dataclass(frozen=True)
class TicketLine:
    ref: str
    queue: str
    status: str
    sender: str
    subject: str
    due_at: str
    sla: str


@dataclass(frozen=True)
class SlaReport:
    as_of: str
    timezone: str
    period_days: int
    queues: list[QueueFigures]
    total: QueueFigures
    at_risk: list[TicketLine] = field(default_factory=list)


def _percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (the value a reader can find in the data)."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * fraction // 1))  # ceil without floats drifting
    return round(sorted_values[int(rank) - 1], 2)


def _open_at(as_of: datetime) -> Any:
    """Received by `as_of`, and neither answered nor closed by then: the clock was running.
    (Written so the answered_at index serves both arms of the OR.)"""
    t = TICKET.c
    return and_(
        or_(t.answered_at.is_(None), t.answered_at > as_of),
        t.received_at <= as_of,
        or_(t.closed_at.is_(None), t.closed_at > as_of),
    )


def _open_counts(conn: Connection, as_of: datetime) -> dict[str, dict[str, int]]:
    t = TICKET.c

    def count(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    soon = and_(t.due_at >= as_of, t.due_at < as_of + timedelta(days=AT_RISK_DAYS))
    query = (
        select(t.queue, func.count(), count(soon), count(t.due_at < as_of))
        .where(_open_at(as_of))
        .group_by(t.queue)
    )
    names = ("open", "due_within_7_days", "breached")
    return {row[0]: dict(zip(names, map(int, row[1:]), strict=True)) for row in conn.execute(query)}


def _answers(
    conn: Connection, since: datetime, as_of: datetime
) -> dict[str, list[tuple[float, bool]]]:
    """(hours to first answer, on time) of each first answer given in (since, as_of]."""
    t = TICKET.c
    hours = hours_between(conn.dialect, t.clock_started_at, t.answered_at)
    query = select(t.queue, hours, t.answered_at <= t.due_at).where(
        t.answered_at > since, t.answered_at <= as_of
    )
    found: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for queue, value, on_time in conn.execute(query):
        found[queue].append((float(value), bool(on_time)))
    return found


def _extensions(conn: Connection, since: datetime, as_of: datetime) -> dict[str, int]:
    query = (
        select(TICKET.c.queue, func.count())
        .select_from(EVENT.join(TICKET, TICKET.c.id == EVENT.c.ticket_id))
        .where(EVENT.c.kind == "extended", EVENT.c.at > since, EVENT.c.at <= as_of)
        .group_by(TICKET.c.queue)
    )
    return {queue: int(n) for queue, n in conn.execute(query)}


def _quarantined(entries: Iterable[QuarantineEntry], settings: Settings) -> dict[str, int]:
    by_address = {a: name for name, q in settings.queues.items() for a in q.addresses}
    found: dict[str, int] = defaultdict(int)
    for entry in entries:
        queues = {by_address[a.lower()] for a in entry.envelope_to if a.lower() in by_address}
        if entry.queue_hint:
            queues.add(entry.queue_hint)
        for queue in queues or {"(no queue)"}:
            found[queue] += 1
    return found


def _at_risk(conn: Connection, settings: Settings, as_of: datetime) -> list[TicketLine]:
    t = TICKET.c
    query = (
        select(t.id, t.queue, t.status, t.sender, t.subject, t.due_at)
        .where(_open_at(as_of), t.due_at < as_of + timedelta(days=AT_RISK_DAYS))
        .order_by(t.due_at, t.id)
    )
    lines = []
    tz = settings.desk.tz
    for row in conn.execute(query):
        queue = settings.queues.get(row.queue)
        warn = queue.warn_before_days if queue else 5
        state = sla_state(due=row.due_at, answered_at=None, now=as_of, warn_before_days=warn)
        lines.append(
            TicketLine(
                ref=ticket_ref(row.id),
                queue=row.queue,
                status=row.status,
                sender=row.sender,
                subject=row.subject,
                due_at=row.due_at.astimezone(tz).isoformat(),
                sla=state,
            )
        )
    return lines


def _figures(
    queue: str,
    counts: dict[str, int],
    answers: list[tuple[float, bool]],
    extensions: int,
    quarantined: int,
) -> QueueFigures:
    hours = sorted(h for h, _ in answers)
    on_time = sum(1 for _, ok in answers if ok)
    return QueueFigures(
        queue=queue,
        open=counts.get("open", 0),
        due_within_7_days=counts.get("due_within_7_days", 0),
        breached=counts.get("breached", 0),
        answered=len(answers),
        answered_on_time=on_time,
        answered_on_time_pct=round(100.0 * on_time / len(answers), 1) if answers else None,
        median_hours_to_first_answer=round(statistics.median(hours), 2) if hours else None,
        p90_hours_to_first_answer=_percentile(hours, 0.9),
        extensions=extensions,
        quarantined=quarantined,
    )


def build_report(
    conn: Connection,
    settings: Settings,
    as_of: datetime,
    quarantine: Iterable[QuarantineEntry] = (),
) -> SlaReport:
    """The report's numbers (read-only; runs in the caller's connection)."""
    since = as_of - timedelta(days=settings.reports.period_days)
    counts = _open_counts(conn, as_of)
    answers = _answers(conn, since, as_of)
    extensions = _extensions(conn, since, as_of)
    quarantined = _quarantined(quarantine, settings)
    extra = (set(counts) | set(answers) | set(quarantined)) - set(settings.queues)
    names = list(settings.queues) + sorted(extra)
    queues = [
        _figures(
            name,
            counts.get(name, {}),
            answers.get(name, []),
            extensions.get(name, 0),
            quarantined.get(name, 0),
        )
        for name in names
    ]
    all_counts: dict[str, int] = defaultdict(int)
    for per_queue in counts.values():
        for key, value in per_queue.items():
            all_counts[key] += value
    total = _figures(
        "all",
        all_counts,
        [a for values in answers.values() for a in values],
        sum(extensions.values()),
        sum(quarantined.values()),
    )
    return SlaReport(
        as_of=as_of.astimezone(settings.desk.tz).isoformat(),
        timezone=settings.desk.timezone,
        period_days=settings.reports.period_days,
        queues=queues,
        total=total,
        at_risk=_at_risk(conn, settings, as_of),
    )


# -- formats ------------------------------------------------------------------------------


def render_json(report: SlaReport) -> str:
    return json.dumps(asdict(report), ensure_ascii=False, indent=1)


CSV_COLUMNS = [
    "kind",
    *(f for f in QueueFigures.__dataclass_fields__),
    *(f for f in TicketLine.__dataclass_fields__ if f != "queue"),
]


def render_csv(report: SlaReport) -> str:
    """One table: `kind` is "queue" (figures per queue, then "all") or "ticket" (at risk)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for figures in [*report.queues, report.total]:
        writer.writerow({"kind": "queue", **asdict(figures)})
    for line in report.at_risk:
        writer.writerow({"kind": "ticket", **asdict(line)})
    return out.getvalue()


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _bars(queues: Sequence[QueueFigures]) -> list[dict[str, Any]]:
    """Bar geometry for the inline SVG chart: open, due soon and breached per queue."""
    peak = max([1, *(max(q.open, q.breached, q.due_within_7_days) for q in queues)])
    return [
        {
            "queue": q.queue,
            "values": [
                (label, value, colour, round(300 * value / peak))
                for label, value, colour in (
                    ("open", q.open, "#4a7bd0"),
                    ("due within 7 days", q.due_within_7_days, "#e0a030"),
                    ("breached", q.breached, "#c83c3c"),
                )
            ],
        }
        for q in queues
    ]


def render_html(report: SlaReport, *, max_tickets: int = 500) -> str:
    template = _environment().get_template("sla_report.html")
    return template.render(
        report=report,
        bars=_bars(report.queues),
        tickets=report.at_risk[:max_tickets],
        more=max(0, len(report.at_risk) - max_tickets),
    )


RENDERERS = {"json": render_json, "csv": render_csv, "html": render_html}
