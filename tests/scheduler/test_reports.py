"""The SLA report against a hand-computed fixture of 20 tickets (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config.settings import Settings
from scheduler.reports import build_report, render_csv, render_html, render_json
from storage import repo
from storage.engine import make_engine
from storage.schema import ensure_schema
from storage.spool import Spool
from tests.conftest import service_missing

A = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)  # as of
D, H = timedelta(days=1), timedelta(hours=1)

# (name, queue, received, answered_at, closed_at, due_at override)
TICKETS = [
    ("d1", "disputes", A - 40 * D, A - 40 * D + 10 * H, None, None),
    ("d2", "disputes", A - 40 * D, A - 5 * D, None, None),  # answered 35 days in: late
    ("d3", "disputes", A - 35 * D, None, None, None),  # breached
    ("d4", "disputes", A - 31 * D, None, None, None),  # breached
    ("d5", "disputes", A - 25 * D, None, None, None),  # due in 5 days
    ("d6", "disputes", A - 20 * D, None, None, None),
    ("d7", "disputes", A - 10 * D, A + D, None, None),  # answered after as_of: open then
    ("d8", "disputes", A - 10 * D, A - 10 * D + 20 * H, None, None),
    ("d9", "disputes", A - 2 * D, None, A - D, None),  # closed unanswered
    ("d10", "disputes", A + D, None, None, None),  # received after as_of
    ("c1", "complaints", A - 50 * D, A - 50 * D + 5 * H, None, None),
    ("c2", "complaints", A - 50 * D, A - 50 * D + 50 * H, None, None),
    ("c3", "complaints", A - 40 * D, A - 9 * D, None, None),  # 31 days: late
    ("c4", "complaints", A - 29 * D, None, None, None),  # due in 1 day
    ("c5", "complaints", A - 3 * D, None, None, A + 57 * D),  # extended
    ("c6", "complaints", A - 60 * D, None, A - 20 * D, None),
    ("s1", "security", A - 5 * D, A - 5 * D + H, None, None),
    ("s2", "security", A - 5 * D, A - 5 * D + 3 * H, None, None),
    ("s3", "security", A - 31 * D + H, None, None, None),  # breached by 23 hours
    ("s4", "security", A - 33 * D, None, None, A + 2 * D),  # extended before its deadline
]
EXTENSIONS = [("c5", A - D), ("s4", A - 4 * D), ("s4", A + D)]  # the last is after as_of

# Answer figures cover first answers in the 30 days up to A: d1, c1, c2 fall before it and
# d7 after it; so do the extensions (s4's second one is after A).
EXPECTED = {
    #               open due7 breached answered on_time pct   median p90  ext
    "disputes": (5, 1, 2, 2, 1, 50.0, 430.0, 840.0, 0),
    "complaints": (2, 1, 0, 1, 0, 0.0, 744.0, 744.0, 1),
    "security": (2, 1, 1, 2, 2, 100.0, 2.0, 3.0, 1),
    "general": (0, 0, 0, 0, 0, None, None, None, 0),
    "all": (9, 3, 3, 5, 3, 60.0, 20.0, 840.0, 2),
}
AT_RISK = [("d3", "breached"), ("d4", "breached"), ("s3", "breached"),
           ("c4", "due_soon"), ("s4", "due_soon"), ("d5", "due_soon")]  # fmt: skip


@pytest.fixture
def report_db(db_url: str, make_settings, tmp_path: Path):
    settings: Settings = make_settings(db_url, reports={"period_days": 30})
    engine = make_engine(db_url)
    ensure_schema(engine)
    refs = {}
    with engine.begin() as conn:
        for name, queue, received, answered, closed, due in TICKETS:
            refs[name] = repo.insert_ticket(
                conn,
                {
                    "queue": queue, "status": "open", "subject": f"ticket {name}",
                    "sender": f"{name}@example.org", "language": "en", "route_rule": "recipient",
                    "received_at": received, "clock_started_at": received,
                    "due_at": due or received + 30 * D, "updated_at": received,
                    "answered_at": answered, "closed_at": closed,
                },
            )  # fmt: skip
        for name, at in EXTENSIONS:
            repo.add_event(conn, refs[name], "extended", at, {"reason": "supplier"})
    spool = Spool(tmp_path / "spool")
    spool.keep(b"x", stage="parse", reason="r", source="t", received_at=A,
               envelope_to=("disputes@desk.example",))  # fmt: skip
    spool.keep(b"y", stage="parse", reason="r", source="t", received_at=A)
    yield settings, engine, spool, {v: k for k, v in refs.items()}
    engine.dispose()


def _figures(row) -> tuple:
    return (
        row.open, row.due_within_7_days, row.breached, row.answered, row.answered_on_time,
        row.answered_on_time_pct, row.median_hours_to_first_answer,
        row.p90_hours_to_first_answer, row.extensions,
    )  # fmt: skip


def test_figures_match_the_hand_computed_fixture(report_db) -> None:
    settings, engine, spool, names = report_db
    with engine.connect() as conn:
        report = build_report(conn, settings, A, spool.list())
    assert [q.queue for q in report.queues] == [
        "disputes", "complaints", "security", "general", "(no queue)"
    ]  # fmt: skip
    got = {q.queue: _figures(q) for q in [*report.queues, report.total]}
    assert {k: got[k] for k in EXPECTED} == EXPECTED
    quarantined = {q.queue: q.quarantined for q in report.queues}
    assert quarantined["disputes"] == 1 and quarantined["(no queue)"] == 1
    assert report.total.quarantined == 2
    at_risk = [(names[int(t.ref[3:])], t.sla) for t in report.at_risk]
    assert at_risk == AT_RISK


def test_csv_parses_back_and_json_round_trips(report_db) -> None:
    settings, engine, spool, _ = report_db
    with engine.connect() as conn:
        report = build_report(conn, settings, A, spool.list())
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    queues = {r["queue"]: r for r in rows if r["kind"] == "queue"}
    assert queues["all"]["open"] == "9" and queues["disputes"]["breached"] == "2"
    assert queues["disputes"]["median_hours_to_first_answer"] == "430.0"
    assert queues["security"]["answered_on_time_pct"] == "100.0"
    assert [r["ref"] for r in rows if r["kind"] == "ticket"] == [t.ref for t in report.at_risk]
    data = json.loads(render_json(report))
    assert data["total"]["open"] == 9 and len(data["at_risk"]) == 6


def test_html_report_renders_in_headless_chromium(report_db, tmp_path: Path) -> None:
    settings, engine, spool, _ = report_db
    with engine.connect() as conn:
        report = build_report(conn, settings, A, spool.list())
    html = render_html(report)
    assert "<svg" in html and "breached" in html and "CD-" in html
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        service_missing("chromium", "not installed (apt-get install chromium)")
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    png = tmp_path / "report.png"
    subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={png}", "--window-size=1100,900", page.as_uri()],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_subject_is_escaped_in_html(report_db) -> None:
    settings, engine, _spool, _ = report_db
    with engine.begin() as conn:
        repo.insert_ticket(
            conn,
            {
                "queue": "disputes", "status": "open", "subject": "<script>alert(1)</script>",
                "sender": "x@example.org", "language": "en", "route_rule": "recipient",
                "received_at": A - 29 * D, "clock_started_at": A - 29 * D,
                "due_at": A + D, "updated_at": A,
            },
        )  # fmt: skip
        report = build_report(conn, settings, A)
    html = render_html(report)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
