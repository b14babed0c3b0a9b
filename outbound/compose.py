"""One reply as exact bytes: headers built only through the `email` package (pure).

Every value that came from a buyer (their subject, their display name) goes through
`one_line()` first: decoding an RFC 2047 encoded word can yield CR/LF
(`=?utf-8?q?x=0D=0ABcc:_a@b?=`), and a header value must never carry a line break of its
own. The `email` package then encodes and folds; its header registry would refuse a raw
CR/LF anyway, so a bug here fails loudly instead of injecting a header.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

from outbound.templates import one_line

# 7bit: the relay need not support 8BITMIME; bodies go quoted-printable or base64.
POLICY = SMTP.clone(cte_type="7bit")
MAX_REFERENCES = 10
SUBJECT_LIMIT = 150

# "Re:", "RE[2]:", "AW:", "Sv:", "Antw:", "Odp:", "YNT:", "R:", "RES:", "回复：" ... repeated.
_REPLY_PREFIX = re.compile(
    r"^(?:\s*(?:re|aw|sv|vs|antw|odp|ynt|rif|res|r|回复|回覆|答复)\s*(?:\[\d+\])?\s*[:：])+\s*",
    re.IGNORECASE,
)
_ANY_REF = re.compile(r"\[\s*CD[-\s]?\d{6,}\s*\]", re.IGNORECASE)
_MSG_ID = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")  # printable ASCII, no <, > or spaces
# Whitespace (as str.isspace() sees it) or a control character: never in a recipient.
_NOT_IN_ADDRESS = re.compile(r"[\s\x00-\x1f]")


class ComposeError(Exception):
    """The reply cannot be built (no usable address, a template fails)."""


@dataclass(frozen=True)
class ReplyTarget:
    """The message we answer: threading and addressing come from it. Message-IDs are bare,
    as storage keeps them (`abc@example.org`, no brackets). `message_id` is None when the
    buyer's message had no Message-ID of its own (ours would thread to nothing)."""

    address: str
    subject: str
    message_id: str | None = None
    references: tuple[str, ...] = ()
    display_name: str = ""


@dataclass(frozen=True)
class Composed:
    message_id: str
    recipient: str
    in_reply_to: str | None
    subject: str
    text: str
    html: str | None
    raw: bytes


def reply_subject(original: str, ref: str) -> str:
    """`Re: <original> [CD-000042]`: one "Re:", one ref, whatever the original carried."""
    base = _ANY_REF.sub(" ", one_line(original, limit=1000))
    base = _REPLY_PREFIX.sub("", base)
    base = one_line(base, limit=SUBJECT_LIMIT) or "Your claim"
    return f"Re: {base} [{ref}]"


def new_message_id(ref: str, kind: str, domain: str) -> str:
    """Ours, on the desk's domain, bare: `cd-000042.ack.9f2c...@desk.example`."""
    return f"{ref.lower()}.{kind}.{secrets.token_hex(8)}@{domain}"


def usable_address(addr_spec: str) -> str:
    """`addr_spec` stripped and lower-cased; ComposeError when it could not be a recipient
    (cheap: the `email` package checks the rest when the mail is built)."""
    addr_spec = addr_spec.strip()
    local, _, domain = addr_spec.rpartition("@")
    if not local or not domain or _NOT_IN_ADDRESS.search(addr_spec):
        raise ComposeError(f"not a usable address: {addr_spec!r}")
    return addr_spec.lower()


def thread_ids(target: ReplyTarget) -> tuple[str | None, tuple[str, ...]]:
    """(In-Reply-To, References) of a reply to `target`, bare. Ids that could not be written
    as `<id>` (spaces, brackets, line breaks) are dropped rather than repaired."""
    in_reply_to = target.message_id if _MSG_ID.fullmatch(target.message_id or "") else None
    if in_reply_to is None:
        return None, ()
    chain = [r for r in target.references if r != in_reply_to and _MSG_ID.fullmatch(r)]
    return in_reply_to, (*chain[-(MAX_REFERENCES - 1) :], in_reply_to)


def _address(addr_spec: str, display_name: str = "") -> Address:
    addr_spec = usable_address(addr_spec)
    name = one_line(display_name, limit=100)
    try:
        return Address(display_name=name, addr_spec=addr_spec)
    except (ValueError, IndexError) as exc:
        raise ComposeError(f"not a usable address: {addr_spec!r}: {exc}") from exc


def compose(
    *,
    target: ReplyTarget,
    subject: str,
    text: str,
    html: str | None,
    message_id: str,
    sender: str,
    sender_name: str,
    now: datetime,
    auto_submitted: str | None,
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> Composed:
    """Build the reply and its exact bytes (CRLF line ends, as sent). Raises ComposeError."""
    msg = EmailMessage(policy=POLICY)
    try:
        msg["From"] = _address(sender, sender_name)
        msg["To"] = _address(target.address, target.display_name)
        msg["Subject"] = one_line(subject, limit=SUBJECT_LIMIT + 40)
        msg["Date"] = format_datetime(now)
        msg["Message-ID"] = f"<{message_id}>"
        in_reply_to, references = thread_ids(target)
        if in_reply_to:
            msg["In-Reply-To"] = f"<{in_reply_to}>"
            msg["References"] = " ".join(f"<{r}>" for r in references)
        if auto_submitted:
            msg["Auto-Submitted"] = auto_submitted  # RFC 3834 5
        msg["X-Auto-Response-Suppress"] = "All"  # Exchange/Outlook: no OOF or auto-reply to us
        for name, value in extra_headers:
            msg[name] = one_line(value)
        msg.set_content(text, charset="utf-8")
        if html is not None:
            msg.add_alternative(html, subtype="html", charset="utf-8")
        raw = msg.as_bytes(policy=POLICY)
    except ComposeError:
        raise
    except (ValueError, TypeError) as exc:  # the email package refused a value
        raise ComposeError(f"{type(exc).__name__}: {exc}") from exc
    return Composed(
        message_id=message_id,
        recipient=usable_address(target.address),
        in_reply_to=in_reply_to,
        subject=str(msg["Subject"]),
        text=text,
        html=html,
        raw=raw,
    )
