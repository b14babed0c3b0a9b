"""Recognising a bounce of our own mail (pure).

A bounce is a delivery status notification (RFC 3464: `multipart/report;
report-type=delivery-status`), or a message from MAILER-DAEMON in an older free-text format.
What it reports on is found by Message-ID, best evidence first: the Message-ID of the
returned message or headers (`message/rfc822`, `text/rfc822-headers`), an
`Original-Message-ID`-style field in the report, the DSN's own In-Reply-To/References, and
finally any Message-ID on the desk's domain written anywhere in the first megabyte.
Storage then decides whether one of them is in our outbox.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import message_from_bytes
from email.message import Message
from email.parser import HeaderParser
from email.policy import compat32

from intake.types import ParsedMessage

SCAN_BYTES = 1024 * 1024
_MSG_ID = re.compile(r"<([^<>\s]{1,250})>")  # storage keeps Message-IDs bare
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class BounceReport:
    """`action` as RFC 3464 2.3.3 names it (failed, delayed, delivered, relayed, expanded),
    or `failed` / `delayed` guessed from a free-text bounce."""

    action: str
    status: str
    recipient: str
    diagnostic: str
    message_ids: tuple[str, ...]

    @property
    def permanent(self) -> bool:
        return self.action == "failed" or self.status.startswith("5.")


def is_delivery_report(parsed: ParsedMessage) -> bool:
    if parsed.content_type.lower() != "multipart/report":
        return False
    header = (parsed.header("content-type") or "").lower().replace(" ", "").replace('"', "")
    # RFC 3464, and RFC 6533's internationalised form.
    return "report-type=delivery-status" in header or "report-type=global-delivery-status" in header


def looks_like_bounce(parsed: ParsedMessage) -> bool:
    """A DSN, or mail from MAILER-DAEMON: never a claim, never answered."""
    if is_delivery_report(parsed):
        return True
    return parsed.from_address.rpartition("@")[0].lower() == "mailer-daemon"


def read_bounce(data: bytes, parsed: ParsedMessage, desk_domain: str) -> BounceReport:
    """What the bounce says. Never raises on odd input: a missing field stays empty."""
    msg = message_from_bytes(data[:SCAN_BYTES] if len(data) > SCAN_BYTES else data, policy=compat32)
    fields: dict[str, str] = {}
    returned_ids: list[str] = []
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            fields.update(_status_fields(part))
        elif ctype in ("message/rfc822", "message/global"):
            returned_ids += _ids_of(_first_message(part))
        elif ctype in ("text/rfc822-headers", "text/global-headers"):
            payload = part.get_payload(decode=True) or b""
            returned_ids += _ids_of(HeaderParser().parsestr(payload.decode("ascii", "replace")))
    report_ids = _MSG_ID.findall(
        " ".join(v for k, v in fields.items() if "message-id" in k or "envelope-id" in k)
    )
    own = re.compile(r"<([^<>\s@]{1,200}@" + re.escape(desk_domain) + ")>", re.IGNORECASE)
    scanned = own.findall(data[:SCAN_BYTES].decode("ascii", "replace"))
    ids = [*returned_ids, *report_ids, *parsed.in_reply_to, *reversed(parsed.references)]
    action = fields.get("action", "").lower()
    status = _STATUS.search(fields.get("status", "")) if fields.get("status") else None
    if not action:
        action = "delayed" if "delay" in parsed.subject.lower() else "failed"
    return BounceReport(
        action=action,
        status=status.group(1) if status else "",
        recipient=_address(fields.get("final-recipient") or fields.get("original-recipient", "")),
        diagnostic=" ".join(fields.get("diagnostic-code", "").split())[:500],
        message_ids=tuple(dict.fromkeys([*ids, *scanned])),
    )


def _status_fields(part: Message) -> dict[str, str]:
    """Per-message and first per-recipient fields, lower-cased names (later blocks do not
    override earlier ones: we send one recipient per message)."""
    found: dict[str, str] = {}
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else []
    if not blocks and isinstance(payload, str):
        blocks = [HeaderParser().parsestr(chunk) for chunk in re.split(r"\r?\n\r?\n", payload)]
    for block in blocks:
        if not isinstance(block, Message):
            continue
        for name, value in block.items():
            found.setdefault(name.lower(), str(value))
    return found


def _first_message(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    return None


def _ids_of(msg: Message | None) -> list[str]:
    if msg is None:
        return []
    return _MSG_ID.findall(str(msg.get("message-id", "")))


def _address(field: str) -> str:
    """`rfc822; user@example.org` -> `user@example.org`."""
    value = field.partition(";")[2] if ";" in field else field
    return value.strip().strip("<>").lower()
