"""Repository functions over a Connection. They read and write; they never commit.

Written with SQLAlchemy Core on the tables SQLModel declares: the intake hot path runs a
handful of statements per message and the ORM's unit of work would cost more than they do.
Those statements are `Prepared` (storage/dialect.py): compiled once per dialect and run on
the driver's cursor, which costs a fraction of `Connection.execute()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Row,
    bindparam,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from storage import outbox_repo
from storage.models import ATTACHMENT, EVENT, MESSAGE, OUTBOX, TICKET
from storage.prepared import BoundRow, Inserts, Prepared

_FIND_MESSAGE = Prepared(
    select(MESSAGE.c.id, MESSAGE.c.ticket_id).where(MESSAGE.c.message_id == bindparam("message_id"))
)
_TICKETS = Inserts(TICKET, returning=TICKET.c.id)
_MESSAGES = Inserts(MESSAGE, returning=MESSAGE.c.id)
_ATTACHMENTS = Inserts(ATTACHMENT)
_EVENTS = Inserts(EVENT)
_EVENT_COLUMNS = ("ticket_id", "message_pk", "kind", "at", "actor", "detail")
_EVENT_KEYS = frozenset(_EVENT_COLUMNS)
_EVENT_DEFAULTS = {"message_pk": None, "actor": "claimdesk", "detail": {}}


class MessageRef(NamedTuple):
    id: int
    ticket_id: int


def find_message(conn: Connection, message_id: str) -> MessageRef | None:
    """(id, ticket_id) of the stored message with this Message-ID, or None."""
    found = _FIND_MESSAGE.rows(conn, {"message_id": message_id})
    return MessageRef(*found[0]) if found else None


class Arrival(NamedTuple):
    """What the intake transaction reads first about a message: whether it is stored
    already, and its sender's auto-reply history (`outbox_repo.sender_history()`)."""

    message: MessageRef | None
    recent_auto_replies: int
    undeliverable: bool


@lru_cache(maxsize=4)
def _arrival_query(kinds: tuple[str, ...]) -> Prepared:
    same = MESSAGE.c.message_id == bindparam("message_id")
    return Prepared(
        select(
            select(MESSAGE.c.id).where(same).scalar_subquery(),
            select(MESSAGE.c.ticket_id).where(same).scalar_subquery(),
            *outbox_repo.history_columns(kinds),
        )
    )


def arrival(
    conn: Connection, message_id: str, sender: str, kinds: Sequence[str], since: datetime
) -> Arrival:
    """`find_message()` and `outbox_repo.sender_history(sender, kinds, since)` in one
    statement: one round trip where the intake path used to make two."""
    params = {"message_id": message_id, "recipient": sender, "since": since}
    [(pk, ticket_id, recent, undeliverable)] = _arrival_query(tuple(kinds)).rows(conn, params)
    message = MessageRef(pk, ticket_id) if pk is not None else None
    return Arrival(message, int(recent), bool(undeliverable))


@lru_cache(maxsize=64)
def _owners_query(count: int) -> Prepared:
    """Message-ID -> ticket, over stored mail (tag 0) then our outbox (tag 1), for `count`
    ids: one round trip, one statement per length of a References chain."""
    ids = [bindparam(f"id_{i}") for i in range(count)]
    parts = [
        select(literal(tag), table.c.message_id, table.c.ticket_id).where(
            table.c.message_id.in_(ids), table.c.ticket_id.is_not(None)
        )
        for tag, table in ((0, MESSAGE), (1, OUTBOX))
    ]
    return Prepared(union_all(*parts))


def ticket_for_message_ids(conn: Connection, message_ids: Sequence[str]) -> int | None:
    """The ticket that one of these Message-IDs (ours in the outbox, or stored mail) belongs to.

    The latest reference wins (References lists the thread oldest first)."""
    if not message_ids:
        return None
    params = {f"id_{i}": mid for i, mid in enumerate(message_ids)}
    rows = _owners_query(len(message_ids)).rows(conn, params)
    found = {mid: tid for _, mid, tid in sorted(rows, key=lambda r: r[0])}  # outbox last: wins
    for message_id in reversed(message_ids):
        if message_id in found:
            return found[message_id]
    return None


