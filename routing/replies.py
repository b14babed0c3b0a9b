"""Which auto-reply a buyer's message is due, and whether we may send it (pure).

Two questions, asked in this order so that a `reply_skipped` event only ever records a reply
that would otherwise have gone out:

1. `due_reply()`: at most one mail per incoming message (style habit 4). A new or reopened
   ticket gets an acknowledgement carrying every request at once (English, missing fields,
   invalid tracking numbers, evidence rules). A follow-up gets a request only when the
   ticket still needs something AND the message changed what it needs (or brought a tracking
   number with a bad check digit): a message that adds nothing, such as a vacation notice,
   is answered by silence, which ends most loops by itself.
2. `header_guard()` / `history_guard()`: RFC 3834 section 2 and Mailman's replybot: never
   answer automatic mail, list mail, bounces, null senders or ourselves; never more than
   `relay.max_auto_replies_per_day` to one address in 24 hours; never an undeliverable one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from intake.types import EvidenceReport, ParsedMessage

AUTO_KINDS: tuple[str, ...] = ("ack", "request")
"""Outbox kinds that are auto-replies (rate-limited per recipient)."""

ReplyKind = Literal["ack", "request"]

# RFC 3834 3.1.7 / 5: anything but "no" marks automatic mail.
_PRECEDENCE_SKIP = frozenset({"bulk", "junk", "list", "auto_reply"})
# Microsoft's X-Auto-Response-Suppress tokens that cover an automatic reply like ours.
_SUPPRESS_TOKENS = frozenset({"all", "autoreply", "oof"})
# Headers vacation programs and list managers put on their own mail.
_MARKER_HEADERS = ("list-id", "list-unsubscribe", "x-autoreply", "x-autorespond", "x-loop")
_ROBOT_LOCALS = frozenset(
    {
        "mailer-daemon",
        "postmaster",
        "noreply",
        "no-reply",
        "no_reply",
        "donotreply",
        "do-not-reply",
        "do_not_reply",
        "listserv",
        "majordomo",
    }
)
_ROBOT_PREFIXES = ("owner-", "bounce")
_ROBOT_SUFFIXES = ("-request", "-owner", "-bounces")


@dataclass(frozen=True)
class Requests:
    """What we ask the buyer for in one mail. `language` is the buyer's language code when
    we ask for English (None: no language request)."""

    language: str | None = None
    missing_fields: tuple[str, ...] = ()
    invalid_tracking_numbers: tuple[str, ...] = ()
    too_many_files: int | None = None
    oversized_files: tuple[str, ...] = ()

    @property
    def any(self) -> bool:
        return bool(
            self.language
            or self.missing_fields
            or self.invalid_tracking_numbers
            or self.too_many_files
            or self.oversized_files
        )

    def names(self) -> list[str]:
        """What the mail includes, for the `reply_queued` event."""
        parts = []
        if self.language:
            parts.append("language_request")
        if self.missing_fields:
            parts.append("missing_fields")
        if self.invalid_tracking_numbers:
            parts.append("invalid_tracking_numbers")
        if self.too_many_files or self.oversized_files:
            parts.append("evidence")
        return parts


@dataclass(frozen=True)
class ReplyDue:
    kind: ReplyKind
    requests: Requests


@dataclass(frozen=True)
class TicketChange:
    """The ticket's needs after this message, and before it (None for a new ticket or a
    reopened one: both are a new claim as far as replies go)."""

    missing_fields: tuple[str, ...]
    language_ok: bool
    language: str
    invalid_tracking_numbers: tuple[str, ...]
    evidence: EvidenceReport
    before_missing: tuple[str, ...] | None = None
    before_language_ok: bool | None = None


def due_reply(change: TicketChange) -> ReplyDue | None:
    """The one reply this message is due, or None."""
    requests = Requests(
        language=None if change.language_ok else change.language,
        missing_fields=change.missing_fields,
        invalid_tracking_numbers=change.invalid_tracking_numbers
        if "tracking_number" in change.missing_fields or change.before_missing is None
        else (),
        too_many_files=change.evidence.files if change.evidence.too_many_files else None,
        oversized_files=change.evidence.oversized,
    )
    if change.before_missing is None:
        return ReplyDue("ack", requests)
    still_needed = bool(change.missing_fields) or not change.language_ok
    progressed = (
        change.missing_fields != change.before_missing
        or change.language_ok != change.before_language_ok
    )
    if (still_needed and progressed) or requests.invalid_tracking_numbers:
        return ReplyDue("request", requests)
    return None


def _local(address: str) -> str:
    return address.rpartition("@")[0].lower() if "@" in address else address.lower()


def is_robot_address(address: str) -> bool:
    """MAILER-DAEMON, postmaster, noreply, list robots: addresses no person reads."""
    local = _local(address)
    return (
        local in _ROBOT_LOCALS
        or local.startswith(_ROBOT_PREFIXES)
        or local.endswith(_ROBOT_SUFFIXES)
    )


def _null(address: str | None) -> bool:
    return address is not None and address.strip() in ("", "<>")


def header_guard(
    parsed: ParsedMessage, envelope_from: str | None, desk_addresses: frozenset[str]
) -> str | None:
    """Why this message must not get an automatic reply (a short reason), or None."""
    first: dict[str, str] = {}  # one pass over the headers: the first value of each name
    for key, value in parsed.headers:
        first.setdefault(key.lower(), value)
    auto = (first.get("auto-submitted") or "").strip().lower()
    if auto and auto.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto}"
    precedence = (first.get("precedence") or "").strip().lower()
    if precedence in _PRECEDENCE_SKIP:
        return f"Precedence: {precedence}"
    suppress = first.get("x-auto-response-suppress") or ""
    tokens = {t.strip().lower() for t in suppress.split(",")}
    if tokens & _SUPPRESS_TOKENS:
        return f"X-Auto-Response-Suppress: {suppress.strip()}"
    for name in _MARKER_HEADERS:
        if name in first:
            return f"{_header_name(name)} present"
    if parsed.content_type.lower() == "multipart/report":
        return "a report (delivery or read notification)"
    # The envelope sender is known from SMTP; after IMAP delivery, Return-Path carries it.
    if _null(envelope_from) or (envelope_from is None and _null(first.get("return-path"))):
        return "null sender"
    sender = parsed.from_address.lower()
    envelope = (envelope_from or "").strip("<>").lower()
    for address in (sender, envelope):
        if address and address in desk_addresses:
            return f"own address {address}"
    # Only From: a forwarder's VERP envelope ("bounces+123@...") may carry a buyer's letter.
    if is_robot_address(sender):
        return f"robot sender {sender}"
    return None


def history_guard(recent_auto_replies: int, limit: int, undeliverable: bool) -> str | None:
    """Why the sender's history forbids another auto-reply, or None."""
    if undeliverable:
        return "recipient undeliverable (bounced)"
    if recent_auto_replies >= limit:
        return f"rate limit: {recent_auto_replies} auto-replies in 24 h (max {limit})"
    return None


def _header_name(lower: str) -> str:
    """`list-id` -> `List-Id` (for readable reasons)."""
    return "-".join(part.capitalize() for part in lower.split("-"))
