"""Raw message bytes -> `ParsedMessage` (or `Unparseable`): the pipeline's parse step.

Bytes first: the stdlib parser reads the bytes with a compat32-derived policy that leaves
header values undecoded (much faster than `policy.default`, and 8-bit header bytes survive
as surrogate escapes instead of becoming U+FFFD); `mime_headers` decodes them. Well-formed
mail gets the same tree from `mime_fastparse` at a fraction of the cost; anything else goes
to the stdlib parser. The MIME tree is walked once, with a depth and a part-count limit,
into body text, every text for field extraction, links and attachment metadata.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import Parser
from email.policy import Compat32
from functools import lru_cache

from intake import mime_headers as hdr
from intake.mime_attachments import PendingAttachment, attachment_name, content_id
from intake.mime_charset import decode_text
from intake.mime_fastparse import fast_parse
from intake.mime_html import html_to_text, meta_charset
from intake.quotes import split_reply
from intake.types import Attachment, ParsedMessage, Unparseable

MAX_DEPTH = 20
"""Deepest MIME nesting accepted; deeper is refused (flanker's enclosed-endless sample)."""
MAX_PARTS = 1000
"""Most MIME parts accepted in one message; the endless sample has over 3000."""
MAX_CONTAINERS = 64
"""Most multipart/* and message/* declarations accepted, checked before parsing: the stdlib
parser tests every body line against every enclosing boundary, so a deeply nested 25 MB
message would cost it tens of seconds before `MAX_DEPTH` could refuse it."""

_CONTAINER = re.compile(
    rb"^content-type:[ \t]*(?:\r?\n[ \t]+)?(?:multipart|message)/", re.IGNORECASE | re.MULTILINE
)

_CACHED_CONTENT_TYPE_CHARS = 200
_PARAMETER_HEADERS = frozenset({"content-type", "content-disposition"})
_FORWARDED = frozenset({"message/rfc822", "message/global", "message/news"})
# Signature and encryption control parts are not evidence a buyer attached.
_NOT_ATTACHMENTS = frozenset(
    {
        "application/pgp-signature",
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
        "application/pgp-encrypted",
    }
)


class _RawHeaders(Compat32):
    """compat32, except header values come back as parsed (8-bit bytes kept as surrogate
    escapes) instead of as `email.header.Header` objects holding U+FFFD.

    The parameter headers the stdlib itself interprets (boundary, charset, filename) get
    their 8-bit bytes decoded first: `get_boundary()` raises inside the parser on an RFC
    2231 parameter whose charset name holds surrogates (found by fuzzing).
    """

    def header_fetch_parse(self, name: str, value: str) -> str:  # type: ignore[override]
        if not value.isascii() and name.lower() in _PARAMETER_HEADERS:
            return hdr.unescape_8bit(value)
        return value


_POLICY = _RawHeaders()
_PARSER = Parser(policy=_POLICY)


class _Refused(Exception):
    """Raised inside the walk when the message is beyond the limits."""


@dataclass
class _Walk:
    hint: str | None
    body: list[str] = field(default_factory=list)
    field_texts: list[str] = field(default_factory=list)
    links: dict[str, None] = field(default_factory=dict)
    cids: set[str] = field(default_factory=set)
    attachments: list[PendingAttachment] = field(default_factory=list)
    defects: dict[str, None] = field(default_factory=dict)
    parts: int = 0


def parse_message(data: bytes, *, desk_domain: str = "desk.example") -> ParsedMessage | Unparseable:
    """Parse raw message bytes. Never raises.

    Returns `Unparseable(reason)` when the bytes are not a mail message (no header field),
    when the MIME tree is deeper than `MAX_DEPTH` or has more than `MAX_PARTS` parts, or
    when anything unexpected fails ("<ExceptionType>: <message>"). A message without any
    sender address is still a `ParsedMessage` (with `from_address` "").
    """
    try:
        return _parse(data, desk_domain)
    except _Refused as refused:
        return Unparseable(str(refused))
    except RecursionError as exc:
        return Unparseable(f"RecursionError: {exc}")
    except Exception as exc:
        return Unparseable(f"{type(exc).__name__}: {exc}")


def _parse(data: bytes, desk_domain: str) -> ParsedMessage | Unparseable:
    # Every container declaration holds "content-type:"; most mail has a handful, so the
    # regex only runs when there are more than the limit.
    if data.lower().count(b"content-type:") > MAX_CONTAINERS:
        for count, _ in enumerate(_CONTAINER.finditer(data), start=1):
            if count > MAX_CONTAINERS:
                return Unparseable(f"more than {MAX_CONTAINERS} multipart/message containers")
    # What BytesParser does: the bytes as ASCII with surrogate escapes, then the str parser.
    text = data.decode("ascii", errors="surrogateescape")
    msg = fast_parse(text, _POLICY, max_depth=MAX_DEPTH) or _PARSER.parsestr(text)
    raw_headers = [(str(name), str(value)) for name, value in msg.raw_items()]
    if not raw_headers:
        return Unparseable("no header fields: not a mail message")
    # Values by lower-cased name, as `msg.get_all()` returns them for these (non-parameter)
    # headers: one pass instead of a scan of every header for each name looked up.
    fields: dict[str, list[str]] = {}
    for name, value in raw_headers:
        fields.setdefault(name.lower(), []).append(value)
    walk = _Walk(hint=_charset_hint(msg, raw_headers))
    subject = hdr.decode_value(_first(fields, "subject") or "", walk.hint)
    walk.field_texts.append(subject)
    _visit(msg, 0, walk, readable=True)

    attachments = tuple(
        Attachment(
            filename=a.filename,
            content_type=a.content_type,
            size=a.size,
            sha256=a.sha256,
            inline=a.inline or (a.content_id is not None and a.content_id.lower() in walk.cids),
            content_id=a.content_id,
        )
        for a in walk.attachments
    )
    text = "\n\n".join(t for t in walk.body if t.strip())
    own_text, quotes = split_reply(text)
    message_id = hdr.message_id(_first(fields, "message-id"))
    generated = not message_id
    if generated:
        message_id = f"generated-{hashlib.sha256(data).hexdigest()[:32]}@{desk_domain}"
    from_name, from_address = _sender(fields, walk.hint)
    return ParsedMessage(
        message_id=message_id,
        message_id_generated=generated,
        subject=subject,
        from_address=from_address,
        from_name=from_name,
        to=_recipients(fields, "to", walk.hint),
        cc=_recipients(fields, "cc", walk.hint),
        date=hdr.date(hdr.decode_value(_first(fields, "date") or "")),
        in_reply_to=hdr.message_ids(_first(fields, "in-reply-to") or ""),
        references=hdr.message_ids(" ".join(fields.get("references", ()))),
        text=text,
        own_text=own_text,
        quotes=quotes,
        field_texts=tuple(walk.field_texts),
        links=tuple(walk.links),
        attachments=attachments,
        headers=tuple((hdr.clean(n), hdr.decode_value(v, walk.hint)) for n, v in raw_headers),
        content_type=msg.get_content_type(),
        defects=tuple(walk.defects),
    )


def _charset_hint(msg: Message, raw_headers: list[tuple[str, str]]) -> str | None:
    """The first declared non-ASCII charset of a text part, used for 8-bit header bytes
    (short header text defeats detection; such headers are usually in the body's charset).
    Only looked for when some header holds 8-bit bytes."""
    if all(value.isascii() for _, value in raw_headers):
        return None
    stack, seen = [msg], 0
    while stack and seen < 64:
        part = stack.pop()
        seen += 1
        if part.is_multipart():
            stack.extend(reversed(_children(part)))
            continue
        charset = _charset(part)
        if charset and charset not in ("us-ascii", "ascii", "utf-8"):
            return charset
    return None


def _children(part: Message) -> list[Message]:
    """Sub-parts of a multipart or message/* part. (Never call `get_payload()` on a leaf:
    compat32 then decodes it with the raw charset parameter, which can be 8-bit or an RFC
    2231 tuple, and raises.)"""
    payload = part.get_payload()
    return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _first(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _sender(fields: dict[str, list[str]], hint: str | None) -> tuple[str, str]:
    for name in ("from", "sender", "reply-to"):
        found = hdr.addresses(fields.get(name, []), hint)
        if found:
            return found[0]
    return "", ""


def _recipients(fields: dict[str, list[str]], name: str, hint: str | None) -> tuple[str, ...]:
    found = hdr.addresses(fields.get(name, []), hint)
    return tuple(dict.fromkeys(address for _, address in found))


def _charset(part: Message) -> str | None:
    """`part.get_content_charset()`, None when that raises. It reads only the (fetched)
    Content-Type value, and the same few values recur in every message, so the answer is
    kept per value."""
    try:
        value = part.get("content-type")
    except Exception:
        return None
    if value is None:
        return None
    if len(value) > _CACHED_CONTENT_TYPE_CHARS:
        return _charset_of(value)
    return _cached_charset_of(value)


def _charset_of(content_type: str) -> str | None:
    # A fetched value passes this policy's `header_fetch_parse` unchanged (8-bit bytes
    # in it are already decoded), so this part computes what the real one does.
    alone = Message(policy=_POLICY)
    alone.set_raw("Content-Type", content_type)
    try:
        return alone.get_content_charset()
    except Exception:  # malformed RFC 2231 parameters
        return None


_cached_charset_of = lru_cache(maxsize=256)(_charset_of)


def _payload(part: Message, walk: _Walk) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception as exc:
        walk.defects[f"PayloadDecodeError({type(exc).__name__})"] = None
        return b""
    return payload if isinstance(payload, bytes) else b""


def _visit(part: Message, depth: int, walk: _Walk, *, readable: bool) -> None:
    """Walk one part. `readable`: its text/plain and text/html count as the body."""
    walk.parts += 1
    if walk.parts > MAX_PARTS:
        raise _Refused(f"more than {MAX_PARTS} MIME parts")
    if depth > MAX_DEPTH:
        raise _Refused(f"MIME parts nested deeper than {MAX_DEPTH}")
    for defect in part.defects:
        walk.defects[type(defect).__name__] = None
    ctype = part.get_content_type()
    if part.is_multipart():
        children = _children(part)
        if ctype in _FORWARDED:
            for inner in children:
                walk.field_texts.append(hdr.decode_value(inner.get("subject") or "", walk.hint))
                _visit(inner, depth + 1, walk, readable=False)
        elif ctype.startswith("message/"):
            return  # delivery-status, disposition-notification, external-body: header blocks
        elif ctype == "multipart/alternative":
            preferred = _preferred(children)
            for child in children:
                _visit(child, depth + 1, walk, readable=readable and child is preferred)
        else:
            for child in children:
                _visit(child, depth + 1, walk, readable=readable)
        return
    _leaf(part, ctype, walk, readable=readable)


def _preferred(children: list[Message]) -> Message | None:
    """The alternative that becomes the body: the first holding text/plain, else the last."""
    for child in children:
        if _holds_plain(child, 0):
            return child
    return children[-1] if children else None


def _holds_plain(part: Message, depth: int) -> bool:
    if depth > MAX_DEPTH:
        return False
    if part.is_multipart():
        if part.get_content_maintype() == "message":
            return False
        return any(_holds_plain(p, depth + 1) for p in _children(part))
    return part.get_content_type() == "text/plain" and _disposition(part) != "attachment"


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:  # malformed parameters
        return None


def _leaf(part: Message, ctype: str, walk: _Walk, *, readable: bool) -> None:
    maintype, _, subtype = ctype.partition("/")
    data = _payload(part, walk)
    if maintype == "multipart":  # a multipart without usable boundary: its body is text
        maintype, subtype = "text", "plain"
    if maintype == "text":
        charset = _charset(part)
        if subtype == "html" and charset is None:
            charset = meta_charset(data)
        text = decode_text(data, charset).replace("\r\n", "\n").replace("\r", "\n")
        if subtype == "html":
            converted = html_to_text(text)
            text = converted.text
            walk.links.update(dict.fromkeys(converted.links))
            walk.cids.update(converted.cids)
        text = hdr.clean(text)
        if text.strip():
            walk.field_texts.append(text)
        disposition = _disposition(part)
        plain_or_html = subtype in ("plain", "html")
        if disposition == "attachment" or (not plain_or_html and _has_filename(part)):
            _attach(part, ctype, data, disposition, walk)
        elif readable and plain_or_html:
            walk.body.append(text)
        return
    if ctype in _NOT_ATTACHMENTS:
        return
    _attach(part, ctype, data, _disposition(part), walk)


def _has_filename(part: Message) -> bool:
    try:
        return bool(part.get_filename())
    except Exception:
        return False


def _attach(part: Message, ctype: str, data: bytes, disposition: str | None, walk: _Walk) -> None:
    index = len(walk.attachments) + 1
    walk.attachments.append(
        PendingAttachment(
            filename=attachment_name(part, index, ctype, walk.hint),
            content_type=ctype,
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            inline=disposition == "inline",
            content_id=content_id(part.get("content-id")),
        )
    )
