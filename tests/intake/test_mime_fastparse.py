"""The fast MIME parser builds the stdlib parser's tree, or declines: on every shared sample,
our own mail, generated claims, generated MIME structures and mutated samples."""

from __future__ import annotations

import re
import time
from email.message import Message
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.corpus import generate
from intake.mime import _POLICY, MAX_DEPTH
from intake.mime_fastparse import (
    _FIELD,
    _FIELD_SOURCE,
    _ONLY_BOUNDARY,
    _boundary,
    _header_fields,
    fast_parse,
)
from tests.intake.test_mime import (
    MAIL,
    SAMPLE_FILES,
    SLOW_SECONDS,
    mutated_samples,
    typical_message,
)

STDLIB = Parser(policy=_POLICY)
OUR_MAIL = sorted(MAIL.glob("*.eml"))
CLAIMS = list(generate(40, seed=3))


def tree(msg: Message) -> tuple[Any, ...]:
    """Everything the parser decides about a message, recursively."""
    payload: Any = msg._payload
    if isinstance(payload, list):
        payload = [tree(p) for p in payload]
    return (
        msg._headers,
        msg.get_unixfrom(),
        payload,
        msg.preamble,
        msg.epilogue,
        [type(d).__name__ for d in msg.defects],
        msg.get_default_type(),
    )


def text_of(data: bytes) -> str:
    return data.decode("ascii", errors="surrogateescape")  # as BytesParser reads bytes


def assert_agrees(text: str) -> bool:
    """The fast tree equals the stdlib's; returns whether the fast path took the message."""
    fast = fast_parse(text, _POLICY, max_depth=MAX_DEPTH)
    if fast is not None:
        assert tree(fast) == tree(STDLIB.parsestr(text))
    return fast is not None


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.mark.parametrize("line_ends", ["as-stored", "crlf"])
@pytest.mark.parametrize(
    "path", [*SAMPLE_FILES, *OUR_MAIL], ids=lambda p: p.name if p.parent == MAIL else str(p)
)
def test_agrees_with_the_stdlib_on_samples(path: Path, line_ends: str) -> None:
    data = path.read_bytes()
    assert_agrees(text_of(crlf(data) if line_ends == "crlf" else data))


def test_typical_mail_takes_the_fast_path() -> None:
    messages = [typical_message(), *CLAIMS, *(crlf(m) for m in CLAIMS)]
    messages += [(MAIL / n).read_bytes() for n in ("forwarded.eml", "attachments.eml")]
    assert all(assert_agrees(text_of(m)) for m in messages)


@pytest.mark.parametrize(
    ("reason", "text"),
    [
        ("bare CR", "Subject: x\r\rbody"),
        ("no blank line", "Subject: x\nTo: y\n"),
        ("unix From line", "From someone Mon Jan 1\nSubject: x\n\nbody"),
        ("continuation first", " x\nSubject: y\n\nbody"),
        ("digest", 'Content-Type: multipart/digest; boundary="b"\n\n--b\n\nx\n--b--\n'),
        ("delivery status", "Content-Type: message/delivery-status\n\nAction: failed\n"),
        ("no boundary", "Content-Type: multipart/mixed\n\nx\n"),
        ("no close boundary", 'Content-Type: multipart/mixed; boundary="b"\n\n--b\n\nx\n'),
        ("encoded multipart", "Content-Type: multipart/mixed; boundary=b\n"
         "Content-Transfer-Encoding: base64\n\n--b\n\nx\n--b--\n"),
    ],
)  # fmt: skip
def test_declines_what_only_the_stdlib_does(reason: str, text: str) -> None:
    assert fast_parse(text, _POLICY, max_depth=MAX_DEPTH) is None, reason


def nested(depth: int, leaf_body: str) -> str:
    opening = (f"Content-Type: multipart/mixed; boundary=b{d}\n\n--b{d}\n" for d in range(depth))
    closing = (f"--b{d}--\n" for d in reversed(range(depth)))
    return "".join(opening) + "\n" + leaf_body + "".join(closing)


