"""Values that flow through the intake pipeline.

Everything here is a frozen dataclass with no behaviour beyond trivial properties: the
pipeline's stages (parse -> checks -> route -> store) pass these along, and edges (SMTP,
IMAP, CLI) only ever see a `Disposition`. Nothing in this module does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

FieldName = Literal["order_number", "tracking_number", "product_url", "store_url", "photo"]
FIELD_NAMES: tuple[FieldName, ...] = (
    "order_number",
    "tracking_number",
    "product_url",
    "store_url",
    "photo",
)


@dataclass(frozen=True)
class RawMessage:
    """The exact bytes of one message and where they came from.

    `data` is never modified by any stage; it is what gets stored and quarantined.
    `envelope_to` (SMTP RCPT TO, or the mailbox's address) is the first routing signal;
    `queue_hint` comes from an IMAP mailbox configured with a default queue. `auto_reply`
    False (e.g. `ingest --no-replies` of an old archive) records the reply as skipped.
    """

    data: bytes
    source: str
    envelope_from: str | None = None
    envelope_to: tuple[str, ...] = ()
    queue_hint: str | None = None
    received_at: datetime | None = None
    auto_reply: bool = True


@dataclass(frozen=True)
class Attachment:
    """One attachment or inline part (metadata only; the bytes stay inside the raw message)."""

    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool = False
    content_id: str | None = None

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")


@dataclass(frozen=True)
class Quote:
    """A block of quoted earlier correspondence found in a text part.

    `attribution` is the line that introduced it ("On Mon, X <a@b> wrote:", an Outlook
    "From: ..." header block, "-----Original Message-----"), empty for bare `>` quoting.
    """

    text: str
    attribution: str = ""


@dataclass(frozen=True)
class ParsedMessage:
    """What the parser understood of a message. Text is already decoded to `str`.

    - `text`: the readable body (text/plain preferred, else HTML converted to text), every
      text part joined; stored for display.
    - `own_text`: the buyer's own words: `text` with quotes, forwarded blocks and signature
      removed. The language check reads only this.
    - `quotes`: the removed quoted blocks (field extraction still reads them).
    - `field_texts`: every text the field extractors must read (all text parts including
      HTML converted to text, forwarded message/rfc822 parts); `links` are HTML hrefs.
    """

    message_id: str
    message_id_generated: bool
    subject: str
    from_address: str
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    date: datetime | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str
    own_text: str
    quotes: tuple[Quote, ...]
    field_texts: tuple[str, ...]
    links: tuple[str, ...]
    attachments: tuple[Attachment, ...]
    headers: tuple[tuple[str, str], ...]
    content_type: str
    defects: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        """First value of header `name` (case-insensitive), decoded; None when absent."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None


@dataclass(frozen=True)
class LanguageVerdict:
    """`verdict` is `unknown` when there is too little text to judge (never bounce that)."""

    verdict: Literal["accepted", "not_accepted", "unknown"]
    code: str
    probability: float

    @property
    def ok(self) -> bool:
        return self.verdict != "not_accepted"


@dataclass(frozen=True)
class ClaimFields:
    """Marketplace facts found anywhere in the message (deduplicated, in order of appearance)."""

    order_numbers: tuple[str, ...] = ()
    tracking_numbers: tuple[str, ...] = ()
    invalid_tracking_numbers: tuple[str, ...] = ()
    product_urls: tuple[str, ...] = ()
    store_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvidenceReport:
    """The desk's evidence rule (at most N files, each up to M bytes): reported, never enforced."""

    files: int
    photos: int
    too_many_files: bool
    oversized: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.too_many_files and not self.oversized


@dataclass(frozen=True)
class CheckReport:
    """All check results for one message, collected before any decision."""

    language: LanguageVerdict
    fields: ClaimFields
    evidence: EvidenceReport


@dataclass(frozen=True)
class RouteDecision:
    """Which queue, and the name of the rule that decided (stored as `route_rule`)."""

    queue: str
    rule: str
    reason: str


@dataclass(frozen=True)
class Stored:
    """The message became a new ticket or joined one, and nothing is missing."""

    ticket: str
    message_id: str
    created: bool
    reopened: bool = False
    kind: Literal["stored"] = field(default="stored", init=False)


@dataclass(frozen=True)
class NeedsInfo:
    """Stored, but the buyer must send English text or missing fields (ticket is `waiting`)."""

    ticket: str
    message_id: str
    created: bool
    missing_fields: tuple[str, ...]
    language_ok: bool
    reopened: bool = False
    kind: Literal["needs_info"] = field(default="needs_info", init=False)


@dataclass(frozen=True)
class Duplicate:
    """Seen before (same Message-ID, or same bytes without one): nothing new was created."""

    ticket: str | None
    message_id: str
    kind: Literal["duplicate"] = field(default="duplicate", init=False)


@dataclass(frozen=True)
class Quarantined:
    """Kept aside with its exact bytes in the spool; `quarantine release` feeds it back."""

    quarantine_id: str
    stage: str
    reason: str
    kind: Literal["quarantined"] = field(default="quarantined", init=False)

    @property
    def ticket(self) -> None:
        return None


Disposition = Stored | NeedsInfo | Duplicate | Quarantined


@dataclass(frozen=True)
class Unparseable:
    """The parser could not make a message of these bytes; `reason` says why (for quarantine)."""

    reason: str
