"""A bounce inside intake's one transaction: attach it to the ticket whose reply bounced.

Never opens a ticket. The DSN is stored byte for byte as a message of direction `bounce`
(visible in `tickets show`, never counted as the buyer's), a `bounce` event records what it
said, and a permanent failure marks the address undeliverable (no more auto-replies) and
the outbox row `bounced`. A bounce that names none of our outbox rows returns None: the
caller keeps it in the quarantine spool (stage `bounce`), where staff can see it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from intake.types import Duplicate, ParsedMessage, RawMessage, Stored
from outbound.bounce import BounceReport
from storage import outbox_repo, repo
from storage.models import ticket_ref
from storage.rows import message_row


def record_bounce(
    conn: Connection,
    raw: RawMessage,
    parsed: ParsedMessage,
    report: BounceReport,
    received_at: datetime,
) -> Stored | Duplicate | None:
    existing = repo.find_message(conn, parsed.message_id)
    if existing is not None:
        return Duplicate(ticket=ticket_ref(existing.ticket_id), message_id=parsed.message_id)
    row = outbox_repo.find_by_message_ids(conn, report.message_ids)
    if row is None or row.ticket_id is None:
        return None
    message_pk = repo.insert_message(conn, _message_values(raw, parsed, report, row, received_at))
    detail: dict[str, Any] = {
        "outbox_message_id": row.message_id,
        "outbox_kind": row.kind,
        "recipient": row.recipient,
        "action": report.action,
        "status": report.status,
        "diagnostic": report.diagnostic,
        "undeliverable": report.permanent,
    }
    if report.permanent:
        outbox_repo.mark_undeliverable(
            conn,
            {
                "address": row.recipient,
                "ticket_id": row.ticket_id,
                "outbox_message_id": row.message_id,
                "status": report.status,
                "diagnostic": report.diagnostic,
                "marked_at": received_at,
            },
        )
        outbox_repo.mark_bounced(
            conn, row.id, f"bounced: {report.status or report.action} {report.diagnostic}"[:500]
        )
    repo.add_event(conn, row.ticket_id, "bounce", received_at, detail, message_pk=message_pk)
    return Stored(ticket=ticket_ref(row.ticket_id), message_id=parsed.message_id, created=False)


def _message_values(
    raw: RawMessage, parsed: ParsedMessage, report: BounceReport, row: Any, at: datetime
) -> dict[str, Any]:
    bounce = {
        "action": report.action,
        "status": report.status,
        "recipient": report.recipient,
        "outbox_message_id": row.message_id,
    }
    return message_row(
        raw,
        parsed,
        ticket_id=row.ticket_id,
        direction="bounce",
        received_at=at,
        checks={"bounce": bounce},
    )
