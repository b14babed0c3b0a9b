"""The SMTP/LMTP edge driven over real sockets: the server runs in this process (its own event
loop thread, as `serve` runs it), clients are smtplib and raw sockets on 127.0.0.1.
"""

from __future__ import annotations

import smtplib
import ssl
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intake import smtp_replies as replies
from storage.models import MESSAGE
from tests.intake import smtp_support
from tests.intake.smtp_support import (
    Outage,
    Serve,
    crlf,
    make_certificate,
    read_replies,
    read_until_closed,
)
from tests.mail import claim

serve = smtp_support.serve  # the fixture: claimdesk's SMTP edge in this process

DISPUTES = "disputes@desk.example"
SECURITY = "security@desk.example"
BUYER = "buyer@example.org"


# -- greeting and extensions ----------------------------------------------------------------


def test_ehlo_offers_size_8bitmime_smtputf8_pipelining_and_no_auth(serve: Serve) -> None:
    running = serve(max_message_bytes=100_000)
    with running.smtp() as client:
        assert client.esmtp_features["size"] == "100000"
        for extension in ("8bitmime", "smtputf8", "pipelining", "enhancedstatuscodes"):
            assert extension in client.esmtp_features
        assert "auth" not in client.esmtp_features
        assert "starttls" not in client.esmtp_features  # no certificate configured
        assert client.noop() == (250, b"2.0.0 OK")


# -- delivery ---------------------------------------------------------------------------------


def test_accepted_message_is_a_ticket_with_the_exact_bytes_and_the_trace(serve: Serve) -> None:
    running = serve()
    data = crlf(claim())
    with running.smtp() as client:
        client.mail(BUYER)
        client.rcpt(DISPUTES)
        code, reply = client.data(data)
    assert (code, reply) == (250, b"2.0.0 Ok: CD-000001 stored")
    [row] = running.messages()
    assert row.raw == data  # byte for byte: no Received header added
    assert row.envelope_from == BUYER
    assert row.envelope_to == [DISPUTES]
    host, _, rest = row.source.removeprefix("smtp:").partition(":")
    assert host == "127.0.0.1"
    assert rest.split()[1:] == ["helo=client.example", "with=ESMTP"]
    assert running.ticket("CD-000001").queue == "disputes"


def test_several_desk_recipients_make_one_ticket_in_the_queue_that_takes_precedence(
    serve: Serve,
) -> None:
    running = serve()
    with running.smtp() as client:
        refused = client.sendmail(BUYER, [DISPUTES, SECURITY], crlf(claim(to=DISPUTES)))
    assert refused == {}
    assert running.count_tickets() == 1
    ticket = running.ticket("CD-000001")
    assert ticket.queue == "security"  # routing.order: security, complaints, disputes, general
    assert ticket.route_rule == "recipient_precedence"
    assert running.messages()[0].envelope_to == [DISPUTES, SECURITY]


def test_same_message_delivered_twice_is_a_duplicate_of_the_same_ticket(serve: Serve) -> None:
    running = serve()
    data = crlf(claim())
    replies_seen = []
    for _ in range(2):
        with running.smtp() as client:
            client.mail(BUYER)
            client.rcpt(DISPUTES)
            replies_seen.append(client.data(data))
    assert replies_seen == [
        (250, b"2.0.0 Ok: CD-000001 stored"),
        (250, b"2.0.0 Ok: CD-000001 duplicate"),
    ]
    assert len(running.messages()) == 1


def test_incomplete_claim_is_acknowledged_as_needs_info(serve: Serve) -> None:
    running = serve()
    with running.smtp() as client:
        client.mail(BUYER)
        client.rcpt(DISPUTES)
        code, reply = client.data(crlf(claim(order=None)))
    assert (code, reply) == (250, b"2.0.0 Ok: CD-000001 needs_info")


