"""Bytes of a declared, wrong or missing charset turned into text, without ever raising.

Mail in the wild declares charsets Python does not know ("x-unknown", "unknown-8bit"),
declares the wrong one, or declares none while sending 8-bit bytes. The order is: the
declared charset (mapped to the superset senders really use), then UTF-8, then the
declared charset again if only a few bytes are invalid, then an optional hint (for short
header text, where detection is weak), then detection with charset_normalizer, and only
then a decode with replacement characters.
"""

from __future__ import annotations

import codecs
from functools import lru_cache

import charset_normalizer

# Labels mapped to the superset senders really mean (the WHATWG Encoding Standard does the
# same): GB2312 mail routinely carries GBK/GB18030 characters, ISO-8859-1 mail carries
# windows-1252 quotes, Shift_JIS mail carries cp932 extensions.
_SUPERSETS = {
    "gb2312": "gb18030",
    "gb_2312-80": "gb18030",
    "csgb2312": "gb18030",
    "euc-cn": "gb18030",
    "x-gbk": "gb18030",
    "gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "chinese": "gb18030",
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "big5": "big5hkscs",
    "windows-874": "cp874",
    "tis-620": "cp874",
    "iso-8859-8-i": "iso8859-8",
    "iso-8859-6-i": "iso8859-6",
    "x-mac-cyrillic": "mac-cyrillic",
    "x-mac-roman": "mac-roman",
    "macintosh": "mac-roman",
    "utf8": "utf-8",
    "x-utf-8": "utf-8",
}

# Codecs Python knows that no mail charset label should ever select.
_REFUSED = frozenset(
    {"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined", "charmap", "mbcs"}
)


@lru_cache(maxsize=512)
def codec_for(label: str | None) -> str | None:
    """Python codec name for a charset label, or None when unknown, absent or refused."""
    if not label:
        return None
    name = label.strip().strip("\"'").strip().lower()
    if not name or len(name) > 40:
        return None
    name = _SUPERSETS.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED:
        return None
    return info.name


def detect(raw: bytes) -> str | None:
    """Text decoded with the charset charset_normalizer finds most likely, or None."""
    try:
        best = charset_normalizer.from_bytes(raw).best()
    except Exception:  # a detector bug must not lose the message
        return None
    if best is None:
        return None
    try:
        return str(best)
    except Exception:
        return None


def _try(raw: bytes, codec: str | None) -> str | None:
    if codec is None:
        return None
    try:
        return raw.decode(codec)
    except (UnicodeError, LookupError, ValueError):
        if codec == "cp1252":  # five bytes are undefined in cp1252 but valid ISO-8859-1
            return raw.decode("latin-1")
        return None


def _mostly(raw: bytes, codec: str | None) -> str | None:
    """`raw` in `codec` when only a few bytes are invalid (a truncated or damaged character):
    the declaration is right, and detection would turn the rest into mojibake."""
    if codec is None:
        return None
    try:
        text = raw.decode(codec, errors="replace")
    except (LookupError, ValueError):
        return None
    return text if text.count("\ufffd") <= max(2, len(text) // 200) else None


def decode_text(raw: bytes, charset: str | None = None, *, hint: str | None = None) -> str:
    """Decode `raw` (never raises). `charset` is the declared label; `hint` a likely one.

    Pure ASCII is returned as is. A declared "us-ascii" with 8-bit bytes is treated as no
    declaration at all (it is always a lie). A declared charset with a few invalid bytes
    is still trusted (those bytes become U+FFFD).
    """
    if raw.isascii():
        return raw.decode("ascii")
    codec = codec_for(charset)
    if codec == "ascii":
        codec = None
    text = _try(raw, codec)
    if text is None and codec != "utf-8":
        text = _try(raw, "utf-8")
    if text is None:
        text = _mostly(raw, codec)
    if text is None and hint is not None:
        hinted = codec_for(hint)
        text = _try(raw, hinted) if hinted not in (None, "ascii", "utf-8") else None
    if text is None:
        text = detect(raw)
    if text is None:
        text = raw.decode(codec or "utf-8", errors="replace")
    return text
