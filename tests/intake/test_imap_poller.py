"""IMAP intake against a real Dovecot on 127.0.0.1: exactly once, after actions, faults.

Each test has its own Dovecot user (its own mailbox) on a module-wide server, or a server of
its own when it stops the server or hides capabilities. claimdesk runs on SQLite here; the
cursor's storage is also tested on PostgreSQL (test_imap_cursor.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete, select

from config.wiring import Services
from intake.imap_poller import MailboxPoller, fetch_once
from intake.imap_service import ImapService
from intake.imap_session import ImapFault
from intake.types import Disposition
from storage import repo
from storage.imap_repo import Cursor, load_cursor
from storage.models import IMAP_CURSOR, MESSAGE
from tests.dovecot import PASSWORD, Dovecot, dovecot_fixture, make_dovecot_fixture  # noqa: F401
from tests.mail import claim

PASSWORD_ENV = "CLAIMDESK_TEST_IMAP_PASSWORD"
WRONG_ENV = "CLAIMDESK_TEST_IMAP_WRONG"
ENV = {PASSWORD_ENV: PASSWORD, WRONG_ENV: "not-" + PASSWORD}
FOLDER = "Claims"
POISON = b"\r\nThis is not a mail message: there is no header at all.\r\n"


def claims(count: int, tag: str) -> list[bytes]:
    """Distinct complete claims (to the disputes address: the cheapest path through process)."""
    return [
        claim(subject=f"Parcel {tag} {i}", message_id=f"<{tag}-{i}@buyer.example>")
        for i in range(count)
    ]


def mailbox(server: Dovecot, user: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": user,
        "host": "127.0.0.1",
        "port": server.port,
        "tls": "none",
        "username": user,
        "password_env": PASSWORD_ENV,
        "folder": FOLDER,
        "batch_size": 20,
        **overrides,
    }


@pytest.fixture
def build(make_services: Callable[..., Services], sqlite_url: str) -> Callable[..., Services]:
    """claimdesk wired with these [[mailboxes]] tables, all on one SQLite database."""

    def factory(*mailboxes: dict[str, Any]) -> Services:
        return make_services(sqlite_url, mailboxes=list(mailboxes))

    return factory


@pytest.fixture
def build_each_db(make_services: Callable[..., Services], db_url: str) -> Callable[..., Services]:
    """As `build`, once on SQLite and once on PostgreSQL (whose database the run shares)."""

    def factory(*mailboxes: dict[str, Any]) -> Services:
        services = make_services(db_url, mailboxes=list(mailboxes))
        with services.engine.begin() as conn:
            conn.execute(delete(IMAP_CURSOR))
        return services

    return factory


def message_ids(services: Services) -> list[str]:
    with services.engine.connect() as conn:
        return list(conn.execute(select(MESSAGE.c.message_id)).scalars())


def tickets(services: Services) -> int:
    with services.engine.connect() as conn:
        return repo.count_tickets(conn)


def cursor(services: Services, name: str, folder: str = FOLDER) -> Cursor | None:
    with services.engine.connect() as conn:
        return load_cursor(conn, name, folder)


def fetch(services: Services, index: int = 0, **kw: Any) -> Any:
    return fetch_once(services, services.settings.mailboxes[index], env=ENV, **kw)


def await_true(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {seconds}s")
        time.sleep(0.05)


class Watch:
    """A Progress that counts and can run something at the Nth processed message."""

    def __init__(self, at: int = 0, action: Callable[[], None] | None = None) -> None:
        self.count = 0
        self.total = 0
        self._at, self._action = at, action

    def found(self, mailbox: str, count: int) -> None:
        self.total += count

    def processed(self, mailbox: str, disposition: Disposition) -> None:
        self.count += 1
        if self._action is not None and self.count == self._at:
            self._action()


# -- import and after actions --------------------------------------------------------------------


def test_pass_imports_each_message_once_and_flags_it_seen(
    dovecot: Dovecot, build_each_db: Any
) -> None:
    user = dovecot.add_user()
    dovecot.append(user, FOLDER, claims(45, user))
    services = build_each_db(mailbox(dovecot, user, after="seen", address="disputes@desk.example"))

    first = fetch(services)
    assert first.dispositions == {"stored": 45} and first.acted == 45
    assert dovecot.uids(user, FOLDER, "UNSEEN") == []
    uidvalidity = dovecot.uidvalidity(user, FOLDER)
    assert cursor(services, user) == Cursor(user, FOLDER, uidvalidity, last_uid=45)
    with services.engine.connect() as conn:
        sources = list(conn.execute(select(MESSAGE.c.source).order_by(MESSAGE.c.id)).scalars())
    assert sources[0] == f"imap:{user}/{FOLDER}/{uidvalidity}:1"

    dovecot.append(user, FOLDER, claims(2, user + "-late"))
    second = fetch(services)
    assert second.found == 2 and second.dispositions == {"stored": 2}
    assert fetch(services).found == 0  # UID SEARCH 48:* answers 47: filtered out
    assert tickets(services) == 47 and len(set(message_ids(services))) == 47


def test_move_after_action_moves_exactly_the_imported_messages(
    dovecot: Dovecot, build: Any
) -> None:
    user = dovecot.add_user()
    dovecot.append(user, FOLDER, claims(30, user))
    services = build(mailbox(dovecot, user, after="move:Processed"))
    report = fetch(services)
    assert report.dispositions == {"stored": 30}
    assert dovecot.uids(user, FOLDER) == []
    assert len(dovecot.uids(user, "Processed")) == 30  # the folder was created for us
    assert tickets(services) == 30


def test_without_move_it_copies_then_expunges_only_its_own_uids(
    make_dovecot: Callable[..., Dovecot], build: Any
) -> None:
    server = make_dovecot(capabilities_without=["MOVE"])
    user = server.add_user()
    server.append(user, FOLDER, claims(10, user))
    services = build(mailbox(server, user, after="move:Processed", batch_size=10))

    def another_client_deletes_something() -> None:
        # Arrives mid-batch already flagged \Deleted: a plain EXPUNGE would destroy it.
        server.append(user, FOLDER, claims(1, "other"), flags=[rb"\Deleted"])

    fetch(services, progress=Watch(at=5, action=another_client_deletes_something))
    assert server.uids(user, FOLDER) == [11]  # still there, untouched
    assert len(server.uids(user, "Processed")) == 10
    report = fetch(services)
    assert report.dispositions == {"stored": 1}  # and imported next pass like any other
    assert tickets(services) == 11


def test_mailbox_queue_and_address_reach_the_router(dovecot: Dovecot, build: Any) -> None:
    user = dovecot.add_user()
    dovecot.append(user, FOLDER, [claim(to="support@desk.example", message_id="<q@b.example>")])
    services = build(mailbox(dovecot, user, queue="security"))
    assert fetch(services).imported == 1
    with services.engine.connect() as conn:
        (ticket,) = repo.list_tickets(conn)
    assert (ticket.queue, ticket.route_rule) == ("security", "mailbox_hint")


# -- resync, poison, undeliverable ---------------------------------------------------------------


def test_uidvalidity_change_resyncs_the_folder_relying_on_dedupe(
    dovecot: Dovecot, build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user = dovecot.add_user()
    letters = claims(5, user)
    dovecot.append(user, FOLDER, letters)
    services = build(mailbox(dovecot, user))
    assert fetch(services).dispositions == {"stored": 5}
    old = dovecot.uidvalidity(user, FOLDER)

    client = dovecot.client(user)
    client.delete_folder(FOLDER)  # recreated: the same mail under new UIDs
    client.logout()
    dovecot.append(user, FOLDER, [*letters, *claims(1, user + "-new")])
    assert dovecot.uidvalidity(user, FOLDER) != old

    with caplog.at_level(logging.WARNING, logger="intake.imap"):
        report = fetch(services)
    assert report.resynced
    assert report.dispositions == {"duplicate": 5, "stored": 1}
    assert "UIDVALIDITY" in caplog.text and "re-reading the whole folder" in caplog.text
    assert tickets(services) == 6
    assert dovecot.uids(user, FOLDER, "UNSEEN") == []
    assert cursor(services, user) == Cursor(user, FOLDER, dovecot.uidvalidity(user, FOLDER), 6)


def test_poison_message_is_quarantined_and_never_blocks_the_rest(
    dovecot: Dovecot, build: Any
) -> None:
    user = dovecot.add_user()
    dovecot.append(user, FOLDER, [*claims(3, user + "a"), POISON, *claims(3, user + "b")])
    services = build(mailbox(dovecot, user, batch_size=2))
    report = fetch(services)
    assert report.dispositions == {"stored": 6, "quarantined": 1}
    (entry,) = services.spool.list()
    assert entry.source.endswith(":4") and services.spool.raw(entry.id) == POISON
    assert dovecot.uids(user, FOLDER, "UNSEEN") == []  # kept in quarantine, so acted on
    assert fetch(services).found == 0  # and never tried again


def test_message_the_server_cannot_deliver_is_retried_without_blocking(
    dovecot: Dovecot, build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user = dovecot.add_user()
    dovecot.append(user, FOLDER, claims(5, user))
    unreadable = dovecot.message_files(user, FOLDER)[2]  # UID 3
    mode = unreadable.stat().st_mode
    unreadable.chmod(0)  # Dovecot's FETCH fails ("Internal error") and it hangs up
    services = build(mailbox(dovecot, user))

    with caplog.at_level(logging.WARNING, logger="intake.imap"):
        report = fetch(services)
    assert report.dispositions == {"stored": 4} and report.undelivered == [3]
    assert f"imap:{user}/{FOLDER}/" in caplog.text and "failed to deliver" in caplog.text
    assert dovecot.uids(user, FOLDER, "UNSEEN") == [3]
    assert cursor(services, user).retry == (3,)  # type: ignore[union-attr]

    base = unreadable.name.split(":")[0]  # Dovecot renames it (new/ -> cur/, flags)
    (unreadable,) = [f for f in dovecot.message_files(user, FOLDER) if f.name.startswith(base)]
    unreadable.chmod(mode)
    report = fetch(services)
    assert report.dispositions == {"stored": 1} and report.undelivered == []
    assert cursor(services, user).retry == ()  # type: ignore[union-attr]
    assert dovecot.uids(user, FOLDER, "UNSEEN") == [] and tickets(services) == 5


# -- the fault test ------------------------------------------------------------------------------


def test_server_stopped_mid_batch_then_crash_before_commit_still_exactly_once(
    make_dovecot: Callable[..., Dovecot], build: Any
) -> None:
    server = make_dovecot()
    user = server.add_user()
    server.append(user, FOLDER, claims(2000, user))
    services = build(mailbox(server, user, after="move:Processed", batch_size=200))
    stopped = threading.Event()

    def stop_server_from_another_thread() -> None:
        threading.Thread(target=lambda: (server.stop(), stopped.set())).start()
        assert stopped.wait(10)  # message 700 of 2000: in the middle of the fourth batch

    with pytest.raises(ImapFault):
        fetch(services, progress=Watch(at=700, action=stop_server_from_another_thread))
    # Batches 1-4 are committed; batch 4 was committed while the server was gone, so its
    # move is pending; nothing was moved that was not committed.
    state = cursor(services, user)
    assert state is not None and state.last_uid == 800
    assert state.after_pending == tuple(range(601, 801))
    assert tickets(services) == 800

    class Crash(BaseException):
        """Stands for the process dying: nothing after it runs."""

    def crash() -> None:
        raise Crash

    server.start()
    with pytest.raises(Crash):  # mid-transaction of the batch 1001-1200: rolled back
        fetch(services, progress=Watch(at=350, action=crash))
    assert tickets(services) == 1000

    report = fetch(services)
    assert report.found == 1000 and report.dispositions == {"stored": 1000}
    ids = message_ids(services)
    assert len(ids) == len(set(ids)) == tickets(services) == 2000
    assert server.uids(user, FOLDER) == []
    assert len(server.uids(user, "Processed")) == 2000  # each moved exactly once
    final = cursor(services, user)
    assert final is not None and final.after_pending == () and final.retry == ()


def test_two_pollers_on_one_folder_never_make_a_second_ticket(
    dovecot: Dovecot, build_each_db: Any
) -> None:
    user = dovecot.add_user()
    dovecot.append(user, FOLDER, claims(200, user))
    services = build_each_db(mailbox(dovecot, user))
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fetch(services)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    fetch(services)
    ids = message_ids(services)
    assert len(ids) == len(set(ids)) == tickets(services) == 200
    assert dovecot.uids(user, FOLDER, "UNSEEN") == []


# -- TLS and credentials -------------------------------------------------------------------------


def test_implicit_tls_and_starttls(make_dovecot: Callable[..., Dovecot], build: Any) -> None:
    server = make_dovecot(tls=True)
    user = server.add_user()
    server.append(user, FOLDER, claims(2, user))
    services = build(
        mailbox(server, user, name="implicit", tls="implicit", port=server.tls_port),
        mailbox(server, user, name="starttls", tls="starttls", folder="Later"),
    )
    with pytest.raises(ImapFault, match="CERTIFICATE_VERIFY_FAILED"):
        fetch(services, 0)  # the system trust store does not know our test certificate
    assert fetch(services, 0, ssl_context=server.ssl_context()).imported == 2
    server.append(user, "Later", claims(1, user + "-later"))
    assert fetch(services, 1, ssl_context=server.ssl_context()).imported == 1


def test_xoauth2_token_from_the_environment(
    make_dovecot: Callable[..., Dovecot], build: Any
) -> None:
    server = make_dovecot(oauth2=True)
    user = server.add_user()
    server.append(user, FOLDER, claims(2, user))
    token_env = "CLAIMDESK_TEST_IMAP_TOKEN"
    services = build(mailbox(server, user, password_env="", oauth2_token_env=token_env))
    mb = services.settings.mailboxes[0]
    forged = server.oauth2_token(user, secret=b"someone else's key")
    with pytest.raises(ImapFault, match=r"\(XOAUTH2\) failed: \[AUTHENTICATIONFAILED\]"):
        fetch_once(services, mb, env={token_env: forged})
    assert fetch_once(services, mb, env={token_env: server.oauth2_token(user)}).imported == 2


def test_missing_secret_is_named(dovecot: Dovecot, build: Any) -> None:
    user = dovecot.add_user()
    services = build(mailbox(dovecot, user, password_env="CLAIMDESK_TEST_UNSET"))
    with pytest.raises(ImapFault, match=r"CLAIMDESK_TEST_UNSET .*is not set"):
        fetch(services)


# -- the service: IDLE, polling, faults ----------------------------------------------------------


def running(services: Services, **kw: Any) -> ImapService:
    service = ImapService(services, env=ENV, backoff_start=0.05, backoff_max=0.5, **kw)
    service.start()
    return service


def test_idle_imports_a_message_appended_while_running(dovecot: Dovecot, build: Any) -> None:
    user = dovecot.add_user()
    dovecot.append(user, FOLDER, claims(1, user))
    # poll_seconds is far beyond the deadlines below: only IDLE can bring the second message.
    services = build(mailbox(dovecot, user, poll_seconds=600))
    service = running(services)
    try:
        await_true(lambda: tickets(services) == 1)
        dovecot.append(user, FOLDER, claims(1, user + "-live"))
        started = time.monotonic()
        await_true(lambda: tickets(services) == 2, seconds=10)
        assert time.monotonic() - started < 5
        await_true(lambda: dovecot.uids(user, FOLDER, "UNSEEN") == [])
    finally:
        service.stop()


def test_polls_when_the_server_has_no_idle(
    make_dovecot: Callable[..., Dovecot], build: Any
) -> None:
    server = make_dovecot(capabilities_without=["IDLE"])
    user = server.add_user()
    services = build(mailbox(server, user, poll_seconds=0.2))
    server.append(user, FOLDER, [])  # the folder exists, empty
    service = running(services)
    try:
        server.append(user, FOLDER, claims(3, user))
        await_true(lambda: tickets(services) == 3)
    finally:
        service.stop()


def test_service_reconnects_with_backoff_after_the_server_restarts(
    make_dovecot: Callable[..., Dovecot], build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server = make_dovecot()
    user = server.add_user()
    server.append(user, FOLDER, claims(1, user))
    services = build(mailbox(server, user, poll_seconds=600))
    with caplog.at_level(logging.INFO, logger="intake.imap"):
        service = running(services)
        try:
            await_true(lambda: tickets(services) == 1)
            server.stop()
            await_true(lambda: "retrying in" in caplog.text)
            server.start()
            server.append(user, FOLDER, claims(1, user + "-after"))
            await_true(lambda: tickets(services) == 2)
        finally:
            service.stop()
    assert "working again" in caplog.text


def test_failing_mailboxes_are_logged_and_the_others_keep_importing(
    dovecot: Dovecot, build: Any, caplog: pytest.LogCaptureFixture
) -> None:
    good, locked = dovecot.add_user(), dovecot.add_user()
    dovecot.append(good, FOLDER, claims(2, good))
    services = build(
        mailbox(dovecot, locked, name="locked", password_env=WRONG_ENV),
        mailbox(dovecot, good, name="nofolder", folder="Nope"),
        mailbox(dovecot, good, name="good", poll_seconds=600),
    )
    with caplog.at_level(logging.ERROR, logger="intake.imap"):
        service = running(services)
        try:
            await_true(lambda: tickets(services) == 2)
            await_true(lambda: set(service.failing) == {"locked", "nofolder"})
        finally:
            service.stop()
    assert f"login as '{locked}'" in caplog.text and "AUTHENTICATIONFAILED" in caplog.text
    assert "folder 'Nope' cannot be selected" in caplog.text
    assert "retrying in" in caplog.text


def test_stop_ends_a_long_pass_after_its_current_batch(dovecot: Dovecot, build: Any) -> None:
    user = dovecot.add_user()
    dovecot.append(user, FOLDER, claims(300, user))
    services = build(mailbox(dovecot, user, batch_size=20))
    poller = MailboxPoller(services, services.settings.mailboxes[0], env=ENV)
    stop = threading.Event()
    watch = Watch(at=30, action=stop.set)
    report = poller.run_pass(watch, should_stop=stop.is_set)
    poller.close()
    assert report.interrupted and report.imported == 40  # two whole batches
    assert len(dovecot.uids(user, FOLDER, "SEEN")) == 40


def test_the_clock_starts_when_the_message_reached_the_mailbox(
    dovecot: Dovecot, build: Any, clock: Any
) -> None:
    """Mail that waited in the folder while claimdesk was down keeps its arrival time as
    `received_at` (INTERNALDATE), so downtime does not lengthen the 30-day deadline."""
    from datetime import UTC, datetime, timedelta

    user = dovecot.add_user()
    arrived = clock.now() - timedelta(days=3, hours=2)
    client = dovecot.client(user)
    try:
        client.create_folder(FOLDER)
        client.append(FOLDER, claim(message_id="<late@buyer.example>"), msg_time=arrived)
        client.append(FOLDER, claim(message_id="<skewed@buyer.example>"),
                      msg_time=clock.now() + timedelta(days=2))  # fmt: skip
    finally:
        client.logout()
    services = build(mailbox(dovecot, user))
    fetch(services)
    with services.engine.connect() as conn:
        rows = {r.message_id: r.received_at for r in conn.execute(select(MESSAGE))}
    assert rows["late@buyer.example"] == arrived.replace(microsecond=0).astimezone(UTC)
    assert rows["skewed@buyer.example"] == clock.now()  # a future server date is capped
    with services.engine.connect() as conn:
        ticket = repo.get_ticket(conn, 1)
    assert ticket.due_at == arrived.replace(microsecond=0) + timedelta(days=30)
    assert isinstance(ticket.due_at, datetime)


def test_a_large_batch_is_analysed_on_the_pool_without_breaking_it(
    dovecot: Dovecot,
    make_services: Callable[..., Services],
    sqlite_url: str,
    caplog: pytest.LogCaptureFixture,
    clock: Any,
) -> None:
    """The INTERNALDATE reaches the analysis processes as a plain UTC time: IMAPClient's own
    time zone class cannot be unpickled there, which broke the pool on every batch."""
    from datetime import UTC, datetime, timedelta

    from intake.analyse import POOL_MIN_BATCH

    clock.set(datetime.now(UTC) + timedelta(hours=1))  # the server's dates are in the past
    user = dovecot.add_user()
    dovecot.append(user, FOLDER, claims(POOL_MIN_BATCH * 2, user))
    services = make_services(
        sqlite_url, mailboxes=[mailbox(dovecot, user)], intake={"analysis_processes": 2}
    )
    assert services.pool is not None and services.pool.enabled
    with caplog.at_level(logging.ERROR, logger="intake.analyse"):
        fetch(services)
    services.pool.close()
    assert tickets(services) == POOL_MIN_BATCH * 2
    assert not [r for r in caplog.records if "pool broke" in r.getMessage()]
