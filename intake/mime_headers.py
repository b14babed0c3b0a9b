"""Header values as sent (folded, 8-bit, RFC 2047 encoded words) turned into plain text.

The parser hands header values over undecoded (see `mime._RawHeaders`): 8-bit bytes are
still there as surrogate escapes. Everything here is pure and never raises on bad input.
"""

from __future__ import annotations

import binascii
import re
from datetime import UTC, datetime, timedelta, timezone
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

from intake.mime_charset import decode_text

# RFC 2047 encoded word, tolerant of what broken senders emit (spaces inside the text,
# an RFC 2231 language suffix on the charset). Every quantifier stops at the next "?", so
# matching stays linear on hostile input.
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,80})\?([bBqQ])\?([^?]*)\?=")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")
# A bracketed id, or a bare token (kept when it holds "@"). Neither alternative can
# backtrack: each character class stops at a delimiter the next token cannot start with.
_ID_TOKEN = re.compile(r"<([^<>]*)>|[^\s<>,;]+")
_COMMENT = re.compile(r"\([^()]*\)")
_WHITESPACE = re.compile(r"\s+")
_CACHED_HEADER_BYTES = 2048
_NOT_PLAIN = re.compile(r"[\r\n\x00]|=\?")  # what `decode_value` may have to change
# Address lists in the shape nearly all mail uses ("a@b", "Name <a@b>", comma-separated),
# parsed here with one pattern; anything else (quotes, comments, groups, routes, stray
# specials or spaces inside the address) goes to `email.utils.getaddresses`. Display-name
# words are runs of the characters its parser (`_parseaddr`) does not stop at, dots
# included (RFC 5322 obs-phrase), as there; address atoms also exclude every Unicode space
# (it drops an atom that `str.strip()` empties).
_ATOM = r'[^()<>@,:;."\[\]\s]+'
_WORD = r'[^()<>@,:;"\[\] \t\r\n]+'
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*"
_SIMPLE_ADDRESS = re.compile(rf"({_ADDR_SPEC})|({_WORD}(?:[ \t]+{_WORD})*)?[ \t]*<({_ADDR_SPEC})>")
_PHRASE_SPACE = re.compile(r"[ \t]+")
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_USUAL_DATE = re.compile(
    r"(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?([0-9]{1,2})"
    r" (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) ([1-9][0-9]{3})"
    r" ([0-9]{2}):([0-9]{2}):([0-9]{2}) ([+-])([0-9]{2})([0-9]{2})"
)


def clean(text: str) -> str:
    """`text` safe to store: no NUL (PostgreSQL refuses it), no lone surrogates."""
    if text.isascii():  # no surrogate: only a NUL can need removing
        return text.replace("\x00", "") if "\x00" in text else text
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", errors="replace").decode("utf-8")
    return text


def unfold(value: str) -> str:
    """RFC 5322 unfolding: drop the line breaks, keep the whitespace that followed them."""
    return value.replace("\r", "").replace("\n", "")


def unescape_8bit(value: str, hint: str | None = None) -> str:
    """Decode raw 8-bit header bytes (SMTPUTF8 or broken senders): UTF-8, else hint, else detect."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raw = value.encode("utf-8", errors="surrogateescape")
        if len(raw) <= _CACHED_HEADER_BYTES:
            return _decode_8bit(raw, hint)
        return decode_text(raw, None, hint=hint)
    return value


@lru_cache(maxsize=512)
def _decode_8bit(raw: bytes, hint: str | None) -> str:
    # Detection costs about a millisecond per call, and the same header bytes are decoded
    # more than once per message (From for the sender and again for `headers`).
    return decode_text(raw, None, hint=hint)


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    data = payload.encode("ascii", errors="replace")
    if encoding in "qQ":
        return binascii.a2b_qp(data, header=True)
    cleaned = _NOT_BASE64.sub("", payload)
    if not cleaned and payload.strip():
        return None  # nothing decodable: keep the word as written
    if len(cleaned) % 4 == 1:  # one stray character cannot be decoded; drop it
        cleaned = cleaned[:-1]
    cleaned += "=" * (-len(cleaned) % 4)
    try:
        return binascii.a2b_base64(cleaned.encode("ascii"))
    except (binascii.Error, ValueError):
        return None


def decode_words(value: str, hint: str | None = None) -> str:
    """Decode RFC 2047 encoded words anywhere in `value`, tolerating broken ones.

    Whitespace between adjacent encoded words is dropped (RFC 2047 section 6.2), and
    adjacent words in one charset are joined as bytes first, because senders split
    multi-byte characters across words. A word that cannot be decoded is kept as written.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    pending_charset: str | None = None
    pending = bytearray()

    def flush() -> None:
        nonlocal pending_charset
        if pending_charset is not None:
            out.append(decode_text(bytes(pending), pending_charset, hint=hint))
            pending.clear()
            pending_charset = None

    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        gap = value[pos : match.start()]
        if gap and not (pending_charset is not None and gap.isspace()):
            flush()
            out.append(gap)
        charset = match.group(1).split("*", 1)[0].lower()
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:
            flush()
            out.append(match.group(0))
        elif pending_charset == charset:
            pending.extend(data)
        else:
            flush()
            pending_charset = charset
            pending.extend(data)
        pos = match.end()
    flush()
    out.append(value[pos:])
    return "".join(out)