_TICKET_FIELDS = [(c.key, Any) for c in TICKET.c]
_TicketColumns = NamedTuple("_TicketColumns", _TICKET_FIELDS)  # type: ignore[misc]


class TicketRow(_TicketColumns):  # type: ignore[misc,valid-type]
    """A ticket as `get_ticket()` reads it: its columns as attributes, like a Row."""

    __slots__ = ()

    @property
    def _mapping(self) -> dict[str, Any]:
        return self._asdict()


_GET_TICKET = select(TICKET).where(TICKET.c.id == bindparam("ticket_id"))
_TICKET_BY_ID = Prepared(_GET_TICKET)
_TICKET_BY_ID_LOCKED = Prepared(_GET_TICKET.with_for_update())


def get_ticket(conn: Connection, ticket_id: int, *, for_update: bool = False) -> TicketRow | None:
    """The ticket, or None; `for_update` locks its row until the transaction ends (on
    PostgreSQL; SQLite's BEGIN IMMEDIATE holds the whole database already)."""
    locked = for_update and conn.dialect.name == "postgresql"
    found = (_TICKET_BY_ID_LOCKED if locked else _TICKET_BY_ID).rows(conn, {"ticket_id": ticket_id})
    return TicketRow(*found[0]) if found else None


def insert_ticket(conn: Connection, values: Mapping[str, Any]) -> int:
    return int(_TICKETS.one(conn, values))


def bind_ticket(dialect: Dialect, values: Mapping[str, Any]) -> BoundRow | None:
    """`insert_ticket(conn, values)`'s parameters, made before the transaction (None: not
    possible, insert `values` then)."""
    return _TICKETS.bind(dialect, values)


def insert_bound_ticket(conn: Connection, bound: BoundRow) -> int:
    """`insert_ticket()` of the values `bind_ticket()` made `bound` of."""
    return int(_TICKETS.one_bound(conn, bound, {}))


@lru_cache(maxsize=32)
def _update_ticket(keys: tuple[str, ...]) -> Prepared:
    statement = update(TICKET).where(TICKET.c.id == bindparam("ticket_pk"))
    return Prepared(statement, keys)


def update_ticket(conn: Connection, ticket_id: int, values: Mapping[str, Any]) -> None:
    keys = tuple(values)
    if "ticket_pk" in values or any(isinstance(v, ClauseElement) for v in values.values()):
        conn.execute(update(TICKET).where(TICKET.c.id == ticket_id).values(**values))
        return
    _update_ticket(keys).rows(conn, {**values, "ticket_pk": ticket_id})


def insert_message(conn: Connection, values: Mapping[str, Any]) -> int:
    return int(_MESSAGES.one(conn, values))


def bind_message(dialect: Dialect, values: Mapping[str, Any]) -> BoundRow | None:
    """`insert_message(conn, values)`'s parameters, made before the transaction, with
    `ticket_id` (a placeholder in `values`) left for `insert_bound_message()`."""
    return _MESSAGES.bind(dialect, values, ("ticket_id",))


def insert_bound_message(conn: Connection, bound: BoundRow, ticket_id: int) -> int:
    """`insert_message()` of the values `bind_message()` made `bound` of, for `ticket_id`."""
    return int(_MESSAGES.one_bound(conn, bound, {"ticket_id": ticket_id}))


def insert_attachments(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    _ATTACHMENTS.many(conn, rows)


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
    row = {
        "ticket_id": ticket_id,
        "message_pk": message_pk,
        "kind": kind,
        "at": at,
        "actor": actor,
        "detail": dict(detail or {}),
    }
    _EVENTS.many(conn, [row])


def add_events(conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """One driver call for all of them; rows name `ticket_id`, `kind` and `at`, and may name
    `message_pk`, `actor` and `detail`."""
    params = [{**_EVENT_DEFAULTS, **row} for row in rows]
    first = tuple(params[0]) if params else ()
    if any(tuple(p) != first for p in params) and all(p.keys() == _EVENT_KEYS for p in params):
        params = [{k: p[k] for k in _EVENT_COLUMNS} for p in params]  # one column order
    _EVENTS.many(conn, params)


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
