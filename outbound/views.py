"""The JSON shape of an outbox row (`claimdesk outbox list --json`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row

from storage.models import ticket_ref


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def outbox_json(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "ticket": ticket_ref(row.ticket_id) if row.ticket_id is not None else None,
        "kind": row.kind,
        "status": row.status,
        "recipient": row.recipient,
        "message_id": row.message_id,
        "in_reply_to": row.in_reply_to,
        "subject": row.subject,
        "created_at": _iso(row.created_at),
        "next_attempt_at": _iso(row.next_attempt_at),
        "attempts": row.attempts,
        "sent_at": _iso(row.sent_at),
        "last_error": row.last_error,
    }
