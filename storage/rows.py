"""Column values of a stored message, from the pipeline's values (one place for the mapping)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from intake.types import ParsedMessage, RawMessage


def message_row(
    raw: RawMessage,
    parsed: ParsedMessage,
    *,
    ticket_id: int,
    direction: str,
    received_at: datetime,
    checks: dict[str, Any],
    own_text: str = "",
    language: str = "unknown",
    language_probability: float = 0.0,
) -> dict[str, Any]:
    """A `message` row: the exact bytes, their trace (source, envelope) and what was read."""
    return {
        "ticket_id": ticket_id,
        "direction": direction,
        "message_id": parsed.message_id,
        "message_id_generated": parsed.message_id_generated,
        "raw_sha256": hashlib.sha256(raw.data).hexdigest(),
        "sender": parsed.from_address,
        "subject": parsed.subject,
        "in_reply_to": list(parsed.in_reply_to),
        "references": list(parsed.references),
        "received_at": received_at,
        "source": raw.source,
        "envelope_from": raw.envelope_from,
        "envelope_to": list(raw.envelope_to),
        "size": len(raw.data),
        "raw": raw.data,
        "text": parsed.text,
        "own_text": own_text,
        "language": language,
        "language_probability": language_probability,
        "checks": checks,
    }
