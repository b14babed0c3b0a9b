"""The one transaction of `process()`: dedupe, thread or create, store, stamp, record.

Runs on a Connection inside a transaction the caller owns (repositories never commit).
Returns the outcome as a value; a unique-key race on Message-ID surfaces as IntegrityError
for the caller to turn into `Duplicate`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect

from config.settings import Settings
from intake.checks import missing_fields
from intake.types import (
    CheckReport,
    ClaimFields,
    Duplicate,
    NeedsInfo,
    ParsedMessage,
    RawMessage,
    RouteDecision,
    Stored,
)
from outbound.auto_reply import RATE_WINDOW, StagedReply, auto_reply, stage_reply
from outbound.enqueue import Prerendered
from routing.lifecycle import on_buyer_message
from routing.replies import AUTO_KINDS, TicketChange
from routing.threading import thread_keys
from scheduler.sla import due_at
from storage import repo
from storage.models import ticket_id_from_ref, ticket_ref
from storage.prepared import BoundRow
from storage.repo import TicketRow
from storage.rows import message_row

_FIELD_LISTS = (
    "order_numbers",
    "tracking_numbers",
    "invalid_tracking_numbers",
    "product_urls",
    "store_urls",
)


@dataclass(frozen=True)
class Incoming:
    """Everything the transaction needs about one message, decided before it opens."""

    raw: RawMessage
    parsed: ParsedMessage
    report: CheckReport
    route: RouteDecision
    received_at: datetime
    staged: Staged | None = None


@dataclass(frozen=True)
class NewTicket:
    """What a message that opens a ticket writes, apart from the ids: pure, so it can be
    worked out before the transaction (`stage_incoming()`). `events` go around the
    transaction's own (`thread_ref_ignored`): `head` before them, `tail` after."""

    values: dict[str, Any]
    missing: tuple[str, ...]
    change: TicketChange
    head: tuple[dict[str, Any], ...]
    tail: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Staged:
    """The rows of one message, made before the transaction: what the transaction writes
    when the message opens a ticket (or joins one: the message row), ids filled in. Valid
    for `settings` and `received_at` only (`_usable()` checks both)."""

    settings: Settings
    received_at: datetime
    message: dict[str, Any]  # the message row without `ticket_id`
    attachments: tuple[dict[str, Any], ...]  # rows without `message_pk`
    new_ticket: NewTicket
    reply: StagedReply
    # `message` (with a placeholder ticket id) and `new_ticket.values` as driver parameters
    # (`bind_staged()`); None: converted in the transaction.
    message_bound: BoundRow | None = None
    ticket_bound: BoundRow | None = None


def bind_staged(staged: Staged, dialect: Dialect) -> Staged:
    """`staged` with its message and ticket rows converted for `dialect` already: the times
    and JSON of those rows are then not converted in the write turn."""
    message = repo.bind_message(dialect, {"ticket_id": 0, **staged.message})
    ticket = repo.bind_ticket(dialect, staged.new_ticket.values)
    return replace(staged, message_bound=message, ticket_bound=ticket)


def stage_incoming(incoming: Incoming, settings: Settings) -> Staged:
    """The `Staged` rows of `incoming` (no database). Raises what the same work raises in
    the transaction, where it would fail the same way (the caller then leaves it there)."""
    new = new_ticket(incoming, settings)
    reply = stage_reply(
        settings,
        new_ticket=new.values,
        parsed=incoming.parsed,
        envelope_from=incoming.raw.envelope_from,
        change=new.change,
        suppressed=_suppressed(incoming),
    )
    message = _message_values(incoming, 0)
    del message["ticket_id"]
    return Staged(
        settings=settings,
        received_at=incoming.received_at,
        message=message,
        attachments=tuple(_attachment_rows(incoming)),
        new_ticket=new,
        reply=reply,
    )


def _usable(incoming: Incoming, settings: Settings) -> Staged | None:
    staged = incoming.staged
    if staged is None or staged.settings is not settings:
        return None
    return staged if staged.received_at == incoming.received_at else None


