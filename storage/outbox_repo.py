"""Outbox and sender-state statements over a Connection; they never commit.

Claiming is the one place two mailers meet. A row moves `pending -> sending` only through an
UPDATE whose WHERE re-checks that it is still claimable, so of two workers racing for a row
exactly one sees rowcount 1. PostgreSQL first picks candidates with FOR UPDATE SKIP LOCKED
(the workers do not queue behind each other's locks); SQLite's BEGIN IMMEDIATE (see
storage/engine.py) already serialises the claiming transactions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)

from storage.models import MESSAGE, OUTBOX, UNDELIVERABLE
from storage.prepared import Inserts, Prepared

STATUSES = ("pending", "sending", "sent", "failed", "bounced")
_OUTBOX = Inserts(OUTBOX, returning=OUTBOX.c.id)


def insert_outbox(conn: Connection, values: Mapping[str, Any]) -> int:
    return int(_OUTBOX.one(conn, values))


def history_columns(kinds: tuple[str, ...]) -> tuple[Any, Any]:
    """How many auto-replies (`kinds`) the address `:recipient` got after `:since`, and
    whether a bounce marked it undeliverable: two column expressions (storage/repo.py reads
    them together with its dedupe lookup). No cap is needed on the count: the limit itself
    stops new rows, so one address has at most about the limit in any 24 hours. The kinds
    are bound in the statement: nothing to expand per execution."""
    recent = (
        select(func.count())
        .select_from(OUTBOX)
        .where(
            OUTBOX.c.recipient == bindparam("recipient"),
            OUTBOX.c.created_at > bindparam("since"),
            OUTBOX.c.kind.in_([literal(k) for k in kinds]),
        )
        .scalar_subquery()
    )
    undeliverable = exists().where(UNDELIVERABLE.c.address == bindparam("recipient"))
    return recent, undeliverable


@lru_cache(maxsize=4)
def _history_query(kinds: tuple[str, ...]) -> Prepared:
    return Prepared(select(*history_columns(kinds)))


def sender_history(
    conn: Connection, recipient: str, kinds: Sequence[str], since: datetime
) -> tuple[int, bool]:
    """(rows of `kinds` to `recipient` created after `since`; whether the address is
    undeliverable)."""
    params = {"recipient": recipient, "since": since}
    [(count, undeliverable)] = _history_query(tuple(kinds)).rows(conn, params)
    return int(count), bool(undeliverable)


def is_undeliverable(conn: Connection, address: str) -> bool:
    query = select(UNDELIVERABLE.c.id).where(UNDELIVERABLE.c.address == address).limit(1)
    return conn.execute(query).first() is not None


def mark_undeliverable(conn: Connection, values: Mapping[str, Any]) -> None:
    conn.execute(insert(UNDELIVERABLE), dict(values))


def find_by_message_ids(conn: Connection, message_ids: Iterable[str]) -> Row[Any] | None:
    """The outbox row with the first of `message_ids` (in the order given) that is ours."""
    ids = list(dict.fromkeys(message_ids))
    if not ids:
        return None
    rows = {
        r.message_id: r for r in conn.execute(select(OUTBOX).where(OUTBOX.c.message_id.in_(ids)))
    }
    return next((rows[i] for i in ids if i in rows), None)


def latest_inbound(conn: Connection, ticket_id: int) -> Row[Any] | None:
    """The newest buyer message of a ticket (what a notice or staff answer replies to)."""
    columns = (
        MESSAGE.c.id,
        MESSAGE.c.message_id,
        MESSAGE.c.message_id_generated,
        MESSAGE.c.references,
        MESSAGE.c.subject,
        MESSAGE.c.sender,
    )
    query = (
        select(*columns)
        .where(MESSAGE.c.ticket_id == ticket_id, MESSAGE.c.direction == "in")
        .order_by(MESSAGE.c.id.desc())
        .limit(1)
    )
    return conn.execute(query).first()


def _claimable(now: datetime) -> Any:
    c = OUTBOX.c
    return or_(
        and_(c.status == "pending", c.next_attempt_at <= now),
        and_(c.status == "sending", c.locked_until < now),  # its worker died mid-send
    )


def claim(
    conn: Connection, worker: str, now: datetime, locked_until: datetime, limit: int
) -> list[Row[Any]]:
    """Claim up to `limit` due rows for `worker`; returns them (full rows), oldest due first."""
    candidates = (
        select(OUTBOX.c.id)
        .where(_claimable(now))
        .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    claimed: list[int] = []
    for row_id in conn.execute(candidates).scalars():
        result = conn.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == row_id, _claimable(now))
            .values(status="sending", locked_by=worker, locked_until=locked_until)
        )
        if result.rowcount == 1:
            claimed.append(row_id)
    if not claimed:
        return []
    query = select(OUTBOX).where(OUTBOX.c.id.in_(claimed)).order_by(OUTBOX.c.id)
    return list(conn.execute(query))


def finish(conn: Connection, row_id: int, worker: str, values: Mapping[str, Any]) -> bool:
    """Record the outcome of `worker`'s attempt; False when the row is no longer its own
    (its lock expired and another worker took it over)."""
    result = conn.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id == row_id, OUTBOX.c.status == "sending", OUTBOX.c.locked_by == worker)
        .values(**values)
    )
    return result.rowcount == 1


def release(conn: Connection, row_ids: Sequence[int], worker: str) -> None:
    """Give claimed rows back untried (the relay was unreachable before their turn)."""
    if row_ids:
        conn.execute(
            update(OUTBOX)
            .where(
                OUTBOX.c.id.in_(list(row_ids)),
                OUTBOX.c.status == "sending",
                OUTBOX.c.locked_by == worker,
            )
            .values(status="pending", locked_by=None, locked_until=None)
        )


def mark_bounced(conn: Connection, row_id: int, error: str) -> None:
    conn.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id == row_id, OUTBOX.c.status == "sent")
        .values(status="bounced", last_error=error)
    )


def list_rows(conn: Connection, *, status: str | None = None) -> list[Row[Any]]:
    columns = [c for c in OUTBOX.c if c.name not in ("raw", "body_text", "body_html")]
    query = select(*columns).order_by(OUTBOX.c.id)
    if status:
        query = query.where(OUTBOX.c.status == status)
    return list(conn.execute(query))
