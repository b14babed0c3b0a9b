"""The mailer against a real relay: retries with backoff on 4xx and network errors, failure
on 5xx, AUTH, crashed workers' rows taken over, and the service thread woken by process()."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from config.wiring import Services
from outbound.mailer import MailerService, drain_outbox
from storage import outbox_repo
from tests.conftest import T0
from tests.mail import claim
from tests.outbound.sink import (
    SINK_PASSWORD,
    SINK_USER,
    Sink,
    SinkHandler,
    free_port,
    self_signed,
)
from tests.outbound.support import drain, kinds, outbox, receive

RETRY = {"retry_base_seconds": 60, "retry_max_seconds": 600, "max_attempts": 4}


def test_4xx_is_retried_with_growing_backoff(
    make_services: Callable[..., Services], db_url: str, sink: Sink, clock
) -> None:
    services = make_services(db_url, relay=sink.relay_settings(), outbound=RETRY)
    sink.handler.replies[:] = ["451 4.3.0 try later", "452 4.3.1 full"]
    receive(services, claim())
    counts = drain(services)
    assert (counts.sent, counts.retried, counts.failed) == (0, 1, 0)
    [row] = outbox(services)
    assert row.status == "pending" and row.attempts == 1
    assert row.next_attempt_at == T0 + timedelta(seconds=60)
    assert row.last_error == "451 4.3.0 try later" and row.locked_by is None
    assert drain(services).attempted == 0  # not due yet
    clock.advance(timedelta(seconds=60))
    assert drain(services).retried == 1
    [row] = outbox(services)
    assert row.next_attempt_at == clock.now() + timedelta(seconds=120)  # doubled
    clock.advance(timedelta(seconds=120))
    assert drain(services).sent == 1
    [row] = outbox(services)
    assert row.status == "sent" and row.attempts == 3 and row.last_error is None
    assert len(sink.received) == 1


def test_5xx_fails_the_row_and_says_so(desk: Services, sink: Sink) -> None:
    sink.handler.refuse["buyer@example.org"] = "550 5.1.1 no such user"
    result = receive(desk, claim())
    counts = drain(desk)
    assert (counts.sent, counts.failed) == (0, 1)
    [row] = outbox(desk)
    assert row.status == "failed" and row.last_error == "550 5.1.1 no such user"
    assert kinds(desk, result.ticket)[-1] == "reply_failed"
    assert drain(desk).attempted == 0  # failed rows are not tried again


def test_unreachable_relay_keeps_the_rows_pending(
    make_services: Callable[..., Services], db_url: str, clock
) -> None:
    relay = {"host": "127.0.0.1", "port": free_port(), "starttls": False}
    services = make_services(db_url, relay=relay, outbound=RETRY)
    for n in range(3):
        receive(services, claim(subject=f"Claim {n}", sender=f"b{n}@example.org"))
    counts = drain(services)
    assert counts.relay_error.startswith("relay: ConnectionRefusedError")
    assert counts.retried == 1  # the first row was tried; the others were given back
    rows = outbox(services)
    assert [r.status for r in rows] == ["pending"] * 3
    assert [r.attempts for r in rows] == [1, 0, 0]
    assert all(r.locked_by is None for r in rows)


def test_gives_up_after_max_attempts(
    make_services: Callable[..., Services], db_url: str, sink: Sink, clock
) -> None:
    services = make_services(db_url, relay=sink.relay_settings(), outbound=RETRY)
    sink.handler.replies[:] = ["421 4.7.0 busy"] * 10
    result = receive(services, claim())
    for _ in range(4):
        drain(services)
        clock.advance(timedelta(hours=1))
    [row] = outbox(services)
    assert row.status == "failed" and row.attempts == 4
    assert "reply_failed" in kinds(services, result.ticket)


def test_relay_with_starttls_and_auth(
    make_services: Callable[..., Services], db_url: str, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    relay = Sink(SinkHandler(), auth=True, tls=(cert, key))
    relay.controller.start()
    try:
        settings = {
            "host": "127.0.0.1",
            "port": relay.port,
            "starttls": True,
            "ca_file": str(cert),
            "username": SINK_USER,
            "password_env": "RELAY_PW",
        }
        services = make_services(db_url, relay=settings)
        receive(services, claim())
        wrong = drain_outbox(services, "w", env={"RELAY_PW": "wrong"})
        assert "SMTPAuthenticationError" in wrong.relay_error
        assert drain_outbox(services, "w", env={}).attempted == 0  # backing off: no connection
        services.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
        missing = drain_outbox(services, "w", env={})
        assert "relay.password_env: environment variable RELAY_PW" in missing.relay_error
        services.clock.advance(timedelta(hours=1))  # type: ignore[attr-defined]
        assert drain_outbox(services, "w", env={"RELAY_PW": SINK_PASSWORD}).sent == 1
        assert len(relay.wait_for(1)) == 1
    finally:
        relay.controller.stop()


def test_an_untrusted_relay_certificate_is_refused(
    make_services: Callable[..., Services], db_url: str, tmp_path: Path
) -> None:
    relay = Sink(SinkHandler(), tls=self_signed(tmp_path))
    relay.controller.start()
    try:
        services = make_services(db_url, relay={**relay.relay_settings(), "starttls": True})
        receive(services, claim())
        counts = drain_outbox(services, "w", env={})
        assert "CERTIFICATE_VERIFY_FAILED" in counts.relay_error
        assert relay.received == [] and outbox(services)[0].status == "pending"
    finally:
        relay.controller.stop()


def test_a_crashed_worker_s_rows_are_taken_over_after_the_lock(
    desk: Services, sink: Sink, clock
) -> None:
    receive(desk, claim())
    now = clock.now()
    with desk.engine.begin() as conn:  # worker "dead" claims the row, then dies
        [claimed] = outbox_repo.claim(conn, "dead", now, now + timedelta(seconds=600), 10)
    assert claimed.status == "sending"
    assert drain(desk, "alive").attempted == 0  # locked: nobody else sends it
    clock.advance(timedelta(seconds=601))
    assert drain(desk, "alive").sent == 1
    [row] = outbox(desk)
    assert row.status == "sent" and row.locked_by == "alive"
    with desk.engine.begin() as conn:  # the dead worker's late outcome is refused
        assert not outbox_repo.finish(conn, row.id, "dead", {"status": "failed"})


def test_service_sends_right_after_process_commits(
    make_services: Callable[..., Services], db_url: str, sink: Sink
) -> None:
    # A long poll interval: only the wake-up from process() can make this prompt.
    services = make_services(db_url, relay=sink.relay_settings(), outbound={"poll_seconds": 60})
    mailer = MailerService(services, worker_id="svc")
    mailer.start()
    try:
        time.sleep(0.2)  # the first drain (nothing to do) is over; the thread now waits
        started = time.monotonic()
        receive(services, claim())
        sink.wait_for(1, timeout=5)
        assert time.monotonic() - started < 5
    finally:
        mailer.stop()
    [row] = outbox(services)
    assert row.status == "sent" and row.locked_by == "svc"


def test_service_stops_promptly_when_idle(desk: Services) -> None:
    mailer = MailerService(desk)
    mailer.start()
    started = time.monotonic()
    mailer.stop()
    assert time.monotonic() - started < 2
