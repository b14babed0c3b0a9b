"""The SMTP edge with store worker processes (`smtp.store_processes`): group commit, the
serving process's clock, a worker that dies, no worker at all, an outage, a clean stop.

Workers are paused with SIGSTOP so that messages pile up in them deterministically.
"""

from __future__ import annotations

import os
import signal
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path

import pytest

from intake import smtp_replies as replies
from intake.store_workers import StoreWorkers
from scheduler.clock import FrozenClock
from tests.intake import smtp_support
from tests.intake.smtp_support import Outage, Running, Serve, crlf
from tests.mail import claim

serve = smtp_support.serve

DISPUTES = "disputes@desk.example"
BUYER = "buyer@example.org"
WAIT_SECONDS = 60.0


def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` (state of another process or thread) until it holds."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {WAIT_SECONDS:.0f} s")
        time.sleep(0.01)


def workers_of(running: Running) -> StoreWorkers:
    workers = running.server.workers
    assert workers is not None
    return workers


@contextmanager
def paused(pids: Iterator[int | None] | list[int | None]) -> Iterator[list[int]]:
    stopped = [pid for pid in pids if pid is not None]
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield stopped
    finally:
        for pid in stopped:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


class Sender(threading.Thread):
    """One client delivering one message in the background; `reply` once it is answered."""

    def __init__(self, running: Running, data: bytes) -> None:
        super().__init__(daemon=True)
        self.running, self.data = running, data
        self.reply: tuple[int, bytes] | None = None

    def run(self) -> None:
        client = self.running.smtp()
        client.mail(BUYER)
        client.rcpt(DISPUTES)
        self.reply = client.data(self.data)
        with suppress(smtplib.SMTPException, OSError):  # a draining server says 421 at QUIT
            client.quit()
        client.close()

    def answer(self) -> tuple[int, bytes]:
        self.join(WAIT_SECONDS)
        assert self.reply is not None, "no reply"
        return self.reply


def held(workers: StoreWorkers) -> int:
    return sum(workers.holding().values())


def test_messages_that_arrive_together_share_one_commit_and_keep_the_edges_clock(
    serve: Serve, clock: FrozenClock
) -> None:
    running = serve(store_processes=2)
    workers = workers_of(running)
    assert workers.live == 2
    with paused(list(workers.pids().values())):
        senders = [Sender(running, crlf(claim(subject=f"claim {n}"))) for n in range(8)]
        for sender in senders:
            sender.start()
        eventually(lambda: held(workers) == 8, "8 messages waiting in the workers")
        assert all(sender.reply is None for sender in senders)  # no 250 before the commit
    replies_seen = [sender.answer() for sender in senders]
    assert all(code == 250 and b" stored" in text for code, text in replies_seen)
    assert running.count_tickets() == 8
    assert max(workers.batch_sizes) > 1  # several messages in one transaction
    assert sum(workers.batch_sizes.values()) == 8
    received = {row.received_at for row in running.messages()}
    assert received == {clock.now()}  # the serving process's (frozen) clock, not the worker's
    assert isinstance(next(iter(received)), datetime)


def test_a_worker_that_dies_holding_a_message_means_451_then_a_replacement_stores_the_retry(
    serve: Serve,
) -> None:
    running = serve(store_processes=2)
    workers = workers_of(running)
    data = crlf(claim())
    with paused(list(workers.pids().values())) as stopped:
        sender = Sender(running, data)
        sender.start()
        eventually(lambda: held(workers) == 1, "the message waiting in a worker")
        [index] = [i for i, count in workers.holding().items() if count]
        victim = workers.pids()[index]
        assert victim in stopped
        os.kill(victim, signal.SIGKILL)
        assert sender.answer() == (451, replies.NOT_KEPT[4:].encode())
    eventually(lambda: workers.live == 2 and victim not in workers.pids().values(), "replaced")
    retry = Sender(running, data)
    retry.start()
    assert retry.answer()[0] == 250
    assert running.count_tickets() == 1


def test_with_every_worker_gone_the_serving_process_stores_itself(serve: Serve) -> None:
    running = serve(store_processes=2)
    workers = workers_of(running)
    workers.restart_delay = 3600.0  # they stay gone for this test
    for pid in workers.pids().values():
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    eventually(lambda: workers.live == 0, "every worker gone")
    sender = Sender(running, crlf(claim()))
    sender.start()
    code, text = sender.answer()
    assert code == 250 and text.endswith(b" stored")
    assert running.count_tickets() == 1
    assert sum(workers.batch_sizes.values()) == 0  # no worker stored it


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_database_outage_in_a_worker_quarantines_or_451(serve: Serve, db_url: str) -> None:
    """(PostgreSQL: an outage that reaches the workers' own connections; the SQLite variant,
    moving the file away, cannot take a file another process holds open.)"""
    running = serve(db_url, store_processes=2)
    outage = Outage(running.services)

    def deliver(subject: str) -> tuple[int, bytes]:
        sender = Sender(running, crlf(claim(subject=subject)))
        sender.start()
        return sender.answer()

    assert deliver("kept")[0] == 250
    outage.database_down()
    try:
        code, text = deliver("aside")
        assert code == 250 and text.startswith(b"2.0.0 Ok: quarantined ")
        outage.spool_down()
        try:
            assert deliver("refused") == (451, replies.NOT_KEPT[4:].encode())
        finally:
            outage.spool_up()
    finally:
        outage.database_up()
    assert deliver("refused")[0] == 250
    assert running.count_tickets() == 2
    assert len(running.services.spool.list()) == 1


def test_stop_waits_for_the_messages_in_the_workers_then_ends_them(serve: Serve) -> None:
    running = serve(store_processes=2)
    workers = workers_of(running)
    processes = [w.process for w in workers._live.values()]
    with paused(list(workers.pids().values())):
        sender = Sender(running, crlf(claim()))
        sender.start()
        eventually(lambda: held(workers) == 1, "the message waiting in a worker")
        stopper = threading.Thread(target=running.server.stop)
        stopper.start()
        assert sender.reply is None
    assert sender.answer()[0] == 250
    stopper.join(WAIT_SECONDS)
    assert not stopper.is_alive()
    assert [p.exitcode for p in processes] == [0, 0]
    assert running.count_tickets() == 1


def test_writer_turns_exclude_each_other_on_one_sqlite_file_and_not_on_postgresql(
    tmp_path: Path,
) -> None:
    from intake.store_workers import WriterTurns

    url = f"sqlite:///{tmp_path / 'claimdesk.db'}"
    first, second = WriterTurns(url), WriterTurns(url)  # two open files: as two processes
    entered = threading.Event()

    def take_second() -> None:
        with second.turn():
            entered.set()

    with first.turn():
        waiter = threading.Thread(target=take_second)
        waiter.start()
        assert not entered.wait(0.2)  # the second writer waits for its turn...
    assert entered.wait(WAIT_SECONDS)  # ...and gets it the moment the first one ends
    waiter.join()
    other = WriterTurns(f"sqlite:///{tmp_path / 'other.db'}")
    with first.turn(), other.turn():  # another database: no waiting
        pass
    postgres = WriterTurns("postgresql+psycopg://claimdesk@127.0.0.1/claimdesk")
    with postgres.turn(), postgres.turn():  # PostgreSQL: no turns at all
        pass


def test_a_workers_checkpoints_run_after_its_batches_not_inside_its_commits(
    tmp_path: Path,
) -> None:
    from intake.store_workers import WalCheckpoints
    from storage.engine import make_engine

    path = tmp_path / "claimdesk.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE blob (data BLOB)")
    checkpoints = WalCheckpoints(engine, every=3)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    empty = path.stat().st_size
    for batch in range(1, 7):
        with engine.begin() as conn:  # ~600 pages: two batches pass SQLite's 1,000
            conn.exec_driver_sql("INSERT INTO blob VALUES (randomblob(2400000))")
        before = path.stat().st_size
        assert checkpoints.after_batch() == (batch % 3 == 0)
        if batch < 3:
            assert path.stat().st_size == empty  # no checkpoint inside a commit
        if batch % 3 == 0:
            assert path.stat().st_size > before  # the WAL's pages reached the database
    engine.dispose()
    postgres = make_engine("postgresql+psycopg://claimdesk@127.0.0.1/claimdesk")
    assert WalCheckpoints(postgres, every=1).after_batch() is False  # nothing to do there


def test_stop_signals_to_the_process_group_do_not_cut_a_worker_short(serve: Serve) -> None:
    """Ctrl-C and systemd signal every process of the group: the worker still answers for
    the message it holds and keeps serving; only the serving process decides when it ends."""
    running = serve(store_processes=2)
    workers = workers_of(running)
    pids = list(workers.pids().values())
    with paused(pids):
        sender = Sender(running, crlf(claim()))
        sender.start()
        eventually(lambda: held(workers) == 1, "the message waiting in a worker")
        for pid in pids:
            assert pid is not None
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGINT)
    assert sender.answer()[0] == 250
    assert list(workers.pids().values()) == pids and workers.live == 2
