"""Repository functions over a Connection. They read and write; they never commit.

Written with SQLAlchemy Core on the tables SQLModel declares: the intake hot path runs a
handful of statements per message and the ORM's unit of work would cost more than they do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, insert, select, update

from storage.models import ATTACHMENT, EVENT, MESSAGE, OUTBOX, TICKET

# Statements the intake path runs for every message are built once: executing a prebuilt
# statement with a parameter dict skips SQLAlchemy's per-call construction and coercion.
_FIND_MESSAGE = select(MESSAGE.c.id, MESSAGE.c.ticket_id).where(
    MESSAGE.c.message_id == bindparam("message_id")
)
_INSERT_TICKET = insert(TICKET).returning(TICKET.c.id)
_INSERT_MESSAGE = insert(MESSAGE).returning(MESSAGE.c.id)
_INSERT_ATTACHMENT = insert(ATTACHMENT)
_INSERT_EVENT = insert(EVENT)
_EVENT_DEFAULTS = {"message_pk": None, "actor": "claimdesk", "detail": {}}


def find_message(conn: Connection, message_id: str) -> Row[Any] | None:
    """(id, ticket_id) of the stored message with this Message-ID, or None."""
    return conn.execute(_FIND_MESSAGE, {"message_id": message_id}).first()


def ticket_for_message_ids(conn: Connection, message_ids: Sequence[str]) -> int | None:
    """The ticket that one of these Message-IDs (ours in the outbox, or stored mail) belongs to.

    The latest reference wins (References lists the thread oldest first)."""
    if not message_ids:
        return None
    found: dict[str, int] = {}
    for table in (MESSAGE, OUTBOX):
        query = select(table.c.message_id, table.c.ticket_id).where(
            table.c.message_id.in_(list(message_ids)), table.c.ticket_id.is_not(None)
        )
        found.update({mid: tid for mid, tid in conn.execute(query)})
    for message_id in reversed(message_ids):
        if message_id in found:
            return found[message_id]
    return None


def get_ticket(conn: Connection, ticket_id: int, *, for_update: bool = False) -> Row[Any] | None:
    query = select(TICKET).where(TICKET.c.id == ticket_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).first()


def insert_ticket(conn: Connection, values: Mapping[str, Any]) -> int:
    return int(conn.execute(_INSERT_TICKET, dict(values)).scalar_one())


def update_ticket(conn: Connection, ticket_id: int, values: Mapping[str, Any]) -> None:
    conn.execute(update(TICKET).where(TICKET.c.id == ticket_id).values(**values))


def insert_message(conn: Connection, values: Mapping[str, Any]) -> int:
    return int(conn.execute(_INSERT_MESSAGE, dict(values)).scalar_one())


def insert_attachments(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        conn.execute(_INSERT_ATTACHMENT, list(rows))


def add_event(
    conn: Connection,
    ticket_id: int,
    kind: str,
    at: datetime,
    detail: Mapping[str, Any] | None = None,
    *,
    message_pk: int | None = None,
    actor: str = "claimdesk",
) -> None:
    conn.execute(
        _INSERT_EVENT,
        {
            "ticket_id": ticket_id,
            "message_pk": message_pk,
            "kind": kind,
            "at": at,
            "actor": actor,
            "detail": dict(detail or {}),
        },
    )


def add_events(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    params = [{**_EVENT_DEFAULTS, **row} for row in rows]
    if params:
        conn.execute(_INSERT_EVENT, params)


def list_tickets(
    conn: Connection, *, queue: str | None = None, status: str | None = None
) -> list[Row[Any]]:
    query = select(TICKET).order_by(TICKET.c.id)
    if queue:
        query = query.where(TICKET.c.queue == queue)
    if status:
        query = query.where(TICKET.c.status == status)
    return list(conn.execute(query))


def ticket_messages(conn: Connection, ticket_id: int) -> list[Row[Any]]:
    columns = [c for c in MESSAGE.c if c.name != "raw"]
    query = select(*columns).where(MESSAGE.c.ticket_id == ticket_id).order_by(MESSAGE.c.id)
    return list(conn.execute(query))


def message_attachments(conn: Connection, message_pks: Sequence[int]) -> list[Row[Any]]:
    if not message_pks:
        return []
    query = (
        select(ATTACHMENT)
        .where(ATTACHMENT.c.message_pk.in_(list(message_pks)))
        .order_by(ATTACHMENT.c.id)
    )
    return list(conn.execute(query))


def ticket_events(conn: Connection, ticket_id: int) -> list[Row[Any]]:
    query = select(EVENT).where(EVENT.c.ticket_id == ticket_id).order_by(EVENT.c.id)
    return list(conn.execute(query))


def count_tickets(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(TICKET)).scalar_one())