def test_pipelined_session_in_one_write(serve: Serve) -> None:
    """RFC 2920: a client may send its commands without waiting; every reply comes in order."""
    running = serve()
    first, second = crlf(claim(subject="First parcel")), crlf(claim(subject="Second parcel"))
    session = (
        b"EHLO pipeliner.example\r\n"
        b"MAIL FROM:<buyer@example.org>\r\n"
        b"RCPT TO:<disputes@desk.example>\r\n"
        b"RCPT TO:<nobody@desk.example>\r\n"
        b"DATA\r\n" + first + b".\r\n"
        b"MAIL FROM:<buyer@example.org>\r\n"
        b"RCPT TO:<security@desk.example>\r\n"
        b"DATA\r\n" + second + b".\r\n"
        b"QUIT\r\n"
    )
    with running.connect() as sock:
        sock.sendall(session)
        got = read_replies(sock, 11)
    codes = [reply[:3] for reply in got]
    assert codes == ["220", "250", "250", "250", "550", "354", "250", "250", "250", "354", "250"]
    assert got[6] == "250 2.0.0 Ok: CD-000001 stored"
    assert got[10] == "250 2.0.0 Ok: CD-000002 stored"
    assert [m.raw for m in running.messages()] == [first, second]


def test_replies_to_pipelined_commands_come_in_one_write(serve: Serve) -> None:
    """RFC 2920 lets the server batch its replies: MAIL, RCPT and DATA sent together are
    answered together (one send, one segment on loopback), not with three writes."""
    running = serve()
    with running.connect() as sock:
        read_replies(sock, 1)
        sock.sendall(b"EHLO pipeliner.example\r\n")
        read_replies(sock, 1)
        sock.sendall(
            b"MAIL FROM:<buyer@example.org>\r\nRCPT TO:<disputes@desk.example>\r\nDATA\r\n"
        )
        chunk = sock.recv(65536)
        assert chunk.count(b"\r\n") == 3, chunk
        assert [line[:3] for line in chunk.split(b"\r\n")[:3]] == [b"250", b"250", b"354"]
        sock.sendall(crlf(claim()) + b".\r\nQUIT\r\n")
        assert read_replies(sock, 2)[0] == "250 2.0.0 Ok: CD-000001 stored"


def test_8bit_body_is_kept_byte_for_byte(serve: Serve) -> None:
    running = serve()
    body = (
        "Hello, the café sent me a broken kettle – “as new”, they said. I want my money back "
        "for this order because the item is damaged and the seller does not answer."
    )
    data = crlf(
        (
            "From: Zoë Buyer <zoe@example.org>\n"  # raw UTF-8 in a header, as 8-bit mail has
            "To: disputes@desk.example\n"
            "Subject: Broken kettle\n"
            "Message-ID: <8bit-1@example.org>\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n\n" + body + "\n"
        ).encode()
    )
    with running.smtp() as client:
        client.sendmail("zoe@example.org", [DISPUTES], data, mail_options=["BODY=8BITMIME"])
    [row] = running.messages()
    assert row.raw == data
    assert "café" in row.text


