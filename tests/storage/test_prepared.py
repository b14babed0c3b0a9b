"""The intake path's statements on the driver's cursor (storage/dialect.py: `Prepared`):
they store and read exactly what SQLAlchemy's `execute()` does, on both dialects, and fail
the same way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError, StatementError

from storage import outbox_repo, repo
from storage.engine import make_engine
from storage.models import EVENT, MESSAGE, OUTBOX, TICKET
from storage.prepared import _bind_processor
from storage.schema import ensure_schema

AT = datetime(2026, 3, 1, 23, 30, 5, 1234, tzinfo=timezone(timedelta(hours=3)))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    ensure_schema(engine)
    yield engine
    engine.dispose()


def _ticket(**extra: Any) -> dict[str, Any]:
    return {
        "queue": "disputes",
        "status": "waiting",
        "subject": "Parcel not received «é»",
        "sender": "buyer@example.org",
        "language": "ru",
        "language_probability": 0.987654,
        "language_ok": False,
        "order_numbers": ["8123456789012345"],
        "tracking_numbers": [],
        "invalid_tracking_numbers": ["RR123456780CN"],
        "product_urls": ["https://www.aliexpress.com/item/1005001.html"],
        "store_urls": [],
        "missing_fields": ["photo", "store_url"],
        "attachments": 2,
        "photos": 1,
        "route_rule": "address",
        "route_reason": "sent to disputes@desk.example",
        "received_at": AT,
        "clock_started_at": AT,
        "due_at": AT + timedelta(days=30),
        "updated_at": AT,
        "sla_state": "on_track",
        **extra,
    }


def _message(ticket_id: int, message_id: str) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "direction": "in",
        "message_id": message_id,
        "message_id_generated": True,
        "raw_sha256": "ab" * 32,
        "sender": "buyer@example.org",
        "subject": "s",
        "in_reply_to": [],
        "references": ["a@b", "c@d"],
        "received_at": AT,
        "source": "test",
        "envelope_from": None,
        "envelope_to": ["disputes@desk.example"],
        "size": 4,
        "raw": b"\x00\xff\r\n",
        "text": "text",
        "own_text": "own",
        "language": "en",
        "language_probability": 0.5,
        "checks": {"fields": {"order_numbers": ["1"], "x": []}, "ok": True, "p": 0.25},
    }


def _stored(engine: Engine, table: Any, row_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(table).where(table.c.id == row_id)).one()
    return {k: v for k, v in row._mapping.items() if k != "id"}


def test_rows_are_stored_as_execute_stores_them(engine: Engine) -> None:
    with engine.begin() as conn:
        fast = repo.insert_ticket(conn, _ticket())
        slow = conn.execute(insert(TICKET).returning(TICKET.c.id), _ticket()).scalar_one()
        fast_message = repo.insert_message(conn, _message(fast, "fast@x"))
        slow_message = conn.execute(
            insert(MESSAGE).returning(MESSAGE.c.id), _message(slow, "slow@x")
        ).scalar_one()
    fast_row = _same_rows(engine, (fast, fast_message, "fast@x"), (slow, slow_message, "slow@x"))
    assert bytes(fast_row["raw"]) == b"\x00\xff\r\n"
    assert fast_row["received_at"] == AT and fast_row["received_at"].tzinfo == UTC


def _same_rows(
    engine: Engine, first: tuple[int, int, str], second: tuple[int, int, str]
) -> dict[str, Any]:
    """Assert that two (ticket id, message pk, Message-ID) stored the same ticket and message
    but for their ids; returns the first message's row without them."""
    assert _stored(engine, TICKET, first[0]) == _stored(engine, TICKET, second[0])
    rows = []
    for ticket_id, message_pk, message_id in (first, second):
        row = _stored(engine, MESSAGE, message_pk)
        assert (row.pop("ticket_id"), row.pop("message_id")) == (ticket_id, message_id)
        rows.append(row)
    assert rows[0] == rows[1]
    return rows[0]


def test_rows_bound_before_the_transaction_are_stored_as_execute_stores_them(
    engine: Engine,
) -> None:
    """`bind_ticket()`/`bind_message()` (made in intake's stage(), before the write turn)
    store what insert_ticket()/insert_message() store; the message's ticket id is filled
    in at insert time."""
    ticket = repo.bind_ticket(engine.dialect, _ticket())
    message = repo.bind_message(engine.dialect, _message(0, "bound@x"))
    assert ticket is not None and message is not None
    with engine.begin() as conn:
        bound = repo.insert_bound_ticket(conn, ticket)
        plain = repo.insert_ticket(conn, _ticket())
        bound_message = repo.insert_bound_message(conn, message, bound)
        plain_message = repo.insert_message(conn, _message(plain, "plain@x"))
    _same_rows(engine, (bound, bound_message, "bound@x"), (plain, plain_message, "plain@x"))