def record(
    conn: Connection, incoming: Incoming, settings: Settings, *, now: datetime | None = None
) -> Stored | NeedsInfo | Duplicate:
    """`now` (the injected clock's) stamps queued replies and their rate-limit window;
    default: the message's `received_at`."""
    parsed = incoming.parsed
    now = now or incoming.received_at
    # The dedupe lookup reads the sender's auto-reply history in the same statement: the
    # reply step needs it for almost every message that is not a duplicate.
    seen = repo.arrival(conn, parsed.message_id, parsed.from_address, AUTO_KINDS, now - RATE_WINDOW)
    if seen.message is not None:  # a duplicate never gets a reply either
        return Duplicate(ticket=ticket_ref(seen.message.ticket_id), message_id=parsed.message_id)
    history = (seen.recent_auto_replies, seen.undeliverable)
    ticket, thread_note = _find_thread(conn, parsed)
    staged = _usable(incoming, settings)
    if ticket is None:
        return _create(conn, incoming, settings, thread_note, now, history, staged)
    return _join(conn, incoming, settings, ticket, now, history, staged)


def _find_thread(conn: Connection, parsed: ParsedMessage) -> tuple[TicketRow | None, str]:
    """The ticket this message continues, and a note when a subject ref was not trusted.

    References are trusted as they are (only the thread's participants know our Message-IDs);
    a ref in the subject only when the sender is the ticket's sender, so that nobody joins
    (and reads the replies of) another buyer's ticket by typing its number."""
    keys = thread_keys(parsed)
    by_reference = repo.ticket_for_message_ids(conn, keys.message_ids)
    if by_reference is not None:
        return repo.get_ticket(conn, by_reference, for_update=True), ""
    for ref in keys.refs:
        ticket_id = ticket_id_from_ref(ref)
        ticket = repo.get_ticket(conn, ticket_id, for_update=True) if ticket_id else None
        if ticket is not None and ticket.sender == parsed.from_address:
            return ticket, ""
        if ticket is not None:
            return None, f"subject names {ref}, whose sender is someone else"
    return None, ""


def _message_values(incoming: Incoming, ticket_id: int) -> dict[str, Any]:
    language = incoming.report.language
    return message_row(
        incoming.raw,
        incoming.parsed,
        ticket_id=ticket_id,
        direction="in",
        received_at=incoming.received_at,
        checks=_checks_detail(incoming),
        own_text=incoming.parsed.own_text,
        language=language.code,
        language_probability=language.probability,
    )


def _checks_detail(incoming: Incoming) -> dict[str, Any]:
    report = incoming.report
    return {
        "language": {
            "verdict": report.language.verdict,
            "code": report.language.code,
            "probability": round(report.language.probability, 4),
        },
        "fields": {name: list(getattr(report.fields, name)) for name in _FIELD_LISTS},
        "evidence": {
            "files": report.evidence.files,
            "photos": report.evidence.photos,
            "too_many_files": report.evidence.too_many_files,
            "oversized": list(report.evidence.oversized),
        },
        "route": {
            "queue": incoming.route.queue,
            "rule": incoming.route.rule,
            "reason": incoming.route.reason,
        },
    }


def _attachment_rows(incoming: Incoming) -> list[dict[str, Any]]:
    return [
        {
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.size,
            "sha256": a.sha256,
            "inline": a.inline,
            "content_id": a.content_id,
        }
        for a in incoming.parsed.attachments
    ]


def _store_message(
    conn: Connection, incoming: Incoming, ticket_id: int, staged: Staged | None
) -> int:
    attachments: Sequence[dict[str, Any]]
    if staged is None:
        message_pk = repo.insert_message(conn, _message_values(incoming, ticket_id))
        attachments = _attachment_rows(incoming)
    elif staged.message_bound is not None:
        message_pk = repo.insert_bound_message(conn, staged.message_bound, ticket_id)
        attachments = staged.attachments
    else:
        message_pk = repo.insert_message(conn, {"ticket_id": ticket_id, **staged.message})
        attachments = staged.attachments
    repo.insert_attachments(conn, [{"message_pk": message_pk, **a} for a in attachments])
    return message_pk


