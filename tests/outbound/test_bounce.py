"""Bounces of our replies: attached to the ticket as an event, the address marked
undeliverable, never a new ticket; a bounce that names nothing of ours waits in quarantine."""

from __future__ import annotations

from config.wiring import Services
from intake.types import Duplicate, Quarantined, Stored
from storage import repo
from storage.models import ticket_id_from_ref
from tests.mail import claim
from tests.outbound.sink import Received, Sink
from tests.outbound.support import drain, events, kinds, outbox, receive


def dsn(
    returned: bytes,
    *,
    action: str = "failed",
    status: str = "5.1.1",
    part: str = "text/rfc822-headers",
    message_id: str = "<dsn-1@mx.example.org>",
) -> bytes:
    """A delivery status notification as Postfix writes one (RFC 3464)."""
    if part == "text/rfc822-headers":
        returned = returned.split(b"\r\n\r\n", 1)[0] + b"\r\n"
    return (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        b"To: claims@desk.example\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: " + message_id.encode() + b"\r\n"
        b"Auto-Submitted: auto-replied\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="BND"\r\n'
        b"\r\n--BND\r\nContent-Type: text/plain\r\n\r\n"
        b"I'm sorry to have to inform you that your message could not be delivered.\r\n"
        b"\r\n--BND\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.org\r\n\r\n"
        b"Final-Recipient: rfc822; buyer@example.org\r\n"
        b"Action: " + action.encode() + b"\r\n"
        b"Status: " + status.encode() + b"\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 <buyer@example.org>: Recipient address rejected\r\n"
        b"\r\n--BND\r\nContent-Type: " + part.encode() + b"\r\n\r\n" + returned + b"\r\n--BND--\r\n"
    )


def acknowledged(desk: Services, sink: Sink) -> tuple[str, Received]:
    result = receive(desk, claim(order=None, message_id="<claim@example.org>"))
    assert result.ticket is not None
    drain(desk)
    return result.ticket, sink.wait_for(1)[0]


def test_dsn_for_our_reply_joins_its_ticket_and_stops_replies(desk: Services, sink: Sink) -> None:
    ref, ack = acknowledged(desk, sink)
    bounce = dsn(ack.data)
    result = receive(desk, bounce, to="claims@desk.example", envelope_from="")
    assert isinstance(result, Stored) and result.ticket == ref and not result.created
    with desk.engine.connect() as conn:
        assert repo.count_tickets(conn) == 1  # never a ticket of its own
        messages = repo.ticket_messages(conn, ticket_id_from_ref(ref))  # type: ignore[arg-type]
    assert [m.direction for m in messages] == ["in", "bounce"]
    [event] = [e for e in events(desk, ref) if e.kind == "bounce"]
    [row] = outbox(desk)
    assert event.detail == {
        "outbox_message_id": row.message_id,
        "outbox_kind": "ack",
        "recipient": "buyer@example.org",
        "action": "failed",
        "status": "5.1.1",
        "diagnostic": "smtp; 550 5.1.1 <buyer@example.org>: Recipient address rejected",
        "undeliverable": True,
    }
    assert row.status == "bounced" and row.last_error.startswith("bounced: 5.1.1")
    # The same DSN again is a duplicate; a new claim from that buyer gets no reply.
    again = receive(desk, bounce, to="claims@desk.example", envelope_from="")
    assert isinstance(again, Duplicate) and again.ticket == ref
    later = receive(desk, claim(subject="Another parcel", order=None))
    assert later.ticket != ref and len(outbox(desk)) == 1
    [skip] = [e for e in events(desk, later.ticket) if e.kind == "reply_skipped"]
    assert skip.detail["reason"] == "recipient undeliverable (bounced)"


def test_dsn_returning_the_whole_message(desk: Services, sink: Sink) -> None:
    ref, ack = acknowledged(desk, sink)
    result = receive(desk, dsn(ack.data, part="message/rfc822"), envelope_from="")
    assert isinstance(result, Stored) and result.ticket == ref
    assert "bounce" in kinds(desk, ref)


def test_delay_notice_is_recorded_but_not_undeliverable(desk: Services, sink: Sink) -> None:
    ref, ack = acknowledged(desk, sink)
    result = receive(desk, dsn(ack.data, action="delayed", status="4.4.1"), envelope_from="")
    assert result.ticket == ref
    [event] = [e for e in events(desk, ref) if e.kind == "bounce"]
    assert event.detail["action"] == "delayed" and event.detail["undeliverable"] is False
    assert outbox(desk)[0].status == "sent"
    receive(desk, claim(subject="Another parcel"))
    assert len(outbox(desk)) == 2  # still answered


def test_dsn_for_a_message_we_never_sent_is_quarantined(desk: Services) -> None:
    forged = (
        b"From: someone@example.org\r\nTo: victim@example.net\r\nSubject: spam\r\n"
        b"Message-ID: <spam-123@spammer.example>\r\n"
    )
    result = receive(desk, dsn(forged), to="claims@desk.example", envelope_from="")
    assert isinstance(result, Quarantined)
    assert (result.stage, result.reason) == ("bounce", "bounce for unknown message")
    with desk.engine.connect() as conn:
        assert repo.count_tickets(conn) == 0
    [entry] = desk.spool.list()
    assert entry.stage == "bounce"


def test_free_text_bounce_from_mailer_daemon(desk: Services, sink: Sink) -> None:
    """qmail-style: no report part, our Message-ID quoted in the text."""
    ref, ack = acknowledged(desk, sink)
    our_id = ack.message["Message-ID"]
    text = (
        b"From: MAILER-DAEMON@mx.example.org\r\nTo: claims@desk.example\r\n"
        b"Subject: failure notice\r\nMessage-ID: <qmail-1@mx.example.org>\r\n\r\n"
        b"Hi. This is the qmail-send program at mx.example.org.\r\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n\r\n"
        b"<buyer@example.org>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
        b"--- Below this line is a copy of the message.\r\n\r\n"
        b"Message-ID: " + our_id.encode() + b"\r\nSubject: whatever\r\n\r\nbody\r\n"
    )
    result = receive(desk, text, envelope_from="")
    assert isinstance(result, Stored) and result.ticket == ref
    [event] = [e for e in events(desk, ref) if e.kind == "bounce"]
    assert event.detail["action"] == "failed" and event.detail["undeliverable"] is True
