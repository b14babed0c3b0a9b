"""The whole life of tickets across 31+ days under a frozen, advanced clock."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.wiring import Services
from desk.actions import ActionRefused, assign, close, extend, reopen, reply
from intake.process import process
from intake.types import RawMessage
from scheduler import jobs
from scheduler.app import SchedulerService, latest_fire_time, report_trigger
from scheduler.clock import FrozenClock
from storage import repo
from storage.models import EVENT, JOB_RUN, OUTBOX, ticket_id_from_ref
from tests.conftest import T0
from tests.mail import claim

DAY = timedelta(days=1)
STAFF = {
    "disputes": {"addresses": ["disputes@desk.example"], "staff_address": "team-d@desk.example",
                 "required": ["order_number"]},
    "general": {"addresses": ["support@desk.example"], "fallback": True},
}  # fmt: skip


@pytest.fixture
def desk(make_services, db_url: str, tmp_path: Path) -> Services:
    return make_services(
        db_url,
        queues=STAFF,
        routing={"order": ["disputes", "general"]},
        reports={"out_dir": str(tmp_path / "reports"), "recipients": ["boss@desk.example"]},
    )


def new_ticket(services: Services, n: int) -> str:
    data = claim(message_id=f"<life{n}@example.org>", sender=f"buyer{n}@example.org")
    result = process(
        RawMessage(data=data, source="t", envelope_to=("disputes@desk.example",)), services
    )
    assert result.ticket is not None
    return result.ticket


def kinds(services: Services, ref: str) -> list[str]:
    with services.engine.connect() as conn:
        return [e.kind for e in repo.ticket_events(conn, ticket_id_from_ref(ref))]


def ticket(services: Services, ref: str):
    with services.engine.connect() as conn:
        return repo.get_ticket(conn, ticket_id_from_ref(ref))


def outbox_kinds(services: Services) -> list[str]:
    with services.engine.connect() as conn:
        return [k for (k,) in conn.execute(select(OUTBOX.c.kind).order_by(OUTBOX.c.id))]


def test_warnings_and_breach_are_recorded_once(desk: Services, clock: FrozenClock) -> None:
    ref = new_ticket(desk, 1)
    clock.advance(24 * DAY)
    assert jobs.sla_sweep(desk) == jobs.SweepResult()
    clock.advance(DAY)  # day 25: 5 days before the deadline
    first = jobs.sla_sweep(desk)
    assert first.due_soon and not first.breached
    assert jobs.sla_sweep(desk) == jobs.SweepResult()  # idempotent
    clock.advance(5 * DAY + timedelta(seconds=1))  # day 30 + 1 s
    assert jobs.sla_sweep(desk).breached == first.due_soon
    clock.advance(3 * DAY)
    jobs.sla_sweep(desk)
    events = kinds(desk, ref)
    assert events.count("due_soon") == 1 and events.count("breached") == 1
    assert ticket(desk, ref).sla_state == "breached"
    staff = outbox_kinds(desk)
    assert staff.count("sla_due_soon") == 1 and staff.count("sla_breached") == 1
    # After the deadline an extension is refused: the breach stands.
    with pytest.raises(ActionRefused, match="passed"):
        extend(desk, ref, (T0 + 60 * DAY).date(), "carrier investigation")


def test_extension_before_the_deadline_moves_it_and_tells_the_buyer(
    desk: Services, clock: FrozenClock
) -> None:
    ref = new_ticket(desk, 2)
    clock.advance(26 * DAY)
    jobs.sla_sweep(desk)
    assert ticket(desk, ref).sla_state == "due_soon"
    done = extend(desk, ref, date(2026, 5, 15), "waiting for the carrier's investigation")
    assert "2026-05-15 23:59" in done.summary
    row = ticket(desk, ref)
    assert row.due_at == datetime(2026, 5, 15, 23, 59, 59, tzinfo=row.due_at.tzinfo)
    assert row.sla_state == "on_track"
    assert "extended" in kinds(desk, ref) and "extension_notice" in outbox_kinds(desk)
    with pytest.raises(ActionRefused, match="later"):
        extend(desk, ref, date(2026, 5, 1), "again")
    clock.advance(10 * DAY)  # past the original deadline, before the new one
    assert ref not in {f"CD-{i:06d}" for i in jobs.sla_sweep(desk).breached}


def test_first_staff_answer_stops_the_clock_met_or_late(desk: Services, clock: FrozenClock) -> None:
    on_time, late = new_ticket(desk, 3), new_ticket(desk, 4)
    clock.advance(10 * DAY)
    assert "met" in reply(desk, on_time, "We refunded your order.").summary
    clock.advance(25 * DAY)
    assert "met_late" in reply(desk, late, "Sorry for the delay: refunded.").summary
    assert ticket(desk, on_time).answered_at == T0 + 10 * DAY
    # A second answer does not move the first answer's time.
    reply(desk, on_time, "One more detail.")
    assert ticket(desk, on_time).answered_at == T0 + 10 * DAY
    assert ticket(desk, on_time).status == "answered"
    # A buyer's follow-up on an answered ticket opens a new 30-day clock.
    follow = claim(message_id="<life3b@example.org>", sender="buyer3@example.org",
                   in_reply_to="<life3@example.org>")  # fmt: skip
    process(RawMessage(data=follow, source="t"), desk)
    row = ticket(desk, on_time)
    assert row.status == "open" and row.answered_at is None
    assert row.due_at == T0 + 35 * DAY + 30 * DAY


def test_buyer_follow_ups_do_not_reset_the_clock(desk: Services, clock: FrozenClock) -> None:
    ref = new_ticket(desk, 5)
    due = ticket(desk, ref).due_at
    clock.advance(3 * DAY)
    follow = claim(message_id="<life5b@example.org>", sender="buyer5@example.org",
                   in_reply_to="<life5@example.org>")  # fmt: skip
    process(RawMessage(data=follow, source="t"), desk)
    assert ticket(desk, ref).due_at == due


def test_close_reopen_assign(desk: Services, clock: FrozenClock) -> None:
    ref = new_ticket(desk, 6)
    assert close(desk, ref).summary == "closed"
    assert close(desk, ref).summary == "already closed"
    assert reopen(desk, ref).summary == "reopened"
    assert assign(desk, ref, "general").summary == "moved to general"
    row = ticket(desk, ref)
    assert row.queue == "general" and row.route_rule == "assigned" and row.missing_fields == []
    assert {"closed", "reopened", "assigned"} <= set(kinds(desk, ref))
    with pytest.raises(ActionRefused, match="unknown queue"):
        assign(desk, ref, "nowhere")


def test_a_missed_report_runs_once_after_a_restart(
    desk: Services, clock: FrozenClock, tmp_path
) -> None:
    new_ticket(desk, 7)
    clock.set(datetime(2026, 3, 3, 8, 0, tzinfo=T0.tzinfo))  # 07:00 report time has passed
    first = SchedulerService(desk)
    first.start()
    assert {j.id for j in first.scheduler.get_jobs()} == {"sla_sweep", "sla_report"}
    for job in first.scheduler.get_jobs():
        assert job.coalesce and job.max_instances == 1 and job.misfire_grace_time == 3600
    first.stop()
    clock.set(datetime(2026, 3, 6, 10, 0, tzinfo=T0.tzinfo))  # down for 3 report times
    second = SchedulerService(desk)
    second.start()
    second.stop()
    third = SchedulerService(desk)
    third.start()
    third.stop()
    with desk.engine.connect() as conn:
        runs = [r.scheduled_for for r in conn.execute(select(JOB_RUN).order_by(JOB_RUN.c.id))]
    assert runs == [
        datetime(2026, 3, 3, 7, 0, tzinfo=T0.tzinfo),
        datetime(2026, 3, 6, 7, 0, tzinfo=T0.tzinfo),
    ]
    files = sorted(p.name for p in (tmp_path / "reports").iterdir())
    assert files == [f"sla-2026-03-0{d}-0700.{x}" for d in (3, 6) for x in ("csv", "html", "json")]
    assert outbox_kinds(desk).count("sla_report") == 2


def test_latest_fire_time_in_the_desk_timezone(make_services, db_url: str) -> None:
    services = make_services(db_url, desk={"timezone": "Europe/Berlin"})
    trigger = report_trigger(services)
    after = datetime(2026, 3, 27, 0, 0, tzinfo=T0.tzinfo)
    now = datetime(2026, 3, 30, 9, 0, tzinfo=T0.tzinfo)  # DST began on the 29th
    fire = latest_fire_time(trigger, after, now)
    assert fire == datetime(2026, 3, 30, 5, 0, tzinfo=T0.tzinfo)  # 07:00 CEST


def test_events_and_staff_mail_counts_are_exact(desk: Services, clock: FrozenClock) -> None:
    for n in range(10, 15):
        new_ticket(desk, n)
    clock.advance(31 * DAY)
    for _ in range(3):
        jobs.sla_sweep(desk)
    with desk.engine.connect() as conn:
        breached = conn.execute(
            select(func.count()).select_from(EVENT).where(EVENT.c.kind == "breached")
        ).scalar_one()
    assert breached == 5
    assert outbox_kinds(desk).count("sla_breached") == 1  # one digest naming all five
