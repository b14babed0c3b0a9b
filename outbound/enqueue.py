"""`enqueue_reply()`: the one way any mail for a ticket enters the outbox.

Called inside the caller's transaction (intake's record step, the SLA jobs, the desk's
`reply`/`extend` commands), so the mail exists if and only if the decision that wants it
was committed (style habit 10). It renders the kind's templates (what the mail says is
decided here, and a template error reaches the caller), checks the address, and stores the
row with a `reply_queued` event. It decides nothing: whether an automatic reply is allowed
at all is `routing.replies`' question, asked before.

The MIME work (headers through the `email` package, encodings) is `compose_row()`, done by
the mailer at the first attempt: it costs more than the rest of the intake transaction
together. The bytes it makes are stored in `outbox.raw` with the attempt, and a retry sends
those same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from config.settings import Settings
from outbound.compose import (
    SUBJECT_LIMIT,
    Composed,
    ComposeError,
    ReplyTarget,
    compose,
    new_message_id,
    reply_subject,
    thread_ids,
    usable_address,
)
from outbound.ref_slots import REF_PLACEHOLDER
from outbound.templates import TemplateProblem, Templates, Values, load_templates, one_line
from routing.replies import Requests
from storage import outbox_repo, repo
from storage.models import ticket_ref

# RFC 3834 5: our answers to a message are auto-replied, notices we start are
# auto-generated; a staff member's own answer is not automatic at all.
AUTO_SUBMITTED: Mapping[str, str | None] = {
    "ack": "auto-replied",
    "request": "auto-replied",
    "staff_answer": None,
}
DEFAULT_AUTO_SUBMITTED = "auto-generated"


@dataclass(frozen=True)
class Queued:
    outbox_id: int
    message_id: str
    kind: str
    recipient: str
    event_detail: dict[str, Any]


def templates_for(settings: Settings) -> Templates:
    return load_templates(settings.outbound.templates_dir, settings.desk.timezone)


def desk_domain(settings: Settings) -> str:
    return settings.desk.from_address.rpartition("@")[2] or "claimdesk.invalid"


def enqueue_reply(
    conn: Connection,
    settings: Settings,
    ticket_id: int,
    kind: str,
    *,
    now: datetime,
    details: Mapping[str, Any] | None = None,
    requests: Requests | None = None,
    target: ReplyTarget | None = None,
    subject: str | None = None,
    message_pk: int | None = None,
    actor: str = "claimdesk",
    ticket: Any = None,
    record_event: bool = True,
) -> Queued:
    """Render reply `kind` (templates `kind.txt.j2` [+ `kind.html.j2`]) for a ticket and
    put it in the outbox, pending (the mailer builds its bytes: `compose_row()`).

    - `target`: the message answered (threading, recipient); default: the ticket's newest
      buyer message. Pass `ReplyTarget(address=staff, subject=...)` to write to someone else.
    - `details`: kind-specific template values (`details.new_due`, `details.body`, ...).
    - `subject`: default `Re: <target subject> [CD-000042]`.
    - `ticket`: the ticket's current row when the caller has it (saves a read).
    - `record_event=False`: the caller records `reply_queued` itself (`event_detail`).
    Raises ComposeError (nothing written) when the mail cannot be built; LookupError when
    the ticket does not exist.
    """
    ticket = ticket if ticket is not None else repo.get_ticket(conn, ticket_id)
    if ticket is None:
        raise LookupError(f"no ticket {ticket_id}")
    ref = ticket_ref(ticket_id)
    target = target or _newest_buyer_message(conn, ticket)
    try:
        templates = templates_for(settings)
        context = _context(settings, templates, ticket, ref, kind, target, requests, details)
        text, html = templates.render(kind, context)
    except TemplateProblem as exc:
        raise ComposeError(str(exc)) from exc
    recipient = usable_address(target.address)
    in_reply_to, references = thread_ids(target)
    mail = _Mail(
        kind=kind,
        recipient=recipient,
        recipient_name=one_line(target.display_name, limit=100) or None,
        in_reply_to=in_reply_to,
        references=list(references),
        subject=subject or reply_subject(target.subject, ref),
        text=text,
        html=html,
        includes=requests.names() if requests is not None else None,
    )
    queued = _insert(conn, settings, mail, ticket_id, ref, now)
    if record_event:
        detail = queued.event_detail
        repo.add_event(
            conn, ticket_id, "reply_queued", now, detail, message_pk=message_pk, actor=actor
        )
    return queued


@dataclass(frozen=True)
class _Mail:
    """A reply as the outbox stores it, apart from its ticket, Message-ID and times.
    `subject` is not cut to one line yet; `includes`: `Requests.names()`, if any."""

    kind: str
    recipient: str
    recipient_name: str | None
    in_reply_to: str | None
    references: list[str]
    subject: str
    text: str
    html: str | None
    includes: list[str] | None


def _insert(
    conn: Connection, settings: Settings, mail: _Mail, ticket_id: int, ref: str, now: datetime
) -> Queued:
    message_id = new_message_id(ref, mail.kind, desk_domain(settings))
    outbox_id = outbox_repo.insert_outbox(
        conn,
        {
            "ticket_id": ticket_id,
            "kind": mail.kind,
            "status": "pending",
            "recipient": mail.recipient,
            "recipient_name": mail.recipient_name,
            "message_id": message_id,
            "in_reply_to": mail.in_reply_to,
            "references": list(mail.references),
            "subject": one_line(mail.subject, SUBJECT_LIMIT + 40),
            "body_text": mail.text,
            "body_html": mail.html,
            "raw": None,
            "created_at": now,
            "next_attempt_at": now,
            "attempts": 0,
        },
    )
    recipient = mail.recipient
    detail: dict[str, Any] = {"kind": mail.kind, "message_id": message_id, "recipient": recipient}
    if mail.includes is not None:
        detail["includes"] = list(mail.includes)
    return Queued(outbox_id, message_id, mail.kind, mail.recipient, detail)


@dataclass(frozen=True)
class Prerendered:
    """A reply rendered before its ticket has an id (outside the write turn), with
    `REF_PLACEHOLDER` where the ref goes: `enqueue_prerendered()` puts the ref in."""

    mail: _Mail

    @property
    def kind(self) -> str:
        return self.mail.kind


def prerender_reply(
    settings: Settings,
    ticket: Any,
    kind: str,
    *,
    requests: Requests,
    target: ReplyTarget,
) -> Prerendered | None:
    """What `enqueue_reply(..., ticket=ticket, requests=requests, target=target)` would
    queue, for a ticket whose columns (`ticket`, without `id`) are known before its INSERT.
    None when that cannot be known exactly: the templates do more with the ref than print
    it (outbound/ref_slots.py), a template fails or the address is unusable (the caller
    then calls enqueue_reply(), which fails the same way and reports it)."""
    templates = templates_for(settings)
    if not templates.ref_is_plain(templates.reply_templates(kind, requests.language)):
        return None
    try:
        ref = REF_PLACEHOLDER
        context = _context(settings, templates, ticket, ref, kind, target, requests, None)
        text, html = templates.render_shared(kind, context)
        recipient = usable_address(target.address)
    except (TemplateProblem, ComposeError):
        return None
    subject = reply_subject(target.subject, REF_PLACEHOLDER)
    if subject.count(REF_PLACEHOLDER) != 1:  # the buyer's subject held it: not ours to swap
        return None
    in_reply_to, references = thread_ids(target)
    return Prerendered(
        _Mail(
            kind=kind,
            recipient=recipient,
            recipient_name=one_line(target.display_name, limit=100) or None,
            in_reply_to=in_reply_to,
            references=list(references),
            subject=subject,
            text=text,
            html=html,
            includes=requests.names(),
        )
    )


def enqueue_prerendered(
    conn: Connection, settings: Settings, prerendered: Prerendered, ticket_id: int, now: datetime
) -> Queued:
    """Queue a prerendered reply for ticket `ticket_id`, its ref in place of the placeholder:
    the row `enqueue_reply(..., record_event=False)` would have written."""
    ref = ticket_ref(ticket_id)
    mail = prerendered.mail
    filled = replace(
        mail,
        subject=mail.subject.replace(REF_PLACEHOLDER, ref),
        text=mail.text.replace(REF_PLACEHOLDER, ref),
        html=mail.html.replace(REF_PLACEHOLDER, ref) if mail.html is not None else None,
    )
    return _insert(conn, settings, filled, ticket_id, ref, now)


def compose_row(row: Any, settings: Settings) -> Composed:
    """The exact bytes of a queued row (the mailer's first attempt). Raises ComposeError."""
    extra = [("X-Claimdesk-Kind", row.kind)]
    if row.ticket_id is not None:
        extra.insert(0, ("X-Claimdesk-Ticket", ticket_ref(row.ticket_id)))
    return compose(
        target=ReplyTarget(
            address=row.recipient,
            subject=row.subject,
            message_id=row.in_reply_to,
            references=tuple(row.references or ()),
            display_name=row.recipient_name or "",
        ),
        subject=row.subject,
        text=row.body_text,
        html=row.body_html,
        message_id=row.message_id,
        sender=settings.desk.from_address,
        sender_name=settings.outbound.from_name,
        now=row.created_at,
        auto_submitted=AUTO_SUBMITTED.get(row.kind, DEFAULT_AUTO_SUBMITTED),
        extra_headers=tuple(extra),
    )


def _newest_buyer_message(conn: Connection, ticket: Any) -> ReplyTarget:
    row = outbox_repo.latest_inbound(conn, ticket.id)
    if row is None:
        return ReplyTarget(address=ticket.sender, subject=ticket.subject)
    return ReplyTarget(
        address=row.sender,
        subject=row.subject,
        message_id=None if row.message_id_generated else row.message_id,
        references=tuple(row.references),
    )


def _context(
    settings: Settings,
    templates: Templates,
    ticket: Any,
    ref: str,
    kind: str,
    target: ReplyTarget,
    requests: Requests | None,
    details: Mapping[str, Any] | None,
) -> dict[str, Any]:
    checks = settings.checks
    context: dict[str, Any] = {
        "kind": kind,
        "ticket": Values(
            ref=ref,
            queue=ticket.queue,
            status=ticket.status,
            subject=one_line(ticket.subject),
            sender=ticket.sender,
            received_at=ticket.received_at,
            due_at=ticket.due_at,
        ),
        "due": templates.desk_time(ticket.due_at),
        "desk": Values(
            name=settings.outbound.from_name,
            address=settings.desk.from_address,
            timezone=settings.desk.timezone,
        ),
        "original_subject": one_line(target.subject),
        "buyer_name": one_line(target.display_name, limit=100),
        "evidence": Values(
            max_files=checks.max_files,
            max_mb=f"{checks.max_file_bytes / (1024 * 1024):g}",
        ),
        "details": Values(details or {}),
        "requests": _requests(requests),
    }
    if requests is not None and requests.language:
        found = templates.translation(requests.language, context)
        if found is not None:
            context["requests"]["language"]["translation_code"] = found[0]
            context["requests"]["language"]["translation"] = found[1]
    return context


def _requests(requests: Requests | None) -> Values:
    if requests is None:
        requests = Requests()
    language = (
        Values(code=requests.language, translation=None, translation_code=None)
        if requests.language
        else None
    )
    return Values(
        any=requests.any,
        language=language,
        missing_fields=list(requests.missing_fields),
        invalid_tracking_numbers=[one_line(n, 40) for n in requests.invalid_tracking_numbers],
        too_many_files=requests.too_many_files,
        oversized_files=[one_line(name, 120) for name in requests.oversized_files],
    )
