"""Attachment names and Content-IDs as senders write them, made safe to show and store.

A filename comes from Content-Disposition or the Content-Type "name" (RFC 2231 handled by
the stdlib), then raw 8-bit bytes and RFC 2047 encoded words (Outlook puts them inside the
quoted parameter, against the RFC) are decoded, the last path component is kept and
pathvalidate removes what no file system accepts. No name: "attachment-N.ext".
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from email.message import Message
from functools import lru_cache

from pathvalidate import FileNameSanitizer

from intake import mime_headers as hdr

_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/pjpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "image/heif": ".heif",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
    "image/svg+xml": ".svg",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/octet-stream": ".bin",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/csv": ".csv",
    "text/calendar": ".ics",
    "message/rfc822": ".eml",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "audio/mpeg": ".mp3",
}
# Built-in table only: the module-level mimetypes database also reads /etc/mime.types,
# which would make generated names depend on the host.
_MIMETYPES = mimetypes.MimeTypes()
# What `pathvalidate.sanitize_filename(name, replacement_text="")` does, without building
# the sanitizer (and its validator) again on every call.
_SANITIZER = FileNameSanitizer()
_CACHED_NAME_CHARS = 255


@dataclass(frozen=True)
class PendingAttachment:
    """An attachment before the whole tree is known (the inline flag may still change)."""

    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool
    content_id: str | None


def extension(content_type: str) -> str:
    known = _EXTENSIONS.get(content_type)
    if known is not None:
        return known
    try:
        guessed = _MIMETYPES.guess_extension(content_type, strict=False)
    except Exception:
        guessed = None
    return guessed or ".bin"


def safe_filename(name: str) -> str:
    """The last path component of `name` without control or reserved characters; "" if
    nothing usable is left (".." and names of only dots or spaces count as nothing)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if len(base) <= _CACHED_NAME_CHARS:
        return _safe_base(base)
    return _sanitize(base)


@lru_cache(maxsize=1024)
def _safe_base(base: str) -> str:
    return _sanitize(base)  # the same few names ("photo.jpg", "image001.png") recur


def _sanitize(base: str) -> str:
    try:
        cleaned = str(_SANITIZER.sanitize(base, replacement_text=""))
    except Exception:
        return ""
    return cleaned.strip().lstrip(".").strip()


def attachment_name(part: Message, index: int, content_type: str, hint: str | None) -> str:
    """Display-safe filename of `part`; "attachment-<index><ext>" when it has none."""
    try:
        raw = part.get_filename()
    except Exception:
        raw = None
    if raw:
        decoded = hdr.clean(hdr.decode_words(hdr.unescape_8bit(hdr.unfold(raw), hint), hint))
        cleaned = safe_filename(decoded)
        if cleaned:
            return cleaned
    return f"attachment-{index}{extension(content_type)}"


def content_id(value: str | None) -> str | None:
    """Content-ID without angle brackets or whitespace; None when absent or empty."""
    if not value:
        return None
    cleaned = "".join(hdr.clean(hdr.unfold(value)).split()).strip("<>")
    return cleaned or None
