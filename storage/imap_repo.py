"""The IMAP cursor: one row per (mailbox, folder). Repository functions never commit.

The invariant the poller keeps, for the folder's current UIDVALIDITY: every message whose UID
is <= `last_uid` is a ticket (or a duplicate, or quarantined) and has had its `after` action,
except the UIDs listed in `retry` (the server did not deliver them: fetched again on every
pass) and in `after_pending` (committed, but the flag or move is not confirmed yet: done again
at the start of the next pass, which is harmless because both actions are idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from storage.models import IMAP_CURSOR


@dataclass(frozen=True)
class Cursor:
    mailbox: str
    folder: str
    uidvalidity: int
    last_uid: int = 0
    retry: tuple[int, ...] = ()
    after_pending: tuple[int, ...] = ()


def _key(mailbox: str, folder: str) -> Any:
    return (IMAP_CURSOR.c.mailbox == mailbox) & (IMAP_CURSOR.c.folder == folder)


def load_cursor(
    conn: Connection, mailbox: str, folder: str, *, for_update: bool = False
) -> Cursor | None:
    """The stored cursor, or None before the first committed batch.

    `for_update` locks the row on PostgreSQL so two processes polling the same folder take
    turns (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    query = select(IMAP_CURSOR).where(_key(mailbox, folder))
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        return None
    return Cursor(
        mailbox=row.mailbox,
        folder=row.folder,
        uidvalidity=int(row.uidvalidity),
        last_uid=int(row.last_uid),
        retry=tuple(int(u) for u in row.retry_uids),
        after_pending=tuple(int(u) for u in row.after_pending),
    )


def save_cursor(conn: Connection, cursor: Cursor, at: datetime, *, exists: bool) -> None:
    """Insert (`exists` False) or update the row. An insert racing another process's insert
    raises IntegrityError, which rolls the caller's batch back."""
    values = {
        "uidvalidity": cursor.uidvalidity,
        "last_uid": cursor.last_uid,
        "retry_uids": list(cursor.retry),
        "after_pending": list(cursor.after_pending),
        "updated_at": at,
    }
    if exists:
        conn.execute(
            update(IMAP_CURSOR).where(_key(cursor.mailbox, cursor.folder)).values(**values)
        )
    else:
        conn.execute(
            insert(IMAP_CURSOR).values(mailbox=cursor.mailbox, folder=cursor.folder, **values)
        )