def test_nesting_beyond_the_limit_is_declined() -> None:
    text = nested(MAX_DEPTH + 2, "leaf\n")
    assert fast_parse(text, _POLICY, max_depth=MAX_DEPTH) is None
    assert fast_parse(text, _POLICY, max_depth=MAX_DEPTH + 3) is not None


def test_many_dash_lines_deep_inside_stay_cheap() -> None:
    """Each line starting with "--" is compared with every enclosing boundary at once."""
    text = nested(MAX_DEPTH, "--not-a-boundary\n" * 50_000)
    started = time.perf_counter()
    assert assert_agrees(text)
    assert time.perf_counter() - started < SLOW_SECONDS


# --- generated MIME structures -------------------------------------------------------------

BOUNDARIES = ["b", "bb", "b--", "=_x", "a b", "b:c", "--", "XyZ", "b" * 70, "é", "b1"]


@st.composite
def entities(draw: st.DrawFn, depth: int = 0, stack: tuple[str, ...] = ()) -> str:
    """A message or part, mostly well-formed, with the oddities the stdlib handles."""
    nl = "\n"

    def headers(ctype: str | None) -> str:
        lines = []
        if draw(st.booleans()):
            lines.append("Subject: " + draw(st.sampled_from(["hi", "", "  x  ", "=?utf-8?q?a?="])))
        if draw(st.integers(0, 4)) == 0:
            lines.append("X-Folded: a" + nl + draw(st.sampled_from([" b", "\tc", "  "])))
        if ctype is not None:
            lines.append("Content-Type: " + ctype)
        if draw(st.integers(0, 5)) == 0:
            lines.append("Content-Transfer-Encoding: " + draw(st.sampled_from(["7bit", "base64"])))
        if draw(st.integers(0, 20)) == 0:
            lines.append(draw(st.sampled_from(["From x", "bad line", " cont", ":x", "From: a@b"])))
        return "".join(line + nl for line in draw(st.permutations(lines)))

    def body() -> str:
        words = ["text", "", "--", "-- ", "--b", "--b--", "--bb", ">x", "\t", "é ü", "=41"]
        return "".join(w + nl for w in draw(st.lists(st.sampled_from(words), max_size=4)))

    kinds = ["leaf", "leaf", "message", "multipart"] if depth < 4 else ["leaf"]
    kind = draw(st.sampled_from(kinds))
    if kind == "leaf":
        ctype = draw(st.sampled_from([None, "text/plain", "text/html; charset=utf-8", "x/y"]))
        return headers(ctype) + draw(st.sampled_from([nl, nl, ""])) + body()
    if kind == "message":
        ctype = draw(st.sampled_from(["message/rfc822", "message/delivery-status", "message/news"]))
        return headers(ctype) + nl + draw(entities(depth + 1, stack))
    boundary = draw(st.sampled_from([b for b in BOUNDARIES if b not in stack]))
    quote = draw(st.sampled_from(['"', ""]))
    subtype = draw(st.sampled_from(["mixed", "alternative", "related", "digest", "MIXED"]))
    text = headers(f"multipart/{subtype}; boundary={quote}{boundary}{quote}") + nl
    if draw(st.booleans()):
        text += body()  # a preamble
    for _ in range(draw(st.integers(0, 3))):
        text += "--" + boundary + draw(st.sampled_from(["", "", " ", "\t"])) + nl
        text += draw(entities(depth + 1, (*stack, boundary)))
    if draw(st.integers(0, 9)):
        text += "--" + boundary + "--" + draw(st.sampled_from(["", " ", "\t "]))
        text += draw(st.sampled_from([nl, nl, ""]))
    if draw(st.booleans()):
        text += body()  # an epilogue
    return text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entities(), st.booleans(), st.booleans())
def test_agrees_with_the_stdlib_on_generated_structures(
    text: str, as_crlf: bool, cut_last_line_end: bool
) -> None:
    if as_crlf:
        text = text.replace("\n", "\r\n")
    if cut_last_line_end:
        text = text.rstrip("\r\n")
    assert_agrees(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_samples())
