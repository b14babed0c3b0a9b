"""process(): raw bytes to a stored, routed, SLA-stamped ticket, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from config.wiring import Services
from intake.process import NotKept, process
from intake.types import Duplicate, NeedsInfo, Quarantined, RawMessage, Stored
from storage import repo
from storage.models import MESSAGE, ticket_id_from_ref
from tests.conftest import T0
from tests.mail import claim


def run(services: Services, data: bytes, to: tuple[str, ...] = (), **kw: object):
    return process(RawMessage(data=data, source="test", envelope_to=to, **kw), services)  # type: ignore[arg-type]


def ticket(services: Services, ref: str):
    with services.engine.connect() as conn:
        return repo.get_ticket(conn, ticket_id_from_ref(ref))  # type: ignore[arg-type]


def events(services: Services, ref: str) -> list[str]:
    with services.engine.connect() as conn:
        return [e.kind for e in repo.ticket_events(conn, ticket_id_from_ref(ref))]  # type: ignore[arg-type]


def test_complete_dispute_becomes_a_new_ticket_with_its_deadline(services: Services) -> None:
    data = claim()
    result = run(services, data, ("disputes@desk.example",))
    assert isinstance(result, Stored) and result.created
    assert result.ticket == "CD-000001"
    row = ticket(services, result.ticket)
    assert row.queue == "disputes" and row.status == "new"
    assert row.route_rule == "recipient"
    assert row.order_numbers == ["8123456789012345"]
    assert row.tracking_numbers == ["RR123456785CN"]
    assert row.missing_fields == []
    assert row.received_at == T0
    assert row.due_at == T0 + timedelta(days=30)
    with services.engine.connect() as conn:
        raw = conn.execute(select(MESSAGE.c.raw)).scalar_one()
    assert raw == data  # byte for byte
    assert events(services, result.ticket) == ["created", "routed", "reply_queued"]


def test_missing_fields_make_the_ticket_wait(services: Services) -> None:
    result = run(services, claim(order=None, tracking=None), ("disputes@desk.example",))
    assert isinstance(result, NeedsInfo)
    assert result.missing_fields == ("order_number", "tracking_number")
    row = ticket(services, result.ticket)
    assert row.status == "waiting"
    assert "checks_failed" in events(services, result.ticket)


def test_same_message_twice_is_a_duplicate(services: Services) -> None:
    data = claim()
    first = run(services, data, ("disputes@desk.example",))
    second = run(services, data, ("disputes@desk.example",))
    assert isinstance(second, Duplicate) and second.ticket == first.ticket
    with services.engine.connect() as conn:
        assert repo.count_tickets(conn) == 1


def test_same_bytes_without_message_id_are_a_duplicate(services: Services) -> None:
    data = claim(message_id=None)
    first = run(services, data)
    assert isinstance(first, Stored | NeedsInfo)
    assert isinstance(run(services, data), Duplicate)
    other = run(services, claim(message_id=None, subject="Another parcel"))
    assert other.ticket != first.ticket


def test_reply_with_ref_in_subject_joins_the_ticket(services: Services) -> None:
    first = run(services, claim(order=None), ("disputes@desk.example",))
    assert isinstance(first, NeedsInfo)
    reply = claim(
        subject=f"Re: Parcel never arrived [{first.ticket}]",
        body="Here is my order number as you asked.",
        tracking=None,
        product=None,
        store=None,
    )
    second = run(services, reply, ("disputes@desk.example",))
    assert isinstance(second, Stored) and not second.created
    assert second.ticket == first.ticket
    row = ticket(services, first.ticket)
    assert row.status == "open" and row.missing_fields == []


def test_reply_with_references_joins_the_ticket(services: Services) -> None:
    first = run(services, claim(message_id="<first@example.org>"))
    reply = claim(
        subject="Re: something else entirely",
        message_id="<second@example.org>",
        in_reply_to="<first@example.org>",
        references="<first@example.org>",
    )
    second = run(services, reply)
    assert second.ticket == first.ticket and not second.created  # type: ignore[union-attr]


def test_ref_of_someone_elses_ticket_does_not_join_it(services: Services) -> None:
    first = run(services, claim())
    intruder = claim(sender="other@example.net", subject=f"Re: [{first.ticket}] give me")
    second = run(services, intruder)
    assert second.ticket != first.ticket
    assert "thread_ref_ignored" in events(services, second.ticket)  # type: ignore[arg-type]


def test_message_on_answered_ticket_reopens_with_a_new_clock(services: Services, clock) -> None:
    first = run(services, claim(message_id="<a1@example.org>"), ("disputes@desk.example",))
    tid = ticket_id_from_ref(first.ticket)
    with services.engine.begin() as conn:
        repo.update_ticket(conn, tid, {"status": "answered", "answered_at": T0 + timedelta(days=3)})
    clock.advance(timedelta(days=40))
    again = run(services, claim(message_id="<a2@example.org>", in_reply_to="<a1@example.org>"))
    assert isinstance(again, Stored) and again.reopened and again.ticket == first.ticket
    row = ticket(services, first.ticket)
    assert row.status == "open"
    assert row.answered_at is None
    assert row.due_at == T0 + timedelta(days=70)
    assert row.received_at == T0
    assert "reopened" in events(services, first.ticket)


def test_due_date_follows_the_desk_wall_clock_across_dst(make_services, db_url: str, clock) -> None:
    # 2026-03-02 09:30 UTC is 10:30 in Berlin (CET); 30 days later is CEST: still 10:30 local.
    services = make_services(db_url, desk={"timezone": "Europe/Berlin"})
    result = run(services, claim())
    row = ticket(services, result.ticket)
    assert row.due_at == T0 + timedelta(days=30) - timedelta(hours=1)


def test_per_queue_reply_within_days(make_services, db_url: str) -> None:
    services = make_services(
        db_url,
        queues={
            "disputes": {"addresses": ["disputes@desk.example"], "reply_within_days": 10},
            "general": {"addresses": ["support@desk.example"], "fallback": True},
        },
        routing={"order": ["disputes", "general"]},
    )
    row = ticket(services, run(services, claim(), ("disputes@desk.example",)).ticket)
    assert row.due_at == T0 + timedelta(days=10)


def test_garbage_is_quarantined_with_its_exact_bytes(services: Services) -> None:
    data = b"\x00\xff\xfe not a mail message at all \x00"
    result = run(services, data)
    assert isinstance(result, Quarantined) and result.stage == "parse"
    assert services.spool.raw(result.quarantine_id) == data
    assert [e.id for e in services.spool.list()] == [result.quarantine_id]


def test_database_down_quarantines_instead_of_losing(make_services, tmp_path: Path) -> None:
    services = make_services(f"sqlite:///{tmp_path / 'db.sqlite'}")
    services.engine.dispose()
    (tmp_path / "db.sqlite").unlink()
    (tmp_path / "db.sqlite").mkdir()  # the database path is now unusable
    data = claim()
    result = run(services, data)
    assert isinstance(result, Quarantined) and result.stage == "store"
    assert services.spool.raw(result.quarantine_id) == data


def test_nothing_kept_raises_not_kept(make_services, tmp_path: Path) -> None:
    services = make_services(f"sqlite:///{tmp_path / 'db.sqlite'}")
    services.engine.dispose()
    (tmp_path / "db.sqlite").unlink()
    (tmp_path / "db.sqlite").mkdir()
    services.spool.directory = tmp_path / "blocked" / "spool"
    (tmp_path / "blocked").write_text("a file where the spool's parent should be")
    with pytest.raises(NotKept):
        run(services, claim())


def test_route_rule_and_reason_are_stored(services: Services) -> None:
    result = run(
        services,
        claim(
            subject="My account was hacked",
            body="Someone logged into my account and changed the password.",
        ),
        ("support@desk.example",),
    )
    row = ticket(services, result.ticket)
    assert row.queue == "security"
    assert row.route_rule == "keywords:security"
    assert row.route_reason


def test_field_only_in_the_desk_quote_does_not_count(services: Services) -> None:
    first = run(
        services, claim(order=None, message_id="<q1@example.org>"), ("disputes@desk.example",)
    )
    assert isinstance(first, NeedsInfo)
    body = (
        "I do not know where to find it.\n\n"
        f"On Mon, 2 Mar 2026 at 10:00, Claims desk <disputes@desk.example> wrote:\n"
        f"> Your ticket [{first.ticket}] needs an order number, e.g. Order No.: 8000111122223333\n"
    )
    reply = claim(
        subject=f"Re: Parcel never arrived [{first.ticket}]",
        body=body,
        order=None,
        tracking=None,
        product=None,
        store=None,
        in_reply_to="<q1@example.org>",
    )
    second = run(services, reply)
    assert isinstance(second, NeedsInfo)
    assert second.missing_fields == ("order_number",)
    assert ticket(services, first.ticket).order_numbers == []