def test_a_row_that_cannot_be_bound_is_left_to_the_transaction(engine: Engine) -> None:
    """A value a processor refuses is not bound beforehand: the insert in the transaction
    raises as it always did (and intake quarantines the message)."""
    naive = _ticket(received_at=datetime(2026, 3, 1, 12, 0))
    assert repo.bind_ticket(engine.dialect, naive) is None
    with pytest.raises(StatementError), engine.begin() as conn:
        repo.insert_ticket(conn, naive)


def test_sqlite_times_of_one_object_reuse_their_text() -> None:
    """The SQLite time shortcut keeps the last object's text: the same object gives the same
    text, an equal-looking other one (another zone) its own, and None stays None."""
    from sqlalchemy.dialects import sqlite

    from storage.types import UTCDateTime

    dialect = sqlite.dialect()
    processor = _bind_processor(UTCDateTime(), dialect)
    assert processor is not None
    other = datetime(2026, 3, 1, 23, 30, 5, 1234, tzinfo=timezone(timedelta(hours=-2)))
    text = {AT: "2026-03-01 20:30:05.001234", other: "2026-03-02 01:30:05.001234", None: None}
    for value in (AT, AT, other, AT, None, other, None):
        assert processor(value) == text[value]


def test_get_ticket_reads_what_execute_reads(engine: Engine) -> None:
    with engine.begin() as conn:
        ticket_id = repo.insert_ticket(conn, _ticket())
    with engine.connect() as conn:
        expected = conn.execute(select(TICKET).where(TICKET.c.id == ticket_id)).one()
        for locked in (False, True):
            row = repo.get_ticket(conn, ticket_id, for_update=locked)
            assert row is not None
            assert tuple(row) == tuple(expected)
            assert row._mapping == dict(expected._mapping)
            assert row.due_at == AT + timedelta(days=30) and row.due_at.tzinfo == UTC
            assert row.language_ok is False and row.missing_fields == ["photo", "store_url"]
        assert repo.get_ticket(conn, ticket_id + 1) is None


@pytest.mark.parametrize("count", [1, 3, 40])
def test_events_in_one_statement_or_many(engine: Engine, count: int) -> None:
    with engine.begin() as conn:
        ticket_id = repo.insert_ticket(conn, _ticket())
        rows = [
            {"ticket_id": ticket_id, "kind": f"k{i}", "at": AT, "detail": {"i": i, "l": []}}
            for i in range(count)
        ]
        repo.add_events(conn, rows)
    with engine.connect() as conn:
        stored = repo.ticket_events(conn, ticket_id)
    assert [(e.kind, e.detail, e.actor, e.message_pk, e.at) for e in stored] == [
        (f"k{i}", {"i": i, "l": []}, "claimdesk", None, AT) for i in range(count)
    ]


def test_rows_with_mixed_columns_still_go_in(engine: Engine) -> None:
    with engine.begin() as conn:
        ticket_id = repo.insert_ticket(conn, _ticket())
        repo.add_events(
            conn,
            [
                {"kind": "a", "ticket_id": ticket_id, "at": AT},
                {"ticket_id": ticket_id, "kind": "b", "at": AT, "actor": "staff"},
            ],
        )
    with engine.connect() as conn:
        stored = repo.ticket_events(conn, ticket_id)
    assert [(e.kind, e.actor, e.detail) for e in stored] == [
        ("a", "claimdesk", {}),
        ("b", "staff", {}),
    ]


def test_a_left_out_python_default_is_filled_in(engine: Engine) -> None:
    """A row without a column that has a Python-side default goes through execute()."""
    partial = {k: v for k, v in _ticket().items() if k not in ("order_numbers", "photos")}
    with engine.begin() as conn:
        ticket_id = repo.insert_ticket(conn, partial)
        row = repo.get_ticket(conn, ticket_id)
    assert row is not None and row.order_numbers == [] and row.photos == 0