def _failed_checks(incoming: Incoming, missing: tuple[str, ...]) -> dict[str, Any] | None:
    """The detail of a `checks_failed` event, or None when every check passed."""
    report = incoming.report
    detail: dict[str, Any] = {}
    if missing:
        detail["missing_fields"] = list(missing)
    if not report.language.ok:
        detail["language"] = report.language.code
        detail["language_probability"] = round(report.language.probability, 4)
    if report.fields.invalid_tracking_numbers:
        detail["invalid_tracking_numbers"] = list(report.fields.invalid_tracking_numbers)
    if report.evidence.too_many_files:
        detail["too_many_files"] = report.evidence.files
    if report.evidence.oversized:
        detail["oversized_files"] = list(report.evidence.oversized)
    return detail or None


def new_ticket(incoming: Incoming, settings: Settings) -> NewTicket:
    """The ticket this message opens when it continues none (`NewTicket`)."""
    parsed, report, route = incoming.parsed, incoming.report, incoming.route
    queue = settings.queues[route.queue]
    missing = missing_fields(queue.required, report.fields, report.evidence.photos)
    needs_info = bool(missing) or not report.language.ok
    transition = on_buyer_message(None, needs_info)
    at = incoming.received_at
    values: dict[str, Any] = {
        "queue": route.queue,
        "status": transition.status,
        "subject": parsed.subject,
        "sender": parsed.from_address,
        "language": report.language.code,
        "language_probability": report.language.probability,
        "language_ok": report.language.ok,
        **{name: list(getattr(report.fields, name)) for name in _FIELD_LISTS},
        "missing_fields": list(missing),
        "attachments": report.evidence.files,
        "photos": report.evidence.photos,
        "route_rule": route.rule,
        "route_reason": route.reason,
        "received_at": at,
        "clock_started_at": at,
        "due_at": due_at(at, queue.reply_within_days, settings.desk.tz),
        "updated_at": at,
        "sla_state": "on_track",
    }
    head = (
        {
            "kind": "created",
            "detail": {"source": incoming.raw.source, "message_id": parsed.message_id},
        },
        {
            "kind": "routed",
            "detail": {"queue": route.queue, "rule": route.rule, "reason": route.reason},
        },
    )
    failed = _failed_checks(incoming, missing)
    change = TicketChange(
        missing_fields=missing,
        language_ok=report.language.ok,
        language=report.language.code,
        invalid_tracking_numbers=report.fields.invalid_tracking_numbers,
        evidence=report.evidence,
    )
    tail = ({"kind": "checks_failed", "detail": failed},) if failed else ()
    return NewTicket(values, missing, change, head, tail)


def _create(
    conn: Connection,
    incoming: Incoming,
    settings: Settings,
    thread_note: str,
    now: datetime,
    history: tuple[int, bool],
    staged: Staged | None,
) -> Stored | NeedsInfo:
    new = staged.new_ticket if staged is not None else new_ticket(incoming, settings)
    values = new.values
    if staged is not None and staged.ticket_bound is not None:
        ticket_id = repo.insert_bound_ticket(conn, staged.ticket_bound)
    else:
        ticket_id = repo.insert_ticket(conn, values)
    message_pk = _store_message(conn, incoming, ticket_id, staged)
    events: list[dict[str, Any]] = list(new.head)
    if thread_note:
        events.append({"kind": "thread_ref_ignored", "detail": {"reason": thread_note}})
    events += new.tail
    events += _reply(
        conn,
        incoming,
        settings,
        {"id": ticket_id, **values},
        new.change,
        now,
        history,
        staged.reply if staged is not None else None,
        staged.reply.ack if staged is not None else None,
    )
    at = incoming.received_at
    repo.add_events(
        conn, [{"ticket_id": ticket_id, "message_pk": message_pk, "at": at, **e} for e in events]
    )
    language_ok = new.change.language_ok
    return _outcome(ticket_id, incoming.parsed.message_id, True, False, new.missing, language_ok)


def _merged(ticket: TicketRow, fields: ClaimFields) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for name in _FIELD_LISTS:
        values = list(getattr(ticket, name))
        values += [v for v in getattr(fields, name) if v not in values]
        merged[name] = values
    return merged


