"""The JSON shapes of the contract (ARCHITECTURE.md), built from stored rows.

Field names here are a published contract: outside checks read them. `sla` is computed at
read time from the injected clock, so a listing is right even between scheduler sweeps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row

from config.settings import Settings
from scheduler.sla import sla_state
from storage.models import ticket_ref


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def ticket_json(row: Row[Any], settings: Settings, now: datetime) -> dict[str, Any]:
    queue = settings.queues.get(row.queue)
    warn = queue.warn_before_days if queue else 5
    return {
        "ref": ticket_ref(row.id),
        "queue": row.queue,
        "status": row.status,
        "subject": row.subject,
        "sender": row.sender,
        "language": row.language,
        "language_ok": row.language_ok,
        "order_numbers": list(row.order_numbers),
        "tracking_numbers": list(row.tracking_numbers),
        "invalid_tracking_numbers": list(row.invalid_tracking_numbers),
        "product_urls": list(row.product_urls),
        "store_urls": list(row.store_urls),
        "missing_fields": sorted(row.missing_fields),
        "attachments": row.attachments,
        "route_rule": row.route_rule,
        "received_at": _iso(row.received_at),
        "due_at": _iso(row.due_at),
        "answered_at": _iso(row.answered_at),
        "sla": sla_state(
            due=row.due_at, answered_at=row.answered_at, now=now, warn_before_days=warn
        ),
    }


def message_json(row: Row[Any], attachments: list[Row[Any]]) -> dict[str, Any]:
    return {
        "message_id": row.message_id,
        "direction": row.direction,
        "sender": row.sender,
        "subject": row.subject,
        "received_at": _iso(row.received_at),
        "source": row.source,
        "size": row.size,
        "language": row.language,
        "text": row.text,
        "own_text": row.own_text,
        "checks": row.checks,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "inline": a.inline,
            }
            for a in attachments
        ],
    }


def event_json(row: Row[Any]) -> dict[str, Any]:
    return {"kind": row.kind, "at": _iso(row.at), "actor": row.actor, "detail": row.detail}
