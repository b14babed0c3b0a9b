"""claimdesk against a naive auto-responder, through real sockets both ways.

claimdesk: its SMTP intake (intake/smtp_server.py) and its mailer thread. The responder: an
SMTP relay sink that answers every mail it receives, like a vacation script that ignores
RFC 3834 (no Auto-Submitted, a normal envelope sender), by sending its answer over SMTP into
claimdesk's intake. However the responder words its answer, claimdesk sends at most
`relay.max_auto_replies_per_day` mails and the exchange stops.
"""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from config.wiring import Services
from intake.smtp_server import SmtpIntake
from outbound.mailer import MailerService
from storage import repo
from tests.mail import claim
from tests.outbound.sink import Received, Sink, SinkHandler
from tests.outbound.support import outbox

LIMIT = 3


class Vacation:
    """Answers every mail with an out-of-office notice, over SMTP into claimdesk."""

    def __init__(self, threaded: bool) -> None:
        self.threaded = threaded
        self.intake: tuple[str, int] = ("127.0.0.1", 0)
        self.sent = 0
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def __call__(self, received: Received) -> None:
        original = received.message
        answer = EmailMessage()
        answer["From"] = "Buyer One <buyer@example.org>"
        answer["To"] = str(original["From"])
        answer["Message-ID"] = make_msgid(domain="example.org")
        if self.threaded:  # like most vacation scripts: "Re:" and In-Reply-To
            answer["Subject"] = f"Re: {original['Subject']}"
            answer["In-Reply-To"] = str(original["Message-ID"])
            answer["References"] = str(original["Message-ID"])
        else:  # its own subject, no threading headers: every answer looks like a new claim
            answer["Subject"] = f"Out of office {time.monotonic_ns()}"
        answer.set_content("I am out of the office until next month and will read your mail then.")
        try:
            with smtplib.SMTP(*self.intake, timeout=10) as smtp:
                smtp.send_message(answer, from_addr="buyer@example.org")
            with self.lock:
                self.sent += 1
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)


@pytest.fixture
def exchange(
    make_services: Callable[..., Services], db_url: str
) -> Iterator[Callable[[bool], tuple[Services, Sink, Vacation]]]:
    running: list[object] = []

    def start(threaded: bool) -> tuple[Services, Sink, Vacation]:
        vacation = Vacation(threaded)
        responder = Sink(SinkHandler(on_message=vacation))
        responder.controller.start()
        running.append(responder)
        services = make_services(
            db_url,
            smtp={"host": "127.0.0.1", "port": 0},
            relay={**responder.relay_settings(), "max_auto_replies_per_day": LIMIT},
            outbound={"poll_seconds": 0.2},
        )
        intake = SmtpIntake(services.settings, services)
        intake.start()
        running.append(intake)
        vacation.intake = intake.address
        mailer = MailerService(services, worker_id="loop")
        mailer.start()
        running.append(mailer)
        return services, responder, vacation

    yield start
    for component in reversed(running):
        if isinstance(component, Sink):
            component.controller.stop()
        else:
            component.stop()  # type: ignore[attr-defined]


def settle(services: Services, responder: Sink, quiet: float = 2.0, limit: float = 60) -> None:
    """Wait until nothing moves: no new mail at the responder for `quiet` seconds."""
    deadline = time.monotonic() + limit
    seen, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = len(responder.received) + len(outbox(services))
        if count != seen:
            seen, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.05)
    raise AssertionError("the exchange did not stop")


def start_claim(services: Services, smtp_address: tuple[str, int]) -> None:
    with smtplib.SMTP(*smtp_address, timeout=10) as smtp:
        smtp.sendmail(
            "buyer@example.org",
            ["disputes@desk.example"],
            claim(order=None, tracking=None).replace(b"\n", b"\r\n"),
        )


def test_responder_that_threads_its_answers(exchange) -> None:  # type: ignore[no-untyped-def]
    services, responder, vacation = exchange(True)
    start_claim(services, vacation.intake)
    settle(services, responder)
    assert not vacation.errors
    # Our one acknowledgement got one vacation notice; it joined the ticket and changed
    # nothing, so it got no answer: the loop ended after one round.
    assert len(responder.received) == 1 and vacation.sent == 1
    with services.engine.connect() as conn:
        assert repo.count_tickets(conn) == 1
        assert len(repo.ticket_messages(conn, 1)) == 2
    assert [r.status for r in outbox(services)] == ["sent"]


def test_responder_that_opens_a_new_thread_each_time(exchange) -> None:  # type: ignore[no-untyped-def]
    services, responder, vacation = exchange(False)
    start_claim(services, vacation.intake)
    settle(services, responder)
    assert not vacation.errors
    rows = outbox(services)
    assert len(rows) == LIMIT and all(r.status == "sent" for r in rows)
    assert len(responder.received) == LIMIT and vacation.sent == LIMIT
    assert {m.rcpt_tos for m in responder.received} == {("buyer@example.org",)}
    with services.engine.connect() as conn:
        tickets = repo.count_tickets(conn)
        last = repo.ticket_events(conn, tickets)
    assert tickets == LIMIT + 1  # every message was kept; the last one was not answered
    [skip] = [e for e in last if e.kind == "reply_skipped"]
    assert skip.detail["reason"] == f"rate limit: {LIMIT} auto-replies in 24 h (max {LIMIT})"
    for mail in responder.received:  # every mail said what it is
        assert mail.message["Auto-Submitted"] == "auto-replied"
        assert mail.message["X-Auto-Response-Suppress"] == "All"