def _join(
    conn: Connection,
    incoming: Incoming,
    settings: Settings,
    ticket: TicketRow,
    now: datetime,
    history: tuple[int, bool],
    staged: Staged | None,
) -> Stored | NeedsInfo:
    parsed, report = incoming.parsed, incoming.report
    queue = settings.queues.get(ticket.queue) or settings.queues[settings.fallback_queue()]
    merged = _merged(ticket, report.fields)
    photos = ticket.photos + report.evidence.photos
    missing = missing_fields(queue.required, ClaimFields(**merged), photos)
    language = report.language if report.language.verdict != "unknown" else None
    language_ok = language.ok if language else ticket.language_ok
    transition = on_buyer_message(ticket.status, bool(missing) or not language_ok)
    at = incoming.received_at
    values: dict[str, Any] = {
        **merged,
        "status": transition.status,
        "missing_fields": list(missing),
        "attachments": ticket.attachments + report.evidence.files,
        "photos": photos,
        "updated_at": at,
        "language_ok": language_ok,
    }
    if language:
        values["language"] = language.code
        values["language_probability"] = language.probability
    if transition.restart_clock:
        values.update(
            clock_started_at=at,
            due_at=due_at(at, queue.reply_within_days, settings.desk.tz),
            answered_at=None,
            closed_at=None,
            sla_state="on_track",
        )
    repo.update_ticket(conn, ticket.id, values)
    message_pk = _store_message(conn, incoming, ticket.id, staged)
    events: list[dict[str, Any]] = [
        {
            "kind": "message_added",
            "detail": {"source": incoming.raw.source, "message_id": parsed.message_id},
        }
    ]
    if transition.reopened:
        events.append(
            {
                "kind": "reopened",
                "detail": {
                    "previous_status": ticket.status,
                    "due_at": values["due_at"].isoformat(),
                },
            }
        )
    if ticket.status != transition.status and not transition.reopened:
        events.append(
            {"kind": "status_changed", "detail": {"from": ticket.status, "to": transition.status}}
        )
    failed = _failed_checks(incoming, missing)
    if failed:
        events.append({"kind": "checks_failed", "detail": failed})
    change = TicketChange(
        missing_fields=missing,
        language_ok=language_ok,
        language=values.get("language", ticket.language),
        invalid_tracking_numbers=report.fields.invalid_tracking_numbers,
        evidence=report.evidence,
        # A reopened ticket is a new claim: acknowledged like one.
        before_missing=None if transition.reopened else tuple(sorted(ticket.missing_fields)),
        before_language_ok=None if transition.reopened else ticket.language_ok,
    )
    merged_row = {**ticket._mapping, **values}
    reply = staged.reply if staged is not None else None
    events += _reply(conn, incoming, settings, merged_row, change, now, history, reply, None)
    repo.add_events(
        conn, [{"ticket_id": ticket.id, "message_pk": message_pk, "at": at, **e} for e in events]
    )
    return _outcome(ticket.id, parsed.message_id, False, transition.reopened, missing, language_ok)


def _reply(
    conn: Connection,
    incoming: Incoming,
    settings: Settings,
    ticket: dict[str, Any],
    change: TicketChange,
    now: datetime,
    history: tuple[int, bool],
    staged: StagedReply | None,
    prerendered: Prerendered | None,
) -> list[dict[str, Any]]:
    """The auto-reply step (outbound/auto_reply.py); `ticket` is the row as this transaction
    leaves it. Returns its events (`reply_queued` or `reply_skipped`) for the batch.
    `prerendered`: the reply, rendered before the transaction for this very ticket."""
    return auto_reply(
        conn,
        settings,
        ticket=ticket,
        parsed=incoming.parsed,
        envelope_from=incoming.raw.envelope_from,
        change=change,
        now=now,
        suppressed=_suppressed(incoming),
        history=history,
        staged=staged,
        prerendered=prerendered,
    )


def _suppressed(incoming: Incoming) -> str | None:
    return None if incoming.raw.auto_reply else "replies off for this import"


def _outcome(
    ticket_id: int,
    message_id: str,
    created: bool,
    reopened: bool,
    missing: tuple[str, ...],
    language_ok: bool,
) -> Stored | NeedsInfo:
    ref = ticket_ref(ticket_id)
    if missing or not language_ok:
        return NeedsInfo(
            ticket=ref,
            message_id=message_id,
            created=created,
            missing_fields=missing,
            language_ok=language_ok,
            reopened=reopened,
        )
    return Stored(ticket=ref, message_id=message_id, created=created, reopened=reopened)