def test_agrees_with_the_stdlib_on_mutated_samples(data: bytes) -> None:
    assert_agrees(text_of(data))


# -- the Content-Type boundary shortcut against `get_boundary()` ---------------------------

_CT_PIECES = [
    "multipart/mixed", "multipart/alternative", "text/plain", ";", " ", "\t", "\n ", "\r\n ",
    "boundary", "BOUNDARY", "Boundary", "boundary*", "boundary*0*", "=", '"', "\\", "<", ">",
    "===", "abc", "x y", "'", "utf-8''a%20b", "charset=utf-8", "é", "\udce9", "--", "/",
]  # fmt: skip


@settings(max_examples=800)
@given(st.lists(st.sampled_from(_CT_PIECES), max_size=14).map("".join))
def test_boundary_shortcut_agrees_with_get_boundary(value: str) -> None:
    msg = Message(policy=_POLICY)
    msg.set_raw("Content-Type", value)
    try:
        expected: Any = msg.get_boundary()
    except Exception as exc:  # the shortcut falls back to it, so it must raise alike
        expected = type(exc)
    try:
        got: Any = _boundary(msg)
    except Exception as exc:
        got = type(exc)
    assert got == expected


@pytest.mark.parametrize(
    "value",
    [
        'multipart/alternative;\n boundary="===============3591088459282207174=="',
        "multipart/mixed; boundary=abc",
        'multipart/mixed; BOUNDARY = " a b "',
        'multipart/mixed; boundary=""',
    ],
)
def test_boundary_shortcut_takes_the_usual_shapes(value: str) -> None:
    msg = Message(policy=_POLICY)
    msg.set_raw("Content-Type", value)
    assert _ONLY_BOUNDARY.fullmatch(value)
    assert _boundary(msg) == msg.get_boundary()


_SPACES = st.sampled_from(["", " ", "\t", "\n ", "\r\n\t", "  "])
_BOUNDARY_TEXT = st.text(
    st.sampled_from(list(" !#$%&'()*+,-./09:<=>?@AZ[]^_`az{|}~\"\\;é")), max_size=12
)


@settings(max_examples=800)
@given(
    st.sampled_from(["multipart/mixed", "Multipart/Related", "text/plain", "a/b/c", "x"]),
    _SPACES,
    _SPACES,
    st.sampled_from(["boundary", "BOUNDARY", "bOundary", "boundary*", "name"]),
    _SPACES,
    _SPACES,
    st.booleans(),
    _BOUNDARY_TEXT,
    _SPACES,
)
def test_boundary_shortcut_agrees_on_boundary_shapes(
    ctype: str, s1: str, s2: str, name: str, s3: str, s4: str, quoted: bool, text: str, s5: str
) -> None:
    value = f"{ctype}{s1};{s2}{name}{s3}={s4}" + (f'"{text}"' if quoted else text) + s5
    msg = Message(policy=_POLICY)
    msg.set_raw("Content-Type", value)
    assert _boundary(msg) == msg.get_boundary()


# -- header blocks: fields found one after the other against one match of the whole block --

_WHOLE_BLOCK = re.compile(f"(?:{_FIELD_SOURCE})+")
_HEADER_PIECES = [
    "Subject", "X-A", ":", ": ", " ", "\t", "\n", "\r\n", "\n ", "\n\t", "value", "a:b",
    "From ", ">", "é", "\udce9", "\x7f", "=?utf-8?q?x?=",
]  # fmt: skip


@settings(max_examples=800)
@given(st.lists(st.sampled_from(_HEADER_PIECES), max_size=16).map("".join), st.integers(0, 3))
def test_header_fields_tile_exactly_when_the_block_matches(block: str, start: int) -> None:
    text = "x" * start + block
    whole = _WHOLE_BLOCK.fullmatch(text, start, len(text))
    fields = _header_fields(text, start, len(text))
    assert (fields is not None) == (whole is not None)
    if fields is not None:
        assert fields == _FIELD.findall(text, start, len(text))
