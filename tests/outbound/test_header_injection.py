"""No header of ours can be injected from a buyer's subject or display name: CR/LF written
raw, hidden in RFC 2047 encoded words (q and b), or as Unicode line separators."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import pytest

from config.wiring import Services
from outbound.compose import ComposeError, ReplyTarget, compose
from tests.outbound.sink import Sink
from tests.outbound.support import drain, outbox, receive

BODY = (
    b"Hello, I ordered a pair of wireless headphones two months ago and the parcel never "
    b"arrived. I would like a full refund please.\r\n\r\nOrder No.: 8123456789012345\r\n"
    b"Tracking number: RR123456785CN\r\n"
    b"Product: https://www.aliexpress.com/item/1005004567890123.html\r\n"
)
B64 = base64.b64encode(b"Bye\r\nBcc: victim-b@evil.example\r\n\r\n<html>").decode()
TRICKS = [
    pytest.param(
        b"=?utf-8?q?Eve=0D=0ABcc=3A_victim-q=40evil.example?= <eve@example.org>",
        b"=?utf-8?q?Parcel=0D=0ABcc:_victim-s@evil.example=0D=0A=0D=0Ainjected_body?=",
        id="quoted-printable-encoded-words",
    ),
    pytest.param(
        f"=?utf-8?b?{B64}?= <eve@example.org>".encode(),
        f"Parcel =?utf-8?b?{B64}?=".encode(),
        id="base64-encoded-words",
    ),
    pytest.param(
        b'"Eve\\\r\n Bcc: victim-raw@evil.example" <eve@example.org>',
        # A bare CR ends the header line for the parser: the incoming mail had a Bcc header
        # of its own, and our reply copies no header from it.
        b"Parcel\rBcc: victim-cr@evil.example",
        id="raw-cr-and-quoted-crlf",
    ),
    pytest.param(
        b"=?utf-8?q?Eve=E2=80=A8Bcc=3A_victim-ls=40evil.example?= <eve@example.org>",
        b"=?utf-8?q?Parcel=C2=85Bcc:_victim-nel@evil.example=E2=80=A9x?=",
        id="unicode-line-separators",
    ),
]
KNOWN = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "x-claimdesk-ticket",
    "x-claimdesk-kind",
    "mime-version",
    "content-type",
}


def header_block(data: bytes) -> list[bytes]:
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"\r" not in head.replace(b"\r\n", b"") and b"\n" not in head.replace(b"\r\n", b"")
    return head.split(b"\r\n")


@pytest.mark.parametrize(("sender", "subject"), TRICKS)
def test_no_injected_header_reaches_the_relay(
    desk: Services, sink: Sink, sender: bytes, subject: bytes
) -> None:
    raw = (
        b"From: " + sender + b"\r\nTo: disputes@desk.example\r\nSubject: " + subject + b"\r\n"
        b"Message-ID: <inject@example.org>\r\nDate: Mon, 2 Mar 2026 09:00:00 +0000\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + BODY
    )
    result = receive(desk, raw)
    assert result.ticket is not None
    assert drain(desk).sent == 1
    [mail] = sink.wait_for(1)
    assert mail.rcpt_tos == ("eve@example.org",)
    lines = header_block(mail.data)
    names = [line.split(b":", 1)[0].decode().lower() for line in lines if line[:1] not in b" \t"]
    assert set(names) <= KNOWN, names
    assert names.count("to") == 1 and names.count("subject") == 1
    assert not any(re.match(rb"(?i)\s*bcc\s*:", line) for line in lines)
    msg = mail.message
    assert "bcc" not in {k.lower() for k in msg}
    assert [a.addr_spec for a in msg["To"].addresses] == ["eve@example.org"]
    name, subject_text = msg["To"].addresses[0].display_name, str(msg["Subject"])
    assert "Bcc" in name  # the payload arrived, flattened into one harmless line
    if b"=?" in subject:
        assert "Bcc" in subject_text
    for value in (subject_text, name):
        assert not re.search(r"[\r\n\x85\u2028\u2029]", value), value
    assert msg.get_body(preferencelist=("plain",)) is not None  # the body was not replaced
    [row] = outbox(desk)
    assert mail.data == row.raw


def test_compose_refuses_what_it_cannot_make_safe() -> None:
    now = datetime(2026, 3, 2, tzinfo=UTC)

    def build(address: str, name: str = "", subject: str = "s") -> bytes:
        return compose(
            target=ReplyTarget(address=address, subject=subject, display_name=name),
            subject=subject,
            text="t",
            html=None,
            message_id="x@desk.example",
            sender="claims@desk.example",
            sender_name="Claims Desk",
            now=now,
            auto_submitted="auto-replied",
        ).raw

    for address in ("eve@example.org\r\nBcc: x@evil.example", "", "no-at-sign", "a b@c.d"):
        with pytest.raises(ComposeError):
            build(address)
    raw = build("eve@example.org", name="Eve\r\nBcc: x@y", subject="Hi\r\nBcc: x@y\nTo: z@y")
    lines = header_block(raw)
    assert not any(line.lower().startswith((b"bcc", b"to: z")) for line in lines)
    assert b"Subject: Hi Bcc: x@y To: z@y" in raw


def test_threading_ids_that_could_carry_a_header_are_dropped() -> None:
    composed = compose(
        target=ReplyTarget(
            address="eve@example.org",
            subject="s",
            message_id="id@example.org>\r\nBcc: x@evil.example",
            references=("ok@example.org", "bad id@example.org"),
        ),
        subject="s",
        text="t",
        html=None,
        message_id="x@desk.example",
        sender="claims@desk.example",
        sender_name="",
        now=datetime(2026, 3, 2, tzinfo=UTC),
        auto_submitted=None,
    )
    assert composed.in_reply_to is None
    assert b"In-Reply-To" not in composed.raw and b"Bcc" not in composed.raw
