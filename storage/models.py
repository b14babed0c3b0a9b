"""The tables. Rows are plain SQLModel classes; the hot path writes through their Core tables.

A ticket's ref is derived from its primary key (`CD-000042`), so it is unique and stable by
construction and needs no second write. A message's `message_id` is unique: it is the dedupe
key (a generated id derived from the raw bytes stands in when the sender gave none).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Index, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from storage.types import RawBytes, UTCDateTime

REF_PREFIX = "CD-"


def ticket_ref(ticket_id: int) -> str:
    """`CD-` and at least six digits."""
    return f"{REF_PREFIX}{ticket_id:06d}"


def ticket_id_from_ref(ref: str) -> int | None:
    """The primary key behind a ref, or None when `ref` is not one of ours."""
    ref = ref.strip().upper()
    digits = ref.removeprefix(REF_PREFIX)
    if digits == ref or len(digits) < 6 or not digits.isdigit():
        return None
    return int(digits)


def _utc(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _empty_list() -> list[Any]:
    return []


def _empty_dict() -> dict[str, Any]:
    return {}


def _json() -> Any:
    # The Core-level default matters: the hot path inserts through Core, not the ORM.
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False, default=_empty_list))


class Ticket(SQLModel, table=True):
    __tablename__ = "ticket"
    __table_args__ = (
        Index("ix_ticket_status_due", "status", "due_at"),
        Index("ix_ticket_queue_status", "queue", "status"),
        # The report: open = not answered by as_of (IS NULL, or a range), answered in a period.
        Index("ix_ticket_answered_at", "answered_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    queue: str
    status: str
    subject: str
    sender: str = Field(index=True)
    language: str
    language_probability: float = 0.0
    language_ok: bool = True
    order_numbers: list[str] = _json()
    tracking_numbers: list[str] = _json()
    invalid_tracking_numbers: list[str] = _json()
    product_urls: list[str] = _json()
    store_urls: list[str] = _json()
    missing_fields: list[str] = _json()
    attachments: int = 0
    photos: int = 0
    route_rule: str
    route_reason: str = ""
    received_at: datetime = _utc()
    clock_started_at: datetime = _utc()
    due_at: datetime = _utc()
    answered_at: datetime | None = _utc(nullable=True)
    closed_at: datetime | None = _utc(nullable=True)
    updated_at: datetime = _utc()
    sla_state: str = "on_track"


class Message(SQLModel, table=True):
    __tablename__ = "message"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(
        sa_column=Column(Integer, ForeignKey("ticket.id"), nullable=False, index=True)
    )
    direction: str = "in"
    message_id: str = Field(unique=True)
    message_id_generated: bool = False
    # Kept for the record, not indexed: dedupe goes by message_id (migration 0007).
    raw_sha256: str
    sender: str
    subject: str
    in_reply_to: list[str] = _json()
    references: list[str] = _json()
    received_at: datetime = _utc()
    source: str = ""
    envelope_from: str | None = None
    envelope_to: list[str] = _json()
    size: int = 0
    raw: bytes = Field(sa_column=Column(RawBytes, nullable=False))
    text: str = ""
    own_text: str = ""
    language: str = "unknown"
    language_probability: float = 0.0
    checks: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, default=_empty_dict)
    )


class Attachment(SQLModel, table=True):
    __tablename__ = "attachment"

    id: int | None = Field(default=None, primary_key=True)
    message_pk: int = Field(
        sa_column=Column(Integer, ForeignKey("message.id"), nullable=False, index=True)
    )
    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool = False
    content_id: str | None = None


class Event(SQLModel, table=True):
    """The audit trail: one row per thing that happened to a ticket, never updated."""

    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_ticket_kind", "ticket_id", "kind"),
        Index("ix_event_kind_at", "kind", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(sa_column=Column(Integer, ForeignKey("ticket.id"), nullable=False))
    message_pk: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("message.id"), nullable=True)
    )
    kind: str
    at: datetime = _utc()
    actor: str = "claimdesk"
    detail: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, default=_empty_dict)
    )


class Outbox(SQLModel, table=True):
    """Mail to send, written in the same transaction as the decision that wants it sent."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        # The auto-reply rate limit counts one recipient's rows of the last 24 hours.
        Index("ix_outbox_recipient_created", "recipient", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(
        default=None, sa_column=Column(Integer, ForeignKey("ticket.id"), nullable=True, index=True)
    )
    kind: str
    status: str = "pending"
    # No index of its own: ix_outbox_recipient_created leads with it (migration 0006).
    recipient: str
    message_id: str = Field(unique=True)
    in_reply_to: str | None = None
    subject: str
    body_text: str
    body_html: str | None = None
    raw: bytes | None = Field(default=None, sa_column=Column(RawBytes, nullable=True))
    # Composed into `raw` by the mailer at the first attempt (the MIME work stays out of the
    # intake transaction): the recipient's display name and the thread's References.
    recipient_name: str | None = None
    references: list[str] = _json()
    created_at: datetime = _utc()
    next_attempt_at: datetime = _utc()
    attempts: int = 0
    sent_at: datetime | None = _utc(nullable=True)
    last_error: str | None = None
    locked_by: str | None = None
    locked_until: datetime | None = _utc(nullable=True)


TICKET = Ticket.__table__  # type: ignore[attr-defined]
MESSAGE = Message.__table__  # type: ignore[attr-defined]
ATTACHMENT = Attachment.__table__  # type: ignore[attr-defined]
EVENT = Event.__table__  # type: ignore[attr-defined]
OUTBOX = Outbox.__table__  # type: ignore[attr-defined]


class Undeliverable(SQLModel, table=True):
    """An address a bounce (a failed DSN for one of our outbox rows) proved undeliverable: it
    gets no more auto-replies. One row per bounce; the address is undeliverable if any row
    names it. Tied to the ticket whose reply bounced, for the audit trail."""

    __tablename__ = "undeliverable"

    id: int | None = Field(default=None, primary_key=True)
    address: str = Field(index=True)
    ticket_id: int = Field(sa_column=Column(Integer, ForeignKey("ticket.id"), nullable=False))
    outbox_message_id: str
    status: str = ""
    diagnostic: str = ""
    marked_at: datetime = _utc()


UNDELIVERABLE = Undeliverable.__table__  # type: ignore[attr-defined]


class ImapCursor(SQLModel, table=True):
    """Where the IMAP poller stands in one folder of one mailbox; written in the same
    transaction as the tickets of each batch (see storage/imap_repo.py for the invariant)."""

    __tablename__ = "imap_cursor"

    mailbox: str = Field(primary_key=True)
    folder: str = Field(primary_key=True)
    # RFC 3501 UIDs and UIDVALIDITY are unsigned 32-bit: too big for a signed INTEGER.
    uidvalidity: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    retry_uids: list[int] = _json()
    after_pending: list[int] = _json()
    updated_at: datetime = _utc()


IMAP_CURSOR = ImapCursor.__table__  # type: ignore[attr-defined]


class JobRun(SQLModel, table=True):
    """One run of a scheduled job for one scheduled time: the unique key makes a missed
    report run once after downtime (not once per missed day) and never twice when several
    processes run the scheduler."""

    __tablename__ = "job_run"
    __table_args__ = (UniqueConstraint("job_id", "scheduled_for", name="uq_job_run"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str
    scheduled_for: datetime = _utc()
    started_at: datetime = _utc()
    detail: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, default=_empty_dict)
    )


JOB_RUN = JobRun.__table__  # type: ignore[attr-defined]