def test_smtputf8_sender_address_is_kept(serve: Serve) -> None:
    running = serve()
    sender = "покупатель@пример.рф"
    data = crlf(
        claim(sender=f"Покупатель <{sender}>", message_id="<utf8-1@example.org>").replace(
            b"\nTo:", "\nX-Note: заказ\nTo:".encode(), 1
        )
    )
    with running.smtp() as client:
        client.sendmail(sender, [DISPUTES], data, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
    [row] = running.messages()
    assert row.envelope_from == sender
    assert row.raw == data
    assert row.source.endswith("with=UTF8SMTP")


def test_null_sender_is_accepted(serve: Serve) -> None:
    """Bounces and auto-replies come from <> (RFC 5321 4.5.5); the desk must take them."""
    running = serve()
    with running.smtp() as client:
        assert client.mail("<>")[0] == 250
        client.rcpt(DISPUTES)
        assert client.data(crlf(claim()))[0] == 250
    assert running.messages()[0].envelope_from == ""


def test_sender_that_is_not_utf8_is_refused(serve: Serve) -> None:
    running = serve()
    with running.connect() as sock:
        sock.sendall(b"EHLO x\r\nMAIL FROM:<\xff\xfe@example.org> SMTPUTF8\r\nQUIT\r\n")
        got = read_replies(sock, 4)
    assert got[2] == replies.BAD_SENDER


# -- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def test_starttls_then_delivery(serve: Serve, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    running = serve(tls_cert=str(cert), tls_key=str(key))
    context = ssl.create_default_context(cafile=str(cert))
    with running.smtp() as client:
        assert "starttls" in client.esmtp_features
        assert client.starttls(context=context)[0] == 220
        client.ehlo()
        assert "auth" not in client.esmtp_features  # aiosmtpd would offer it after TLS
        client.sendmail(BUYER, [DISPUTES], crlf(claim()))
    assert running.messages()[0].source.endswith("with=ESMTPS")


# -- refusals ---------------------------------------------------------------------------------


def test_unknown_desk_address_is_refused_550_5_1_1(serve: Serve) -> None:
    running = serve()
    with running.smtp() as client:
        client.mail(BUYER)
        code, reply = client.rcpt("nobody@desk.example")
    assert code == 550 and reply.startswith(b"5.1.1 <nobody@desk.example>")
    assert running.messages() == []


@pytest.mark.parametrize(
    "address",
    [
        "victim@gmail.example",
        "disputes@desk.example.evil.example",
        "disputes%evil.example@desk.example",
        "@relay.example:disputes@evil.example",
    ],
)
def test_relay_attempt_is_refused(serve: Serve, address: str) -> None:
    running = serve()
    with running.smtp() as client:
        client.mail(BUYER)
        code, reply = client.docmd("RCPT", f"TO:<{address}>")
        assert code == 550 and reply.startswith(b"5.1.1")
        assert client.docmd("DATA")[0] == 503  # no recipient: no DATA


def test_extra_domain_accepts_any_address_there_and_routes_by_content(serve: Serve) -> None:
    running = serve(extra_domains=["claims.example"])
    with running.smtp() as client:
        message = crlf(claim(to="Anyone <anyone@claims.example>"))
        assert client.sendmail(BUYER, ["anyone@Claims.Example"], message) == {}
    ticket = running.ticket("CD-000001")
    assert ticket.route_rule.startswith(("keywords:", "fallback"))  # no queue's own address
    assert running.messages()[0].envelope_to == ["anyone@Claims.Example"]


def test_message_over_the_size_limit_is_refused_552_5_3_4(serve: Serve) -> None:
    running = serve(max_message_bytes=5_000)
    big = crlf(claim(body="This parcel never came. " * 400))
    with running.smtp() as client:
        # Declared with SIZE (smtplib sends it): refused at MAIL.
        with pytest.raises(smtplib.SMTPSenderRefused) as declared:
            client.sendmail(BUYER, [DISPUTES], big)
        assert declared.value.smtp_code == 552
        assert declared.value.smtp_error.startswith(b"5.3.4")
        client.rset()
        # Not declared: refused after DATA; the connection stays usable.
        client.mail(BUYER)
        client.rcpt(DISPUTES)
        assert client.data(big) == (552, replies.TOO_BIG[4:].encode())
        assert client.sendmail(BUYER, [DISPUTES], crlf(claim())) == {}
    assert len(running.messages()) == 1


def test_recipients_over_the_cap_get_452_4_5_3(serve: Serve) -> None:
    running = serve(max_recipients=2, extra_domains=["claims.example"])
    with running.smtp() as client:
        client.mail(BUYER)
        assert client.rcpt("a@claims.example")[0] == 250
        assert client.rcpt("b@claims.example")[0] == 250
        assert client.rcpt("c@claims.example") == (452, b"4.5.3 Too many recipients")
        assert client.data(crlf(claim()))[0] == 250
    assert running.messages()[0].envelope_to == ["a@claims.example", "b@claims.example"]


# -- connections ------------------------------------------------------------------------------


def test_connections_over_the_per_client_cap_get_421(serve: Serve) -> None:
    running = serve(max_connections=3, max_connections_per_client=2)
    first, second = running.connect(), running.connect()
    assert read_replies(first, 1)[0].startswith("220")
    assert read_replies(second, 1)[0].startswith("220")
    with running.connect() as third:
        assert read_until_closed(third) == (replies.TOO_MANY_FROM_YOU + "\r\n").encode()
    # Another client address still gets in, up to the total cap.
    other = running.connect(source="127.0.0.2")
    assert read_replies(other, 1)[0].startswith("220")
    with running.connect(source="127.0.0.3") as fourth:
        assert read_until_closed(fourth) == (replies.TOO_MANY_CONNECTIONS + "\r\n").encode()
    # A closed connection frees its place.
    first.sendall(b"QUIT\r\n")
    read_until_closed(first)
    with running.connect() as again:
        assert read_replies(again, 1)[0].startswith("220")
    second.close()
    other.close()


def test_silent_connection_is_closed_after_the_idle_timeout(serve: Serve) -> None:
    running = serve(idle_timeout_seconds=0.3)
    with running.connect() as sock:
        received = read_until_closed(sock, timeout=5)
    assert received.endswith((replies.IDLE_TIMEOUT + "\r\n").encode())


# -- LMTP -------------------------------------------------------------------------------------


def test_lmtp_answers_once_per_recipient(serve: Serve) -> None:
    running = serve(lmtp=True)
    client = smtplib.LMTP("127.0.0.1", running.port, local_hostname="mta.example", timeout=10)
    try:
        assert client.docmd("EHLO", "mta.example")[0] == 500  # LMTP speaks LHLO only
        assert client.ehlo("mta.example")[0] == 250  # smtplib.LMTP sends it as LHLO
        assert "pipelining" in client.esmtp_features
        client.mail(BUYER)
        assert client.rcpt(DISPUTES)[0] == 250
        assert client.rcpt("nobody@desk.example")[0] == 550
        assert client.rcpt(SECURITY)[0] == 250
        first = client.data(crlf(claim()))
        second = client.getreply()
    finally:
        client.close()
    assert first == (250, b"2.0.0 <disputes@desk.example> Ok: CD-000001 stored")
    assert second == (250, b"2.0.0 <security@desk.example> Ok: CD-000001 stored")
    assert running.count_tickets() == 1
    assert running.messages()[0].source.startswith("lmtp:")


# -- failure: the bytes are kept, or the sender is told to retry --------------------------------


def test_database_outage_quarantines_then_451_then_release_makes_the_ticket(
    serve: Serve, db_url: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from desk.cli import cli

    running = serve(db_url)
    outage = Outage(running.services, running.server)
    kept, quarantined, refused = (crlf(claim(subject=s)) for s in ("kept", "aside", "refused"))

    def deliver(data: bytes) -> tuple[int, bytes]:
        with running.smtp() as client:
            client.mail(BUYER)
            client.rcpt(DISPUTES)
            return client.data(data)

    assert deliver(kept)[0] == 250
    outage.database_down()
    try:
        code, reply = deliver(quarantined)
        assert code == 250 and reply.startswith(b"2.0.0 Ok: quarantined ")
        entry_id = reply.split()[-1].decode()
        outage.spool_down()
        try:
            assert deliver(refused) == (451, replies.NOT_KEPT[4:].encode())
        finally:
            outage.spool_up()
    finally:
        outage.database_up()
    assert deliver(refused)[0] == 250  # the sender's retry

    config = tmp_path / "release.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n[desk]\nspool_dir = "{running.services.spool.directory}"\n'
    )
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "quarantine", "release", entry_id],
        env={"CLAIMDESK_DATABASE_URL": None, "CLAIMDESK_CONFIG": None},
    )
    assert result.exit_code == 0, result.output
    assert f"{entry_id}: stored CD-" in result.output
    with running.services.engine.connect() as conn:
        raws = [r.raw for r in conn.execute(select(MESSAGE.c.raw))]
        assert conn.execute(select(func.count()).select_from(MESSAGE)).scalar_one() == 3
    assert sorted(raws) == sorted([kept, quarantined, refused])
    assert running.services.spool.list() == []


# -- shutdown ---------------------------------------------------------------------------------


def test_stop_lets_an_open_transaction_finish_and_closes_idle_connections(serve: Serve) -> None:
    running = serve()
    idle = running.connect()
    assert read_replies(idle, 1)[0].startswith("220")
    client = running.smtp()
    client.mail(BUYER)
    client.rcpt(DISPUTES)
    stopper = threading.Thread(target=running.server.stop)
    stopper.start()
    # The idle connection is told and closed; the listening socket is gone.
    assert read_until_closed(idle) == (replies.SHUTTING_DOWN + "\r\n").encode()
    with pytest.raises(OSError):
        running.connect().close()
    # The open transaction still completes, then the connection is closed too.
    assert client.data(crlf(claim()))[0] == 250
    assert client.file is not None
    assert client.file.read() == (replies.SHUTTING_DOWN + "\r\n").encode()
    client.close()
    stopper.join(timeout=10)
    assert not stopper.is_alive()
    assert len(running.messages()) == 1
