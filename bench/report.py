"""SLA sweep and report on a large desk: 1,000,000 tickets in SQLite.

    .venv/bin/python -m bench.report [--tickets 1000000]

Generates the tickets with bulk inserts (most answered or closed, a realistic open tail),
then times the SLA sweep (every 15 minutes in production) and the report build, each twice
(cold and warm), and prints the query plans SQLite uses for them. Target: each under 5 s.
As a same-run baseline it also times a full-table `SELECT count(*)`, so the figures can be
read as a ratio on a noisy machine.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

from config.settings import build_settings
from config.wiring import build_services
from scheduler import jobs
from scheduler.clock import FrozenClock
from scheduler.reports import build_report, render_html
from storage.models import TICKET

NOW = datetime(2026, 6, 1, 7, 0, tzinfo=UTC)
QUEUES = ("disputes", "complaints", "security", "general")


def _rows(count: int, seed: int) -> list[dict]:
    """A desk in steady state: a year of claims, nearly all old ones answered (a few late,
    a few breached and never answered), and an open tail of the last month."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        received = NOW - timedelta(seconds=rng.randrange(0, 365 * 86400))
        due = received + timedelta(days=30)
        age_days = (NOW - received).days
        answered = closed = None
        status = "open"
        answer_share = 0.995 if age_days > 30 else 0.5 * age_days / 30
        if rng.random() < answer_share:
            hours = rng.expovariate(1 / 150)  # mean ~6 days; a tail past 30 days is late
            answered = min(received + timedelta(hours=hours), NOW)
            status = "answered"
            if answered + timedelta(days=2) <= NOW and rng.random() < 0.8:
                closed, status = answered + timedelta(days=2), "closed"
        rows.append(
            {
                "queue": rng.choice(QUEUES),
                "status": status,
                "subject": "Parcel not received",
                "sender": f"b{rng.randrange(10**6)}@example.org",
                "language": "en",
                "route_rule": "recipient",
                "received_at": received,
                "clock_started_at": received,
                "due_at": due,
                "answered_at": answered,
                "closed_at": closed,
                "updated_at": received,
                "sla_state": "on_track",
            }
        )
    return rows


def _plan(conn, sql: str) -> list[str]:
    return [row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = build_settings(
            {"database": {"url": f"sqlite:///{Path(tmp) / 'big.db'}"},
             "desk": {"spool_dir": str(Path(tmp) / "spool")},
             "reports": {"out_dir": str(Path(tmp) / "reports")}},
            env={},
        )  # fmt: skip
        services = build_services(settings, clock=FrozenClock(NOW))
        started = time.perf_counter()
        chunk = 50_000
        for start in range(0, args.tickets, chunk):
            with services.engine.begin() as conn:
                conn.execute(TICKET.insert(), _rows(min(chunk, args.tickets - start), start))
        with services.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
        print(f"generated {args.tickets:,} tickets in {time.perf_counter() - started:.1f} s")

        with services.engine.connect() as conn:
            t = time.perf_counter()
            conn.execute(text("SELECT count(*) FROM ticket WHERE length(subject) > 0")).scalar()
            baseline = time.perf_counter() - t
        print(f"baseline full scan (count with a predicate): {baseline:.2f} s")

        t = time.perf_counter()
        result = jobs.sla_sweep(services)
        first = time.perf_counter() - t
        print(
            f"first sla sweep (records the whole backlog): {first:.2f} s  "
            f"({len(result.due_soon):,} due soon, {len(result.breached):,} breached)"
        )
        for step in range(2):
            services.clock.advance(timedelta(minutes=15))  # type: ignore[attr-defined]
            t = time.perf_counter()
            result = jobs.sla_sweep(services)
            sweep = time.perf_counter() - t
            print(
                f"sla sweep {15 * (step + 1)} min later: {sweep:.3f} s  "
                f"({sweep / baseline:.2f}x the scan; {len(result.due_soon):,} due soon, "
                f"{len(result.breached):,} breached)"
            )
        for attempt in ("cold", "warm"):
            t = time.perf_counter()
            with services.engine.connect() as conn:
                report = build_report(conn, settings, NOW, services.spool.list())
            html = render_html(report)
            took = time.perf_counter() - t
            print(
                f"report ({attempt}): {took:.2f} s  ({took / baseline:.1f}x the scan; "
                f"{report.total.open:,} open, {len(report.at_risk):,} at risk, "
                f"{len(html) // 1024} KB HTML)"
            )

        now = NOW.replace(tzinfo=None).isoformat(sep=" ")
        with services.engine.connect() as conn:
            print("\nquery plans:")
            sweep_sql = (
                "UPDATE ticket SET sla_state='breached' WHERE queue='disputes' AND status IN "
                f"('new','waiting','open') AND answered_at IS NULL AND sla_state IN "
                f"('on_track','due_soon') AND due_at < '{now}'"
            )
            at_risk_sql = (
                f"SELECT id FROM ticket WHERE received_at <= '{now}' AND (answered_at IS NULL "
                f"OR answered_at > '{now}') AND due_at < '{now}' ORDER BY due_at, id"
            )
            counts_sql = (
                f"SELECT queue, count(*) FROM ticket WHERE (answered_at IS NULL OR answered_at "
                f"> '{now}') AND received_at <= '{now}' GROUP BY queue"
            )
            answers_sql = (
                f"SELECT queue, julianday(answered_at) FROM ticket WHERE answered_at > "
                f"date('{now}', '-30 days') AND answered_at <= '{now}'"
            )
            plans = (
                ("sweep", sweep_sql),
                ("at-risk list", at_risk_sql),
                ("open counts", counts_sql),
                ("answers in period", answers_sql),
            )
            for name, sql in plans:
                print(f"  {name}:")
                for line in _plan(conn, sql):
                    print(f"    {line}")
        services.engine.dispose()


if __name__ == "__main__":
    main()
