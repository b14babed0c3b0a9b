"""Scheduled jobs: plain functions, one transaction each, safe to run twice.

Idempotency lives in the data: the sweep moves `ticket.sla_state` forward with a guarded
UPDATE (a transition already recorded is not matched again), and a report run claims its
scheduled time in `job_run` (a unique key) before doing any work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from config.wiring import Services
from scheduler.notices import Notices
from scheduler.reports import RENDERERS, build_report
from scheduler.sla import RUNNING_STATUSES
from storage import repo
from storage.models import JOB_RUN, TICKET

log = logging.getLogger("scheduler.jobs")


@dataclass(frozen=True)
class SweepResult:
    due_soon: list[int] = field(default_factory=list)
    breached: list[int] = field(default_factory=list)


def _transition(
    conn: Connection,
    queue: str,
    to_state: str,
    from_states: tuple[str, ...],
    due_from: datetime | None,
    due_until: datetime,
    *,
    inclusive: bool,
) -> list[Any]:
    """Move running tickets of `queue` whose deadline lies in [due_from, due_until] (or
    [due_from, due_until) unless `inclusive`) from one of `from_states` to `to_state`;
    returns (id, due_at, sender) of those moved. The bounds are scheduler.sla.sla_state's."""
    t = TICKET.c
    conditions = [
        t.queue == queue,
        t.status.in_(RUNNING_STATUSES),
        t.answered_at.is_(None),
        t.sla_state.in_(from_states),
        t.due_at <= due_until if inclusive else t.due_at < due_until,
    ]
    if due_from is not None:
        conditions.append(t.due_at >= due_from)
    statement = (
        update(TICKET)
        .where(*conditions)
        .values(sla_state=to_state)
        .returning(t.id, t.due_at, t.sender)
    )
    return list(conn.execute(statement))


def sla_sweep(services: Services) -> SweepResult:
    """Record each ticket's crossing into `due_soon` and into `breached`, once each."""
    now = services.clock.now()
    result = SweepResult()
    notices = Notices(services.settings)
    with services.engine.begin() as conn:
        for name, queue in services.settings.queues.items():
            # The bounds of scheduler.sla.sla_state: breached when now > due, due_soon when
            # now >= due - warn_before_days.
            breached = _transition(
                conn, name, "breached", ("on_track", "due_soon"), None, now, inclusive=False
            )
            soon = _transition(
                conn,
                name,
                "due_soon",
                ("on_track",),
                now,
                now + timedelta(days=queue.warn_before_days),
                inclusive=True,
            )
            for kind, rows, bucket in (
                ("breached", breached, result.breached),
                ("due_soon", soon, result.due_soon),
            ):
                repo.add_events(
                    conn,
                    [
                        {
                            "ticket_id": row.id,
                            "kind": kind,
                            "at": now,
                            "detail": {"due_at": row.due_at.isoformat(), "queue": name},
                        }
                        for row in rows
                    ],
                )
                bucket.extend(row.id for row in rows)
                notices.sla_transition(conn, name, kind, rows, now)
    if result.breached or result.due_soon:
        log.info("sla sweep: %d due soon, %d breached", len(result.due_soon), len(result.breached))
    return result


def claim_run(conn: Connection, job_id: str, scheduled_for: datetime, now: datetime) -> bool:
    """True if this process may run `job_id` for `scheduled_for` (nobody did before)."""
    try:
        with conn.begin_nested():
            conn.execute(
                insert(JOB_RUN).values(job_id=job_id, scheduled_for=scheduled_for, started_at=now)
            )
    except IntegrityError:
        return False
    return True


def last_run(conn: Connection, job_id: str) -> datetime | None:
    query = select(JOB_RUN.c.scheduled_for).where(JOB_RUN.c.job_id == job_id)
    return conn.execute(query.order_by(JOB_RUN.c.scheduled_for.desc()).limit(1)).scalar()


def write_report(services: Services, as_of: datetime, fmt: str) -> str:
    """The report rendered as `fmt` (json, csv, html), as of `as_of`."""
    with services.engine.connect() as conn:
        report = build_report(conn, services.settings, as_of, services.spool.list())
    return RENDERERS[fmt](report)


def sla_report(services: Services, scheduled_for: datetime) -> Path | None:
    """The scheduled report for `scheduled_for`, exactly once: written to reports.out_dir in
    every format, and the HTML mailed to reports.recipients. None if it already ran."""
    now = services.clock.now()
    with services.engine.begin() as conn:
        if not claim_run(conn, "sla_report", scheduled_for, now):
            return None
        report = build_report(conn, services.settings, now, services.spool.list())
        out_dir = Path(services.settings.reports.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = f"sla-{scheduled_for.astimezone(services.settings.desk.tz):%Y-%m-%d-%H%M}"
        for fmt, render in RENDERERS.items():
            (out_dir / f"{stem}.{fmt}").write_text(render(report), encoding="utf-8")
        Notices(services.settings).report(conn, RENDERERS["html"](report), stem, now)
    log.info("sla report %s written to %s", stem, out_dir)
    return out_dir / f"{stem}.html"
