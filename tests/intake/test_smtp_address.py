"""The MAIL/RCPT path shortcut (`plain_path`) gives exactly what aiosmtpd's own parse gives."""

from __future__ import annotations

from collections.abc import Callable

from aiosmtpd.smtp import SMTP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from intake.smtp_protocol import Guarded, plain_path

# The characters that decide how a path parses: atext, the specials, spaces, tabs, non-ASCII.
ALPHABET = "aZ09.-+_=!#$%&'*/?^`{|}~@<>()[]:;,\"\\ \t\u00e9\u4e2d"


def _bare(kind: type[SMTP], limit: int) -> SMTP:
    """A protocol object with only what `_getaddr` reads (no event loop, no handler)."""
    protocol = kind.__new__(kind)
    protocol.local_part_limit = limit
    return protocol


def _aiosmtpd(arg: str, limit: int = 0) -> tuple[str | None, str | None]:
    return SMTP._getaddr(_bare(SMTP, limit), arg)


def _guarded(arg: str, limit: int = 0) -> tuple[str | None, str | None]:
    return _bare(Guarded, limit)._getaddr(arg)


_PIECE = st.text(alphabet=ALPHABET, max_size=6)
# Path-shaped input: <local@domain>tail, each part drawn from the tricky alphabet, so that
# most draws come near the shortcut's edge instead of being random noise.
PATHS = st.one_of(
    st.text(alphabet=ALPHABET, max_size=40),
    st.builds(
        lambda local, domain, tail: f"<{local}@{domain}>{tail}",
        st.from_regex(r"[a-z0-9.+\-\"é ]{0,8}", fullmatch=True),
        st.from_regex(r"[a-z0-9.\-\[\] ]{0,8}", fullmatch=True),
        _PIECE,
    ),
)


@given(PATHS)
@settings(max_examples=3000, deadline=None)
@example("<buyer@example.org>")
@example("<buyer@example.org> SIZE=3000 BODY=8BITMIME")
@example("<a.b@c.d>X")
@example("<a@b> ")
@example("<a@b>  SIZE=1")
@example("<a@b> (comment) SIZE=1")
@example("<a..b@c>")
@example("<.a@c>")
@example('<"a b"@c>')
@example("<a@[127.0.0.1]>")
@example("<@route:a@b>")
@example("<>")
def test_plain_paths_parse_as_aiosmtpd_parses_them(arg: str) -> None:
    plain = plain_path(arg)
    if plain is not None:
        assert plain == _aiosmtpd(arg)
    assert _outcome(_guarded, arg) == _outcome(_aiosmtpd, arg)


def _outcome(parse: Callable[[str], object], arg: str) -> object:
    """The result, or the exception's type: aiosmtpd's parse raises on some inputs (e.g.
    IndexError on `0@`), and the shortcut must leave those to it unchanged."""
    try:
        return parse(arg)
    except Exception as exc:  # compared, not handled
        return type(exc)


def test_the_common_forms_take_the_shortcut() -> None:
    assert plain_path("<buyer@example.org>") == ("buyer@example.org", "")
    assert plain_path("<Buyer.Name+tag@mail.example.org> SIZE=3000 SMTPUTF8") == (
        "Buyer.Name+tag@mail.example.org",
        "SIZE=3000 SMTPUTF8",
    )
    assert plain_path('<"quoted"@example.org>') is None
    assert plain_path("<k\u00e4ufer@example.org>") is None  # UTF-8: the full parser


def test_the_local_part_limit_still_applies() -> None:
    long_local = "<" + "a" * 65 + "@example.org>"
    assert _guarded(long_local, limit=64) == (None, None) == _aiosmtpd(long_local, limit=64)
    assert _guarded("<abc@example.org>", limit=64) == ("abc@example.org", "")