def test_a_duplicate_message_id_is_an_integrity_error_that_rolls_back_alone(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        ticket_id = repo.insert_ticket(conn, _ticket())
        repo.insert_message(conn, _message(ticket_id, "same@x"))
        with pytest.raises(IntegrityError), conn.begin_nested():
            repo.insert_message(conn, _message(ticket_id, "same@x"))
        # The transaction goes on after the failed SAVEPOINT (PostgreSQL aborts it otherwise).
        found = repo.find_message(conn, "same@x")
        assert found is not None and found.ticket_id == ticket_id
        with conn.begin_nested() as nested:
            repo.add_event(conn, ticket_id, "kept?", AT)
            nested.rollback()
        repo.add_event(conn, ticket_id, "kept", AT)
    with engine.connect() as conn:
        assert [e.kind for e in repo.ticket_events(conn, ticket_id)] == ["kept"]


def test_a_naive_time_is_refused_before_any_sql(engine: Engine) -> None:
    with engine.begin() as conn, pytest.raises(StatementError, match="naive"):
        repo.insert_ticket(conn, _ticket(updated_at=datetime(2026, 1, 1)))


def test_arrival_reads_the_duplicate_and_the_senders_history(engine: Engine) -> None:
    since = AT - timedelta(hours=24)
    with engine.begin() as conn:
        nothing = repo.arrival(conn, "new@x", "buyer@example.org", ("ack", "request"), since)
        assert nothing == (None, 0, False)
        ticket_id = repo.insert_ticket(conn, _ticket())
        message_pk = repo.insert_message(conn, _message(ticket_id, "old@x"))
        for i, kind in enumerate(("ack", "request", "staff_answer")):
            outbox_repo.insert_outbox(conn, _outbox(ticket_id, kind, f"o{i}@desk", AT))
        outbox_repo.insert_outbox(conn, _outbox(ticket_id, "ack", "old@desk", since))
        outbox_repo.mark_undeliverable(
            conn,
            {
                "address": "buyer@example.org",
                "ticket_id": ticket_id,
                "outbox_message_id": "o0@desk",
                "marked_at": AT,
            },
        )
        seen = repo.arrival(conn, "old@x", "buyer@example.org", ("ack", "request"), since)
        assert seen == ((message_pk, ticket_id), 2, True)
        assert outbox_repo.sender_history(conn, "buyer@example.org", ("ack", "request"), since) == (
            2,
            True,
        )
        assert repo.arrival(conn, "new@x", "other@example.org", ("ack",), since) == (None, 0, False)


def _outbox(ticket_id: int, kind: str, message_id: str, at: datetime) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "kind": kind,
        "status": "pending",
        "recipient": "buyer@example.org",
        "recipient_name": None,
        "message_id": message_id,
        "in_reply_to": None,
        "references": [],
        "subject": "Re: s",
        "body_text": "t",
        "body_html": None,
        "raw": None,
        "created_at": at,
        "next_attempt_at": at,
        "attempts": 0,
    }


def test_threading_lookup_takes_the_latest_reference(engine: Engine) -> None:
    with engine.begin() as conn:
        first = repo.insert_ticket(conn, _ticket())
        second = repo.insert_ticket(conn, _ticket())
        repo.insert_message(conn, _message(first, "m1@x"))
        outbox_repo.insert_outbox(conn, _outbox(second, "ack", "o1@desk", AT))
        assert repo.ticket_for_message_ids(conn, ("m1@x", "o1@desk")) == second
        assert repo.ticket_for_message_ids(conn, ("o1@desk", "m1@x", "unknown@x")) == first
        assert repo.ticket_for_message_ids(conn, ("unknown@x",)) is None
        assert repo.ticket_for_message_ids(conn, ()) is None


def test_update_ticket_writes_the_given_columns(engine: Engine) -> None:
    with engine.begin() as conn:
        ticket_id = repo.insert_ticket(conn, _ticket())
        repo.update_ticket(
            conn, ticket_id, {"status": "open", "missing_fields": [], "answered_at": None}
        )
        row = repo.get_ticket(conn, ticket_id)
    assert row is not None and (row.status, row.missing_fields) == ("open", [])
    assert row.queue == "disputes"


def test_statements_survive_a_new_connection(engine: Engine) -> None:
    """The kept cursor belongs to one DBAPI connection; a new one gets its own."""
    with engine.begin() as conn:
        ticket_id = repo.insert_ticket(conn, _ticket())
        message_pk = repo.insert_message(conn, _message(ticket_id, "m@x"))
    with engine.connect() as conn:
        assert repo.find_message(conn, "m@x") == (message_pk, ticket_id)
        conn.rollback()
        conn.invalidate()  # the next statement runs on a new DBAPI connection
        assert repo.find_message(conn, "m@x") == (message_pk, ticket_id)


def test_attachments_of_a_message(engine: Engine) -> None:
    with engine.begin() as conn:
        ticket_id = repo.insert_ticket(conn, _ticket())
        message_pk = repo.insert_message(conn, _message(ticket_id, "m@x"))
        rows = [
            {
                "message_pk": message_pk,
                "filename": f"p{i}.png",
                "content_type": "image/png",
                "size": i,
                "sha256": "cd" * 32,
                "inline": bool(i % 2),
                "content_id": None,
            }
            for i in range(3)
        ]
        repo.insert_attachments(conn, rows)
        stored = repo.message_attachments(conn, [message_pk])
    assert [(a.filename, a.size, a.inline) for a in stored] == [
        ("p0.png", 0, False),
        ("p1.png", 1, True),
        ("p2.png", 2, False),
    ]


@pytest.mark.parametrize(
    "value",
    [[], {}, ["a"], {"a": [1, 'é\n"\\', None, True, False, 1.5, -0.0, 10**20]}, [{"x": {}}]],
)
def test_json_as_sqlalchemy_writes_it(value: Any) -> None:
    dialect = make_engine("sqlite://").dialect
    process = _bind_processor(EVENT.c.detail.type, dialect)
    assert process is not None and process(value) == json.dumps(value)
    stamp = _bind_processor(OUTBOX.c.created_at.type, dialect)
    assert stamp is not None and stamp(AT) == "2026-03-01 20:30:05.001234"
