"""The auto-reply step of intake's one transaction: decide (routing.replies), guard, enqueue.

The message is stored whatever happens here: a reply that is not due writes nothing, a
reply the guards forbid (or that cannot be composed) is recorded as a `reply_skipped`
event with its reason, and a reply that goes out is one outbox row plus `reply_queued`
(the events go into the record step's one batch insert).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Connection

from config.settings import Settings
from intake.types import ParsedMessage
from outbound.compose import ComposeError, ReplyTarget
from outbound.enqueue import Prerendered, enqueue_prerendered, enqueue_reply, prerender_reply
from routing.replies import AUTO_KINDS, TicketChange, due_reply, header_guard, history_guard
from storage import outbox_repo

log = logging.getLogger("outbound.replies")

RATE_WINDOW = timedelta(hours=24)


def target_of(parsed: ParsedMessage) -> ReplyTarget:
    """Answer the message's author, threaded to it (unless its Message-ID was made up)."""
    return ReplyTarget(
        address=parsed.from_address,
        subject=parsed.subject,
        message_id=None if parsed.message_id_generated else parsed.message_id,
        references=parsed.references,
        display_name=parsed.from_name,
    )


@dataclass(frozen=True)
class StagedReply:
    """The auto-reply step's work that needs no database, done before the transaction:
    why the headers (or the edge) forbid a reply, and the acknowledgement a new ticket
    would get (None: not known beforehand, rendered in the transaction)."""

    header_reason: str | None
    ack: Prerendered | None


def stage_reply(
    settings: Settings,
    *,
    new_ticket: Mapping[str, Any],
    parsed: ParsedMessage,
    envelope_from: str | None,
    change: TicketChange,
    suppressed: str | None = None,
) -> StagedReply:
    """`auto_reply()`'s pure part for this message; `new_ticket` and `change`: the ticket's
    columns (without `id`) and change if the message opens a ticket."""
    reason = suppressed or header_guard(parsed, envelope_from, settings.desk_addresses())
    due = due_reply(change)
    ack = None
    if reason is None and due is not None:
        ack = prerender_reply(
            settings,
            SimpleNamespace(**new_ticket),
            due.kind,
            requests=due.requests,
            target=target_of(parsed),
        )
    return StagedReply(reason, ack)


def auto_reply(
    conn: Connection,
    settings: Settings,
    *,
    ticket: Mapping[str, Any],
    parsed: ParsedMessage,
    envelope_from: str | None,
    change: TicketChange,
    now: datetime,
    suppressed: str | None = None,
    history: tuple[int, bool] | None = None,
    staged: StagedReply | None = None,
    prerendered: Prerendered | None = None,
) -> list[dict[str, Any]]:
    """Queue the reply this message is due, if any and if allowed. `ticket` holds the
    ticket's columns as the transaction leaves them (with `id`). Returns the events to
    record with the message's others (`reply_queued`, or `reply_skipped` with the reason):
    none when no reply is due. `suppressed`: the edge asked for no reply (the reason).
    `history`: the sender's `outbox_repo.sender_history()` for `AUTO_KINDS` since
    `now - RATE_WINDOW`, when the caller read it already in this transaction (the record
    step does, with its dedupe lookup); None: read here. `staged`: `stage_reply()` for
    this message (its header verdict is used); `prerendered`: the reply itself, rendered
    for exactly this ticket and change (`staged.ack` when the message opened the ticket)."""
    due = due_reply(change)
    if due is None:
        return []
    recipient = parsed.from_address
    if staged is not None:
        reason = staged.header_reason
    else:
        reason = suppressed or header_guard(parsed, envelope_from, settings.desk_addresses())
    if reason is None:
        limit = settings.relay.max_auto_replies_per_day
        if history is None:
            history = outbox_repo.sender_history(conn, recipient, AUTO_KINDS, now - RATE_WINDOW)
        recent, undeliverable = history
        reason = history_guard(recent, limit, undeliverable)
    if reason is None and prerendered is not None and prerendered.kind == due.kind:
        queued = enqueue_prerendered(conn, settings, prerendered, int(ticket["id"]), now)
        return [{"kind": "reply_queued", "detail": queued.event_detail}]
    if reason is None:
        try:
            queued = enqueue_reply(
                conn,
                settings,
                int(ticket["id"]),
                due.kind,
                now=now,
                requests=due.requests,
                target=target_of(parsed),
                ticket=SimpleNamespace(**ticket),
                record_event=False,
            )
            return [{"kind": "reply_queued", "detail": queued.event_detail}]
        except ComposeError as exc:
            log.error("%s reply %s not composed: %s", parsed.message_id, due.kind, exc)
            reason = f"compose failed: {exc}"
    log.info("%s reply %s skipped: %s", parsed.message_id, due.kind, reason)
    detail = {"kind": due.kind, "reason": reason, "recipient": recipient}
    return [{"kind": "reply_skipped", "detail": detail}]