def decode_value(value: str, hint: str | None = None) -> str:
    """A whole header value: unfolded, 8-bit decoded, encoded words decoded, stripped."""
    if value.isascii() and not _NOT_PLAIN.search(value):
        return value.strip()  # nothing to unfold, decode or clean
    return clean(decode_words(unescape_8bit(unfold(value), hint), hint)).strip()


def addresses(values: list[str], hint: str | None = None) -> list[tuple[str, str]]:
    """(display name, bare lower-cased address) pairs; entries without "@" are skipped.

    Addresses are split before encoded words are decoded, so a decoded name holding a
    comma or "<" cannot break the split. When that finds nothing, the decoded text is tried
    (some senders encode the whole "Name <addr>" as one encoded word).
    """
    raw = [unescape_8bit(unfold(v), hint) for v in values]
    found = _pairs(raw, hint)
    if not found:
        found = _pairs([decode_words(v, hint) for v in raw if "=?" in v], hint)
    return found


def _pairs(values: list[str], hint: str | None) -> list[tuple[str, str]]:
    result: list[tuple[str, str]] = []
    if not values:
        return result
    for name, addr in simple_addresses(values) or getaddresses(values):
        address = clean(addr).strip().strip("<>").strip().lower()
        if "@" not in address or address.startswith("@") or address.endswith("@"):
            continue
        result.append((clean(decode_words(name, hint)).strip(), address))
    return result


def simple_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """What `email.utils.getaddresses(values)` returns, when every address is in a simple
    shape (see `_SIMPLE_ADDRESS`); None otherwise (and for an empty list entry)."""
    found: list[tuple[str, str]] = []
    for piece in ", ".join(values).split(","):
        match = _SIMPLE_ADDRESS.fullmatch(piece.strip(" \t"))
        if match is None:
            return None
        bare, phrase, routed = match.groups()
        if bare is not None:
            found.append(("", bare))
        else:
            found.append((" ".join(_PHRASE_SPACE.split(phrase)) if phrase else "", routed))
    return found


def message_ids(value: str) -> tuple[str, ...]:
    """Ids from In-Reply-To / References in order, brackets and whitespace removed, deduplicated.

    "<...>" ids are taken as written; ids missing their brackets (separated by whitespace,
    commas or semicolons) are taken when they hold "@"; comments and other garbage
    ("(Your message of ...)") are ignored.
    """
    text = _COMMENT.sub(" ", clean(unfold(value)))
    found: list[str] = []
    for match in _ID_TOKEN.finditer(text):
        bracketed = match.group(1)
        if bracketed is not None:
            found.append(_WHITESPACE.sub("", bracketed))
        elif "@" in match.group(0).strip("@"):
            found.append(match.group(0))
    return tuple(dict.fromkeys(f for f in found if f))


def message_id(value: str | None) -> str:
    """The Message-ID without brackets or whitespace; "" when absent or empty."""
    if value is None:
        return ""
    ids = message_ids(value)
    if ids:
        return ids[0]
    return _WHITESPACE.sub("", clean(unfold(value))).strip("<>")


def _datetime(value: str) -> datetime | None:
    """`email.utils.parsedate_to_datetime(value)` (raising as it does), read directly when
    the date has the shape nearly every mailer writes ("Sun, 01 Mar 2026 10:00:00 +0100"):
    the stdlib's tokenising and fallbacks are pure Python and several times slower."""
    usual = _USUAL_DATE.fullmatch(value)
    if usual is None:
        return parsedate_to_datetime(value)
    day, month, year, hour, minute, second, sign, zone_hours, zone_minutes = usual.groups()
    offset = int(zone_hours) * 3600 + int(zone_minutes) * 60
    when = (int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second))
    if offset == 0 and sign == "-":  # "-0000": no zone known (RFC 5322 3.3)
        return datetime(*when)
    return datetime(*when, tzinfo=timezone(timedelta(seconds=-offset if sign == "-" else offset)))


def date(value: str | None) -> datetime | None:
    """An aware datetime (UTC when the zone is "-0000" or missing), None if unparseable."""
    if not value:
        return None
    try:
        parsed = _datetime(value.strip())
    except Exception:  # the stdlib raises ValueError, TypeError, IndexError, OverflowError
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
