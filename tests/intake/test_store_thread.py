"""The store thread (intake/store_thread.py) and the deferred WAL sync it and the store
workers commit with (storage/wal_sync.py, `make_engine(deferred_sync=True)`).

The writer turn is taken by the test itself (a flock, as another store process would hold
it), so that messages pile up in front of the thread deterministically.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from config.settings import SmtpSettings
from config.wiring import Services
from intake.process import NotKept, Prepared, stage
from intake.store_thread import StoreThread, store_processes
from intake.store_workers import WriterTurns, store_batch
from intake.types import Duplicate, Quarantined, RawMessage
from scheduler.clock import FrozenClock
from storage.engine import make_engine, sqlite_file
from storage.wal_sync import WalSync
from tests.intake import smtp_support
from tests.intake.smtp_support import Serve, crlf
from tests.intake.test_smtp_workers import Sender, eventually
from tests.mail import claim

serve = smtp_support.serve


def store_of(running: smtp_support.Running) -> StoreThread:
    store = running.server.store
    assert isinstance(store, StoreThread)
    return store


def test_messages_that_arrive_while_the_turn_is_taken_share_one_commit_and_no_250_before(
    serve: Serve, sqlite_url: str, clock: FrozenClock
) -> None:
    running = serve()
    store = store_of(running)
    turns = WriterTurns(sqlite_url)  # another store holding the write turn
    turns.take(wait=True)
    try:
        senders = [Sender(running, crlf(claim(subject=f"claim {n}"))) for n in range(5)]
        for sender in senders:
            sender.start()
        eventually(lambda: store.holding == 5, "5 messages handed to the store thread")
        assert all(sender.reply is None for sender in senders)  # no 250 before the commit
        assert running.count_tickets() == 0
    finally:
        turns.release()
    answers = [sender.answer() for sender in senders]
    assert all(code == 250 and b" stored" in reply for code, reply in answers)
    assert running.count_tickets() == 5
    # The thread had taken one or a few when it met the taken turn; the rest went together.
    assert sum(store.batch_sizes.values()) == 5
    assert len(store.batch_sizes) <= 2 and max(store.batch_sizes) >= 3
    received = {row.received_at for row in running.messages()}
    assert received == {clock.now()}  # the edge's (frozen) clock
    assert isinstance(next(iter(received)), datetime)


def test_the_thread_commits_without_fsync_on_its_own_engine_and_the_rest_keeps_full(
    serve: Serve,
) -> None:
    running = serve()
    store = store_of(running)
    assert store.engine is not running.services.engine
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    with running.services.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_stopping_answers_what_the_thread_holds(serve: Serve, sqlite_url: str) -> None:
    running = serve()
    store = store_of(running)
    turns = WriterTurns(sqlite_url)
    turns.take(wait=True)
    sender = Sender(running, crlf(claim()))
    sender.start()
    eventually(lambda: store.holding == 1, "the message handed to the store thread")

    stopping = threading.Thread(target=running.server.stop)
    stopping.start()
    turns.release()
    assert sender.answer()[0] == 250
    stopping.join(60)
    assert not stopping.is_alive() and store.live == 0
    assert running.count_tickets() == 1


# -- store_batch: the sync decides what may be acknowledged ---------------------------------


def _prepared(services: Services, data: bytes, now: datetime) -> Prepared:
    raw = RawMessage(data=data, source="test", envelope_to=("disputes@desk.example",))
    assert services.analyser is not None
    return stage(Prepared(raw, services.analyser(raw), now), services)


def test_a_commit_whose_wal_cannot_be_synced_is_not_acknowledged_and_its_retry_is_a_duplicate(
    make_services: Callable[..., Services], sqlite_url: str, tmp_path: Path, clock: FrozenClock
) -> None:
    services = make_services(sqlite_url)
    turns = WriterTurns(sqlite_url)
    broken = WalSync(services.engine)
    broken.path = str(tmp_path / "elsewhere" / "claimdesk.db-wal")  # the WAL is not there
    data = crlf(claim())
    garbage = b"\x00\xff\xfe not a mail message at all \x00"  # quarantined at parse
    turns.take(wait=True)
    results = store_batch(
        [_prepared(services, data, clock.now()), _prepared(services, garbage, clock.now())],
        services,
        turns,
        broken,
    )
    assert isinstance(results[0], NotKept)  # committed, not proven durable: 451, retried
    assert "durable" in str(results[0])
    assert isinstance(results[1], Quarantined)  # the spool keeps (and syncs) its own files
    assert turns.take(wait=False)  # store_batch released the turn
    retry = store_batch(
        [_prepared(services, data, clock.now())], services, turns, WalSync(services.engine)
    )
    assert isinstance(retry[0], Duplicate)  # never a second ticket


# -- WalSync and the deferred-sync engine ------------------------------------------------------


def test_wal_sync_flushes_the_databases_wal_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'claimdesk.db'}"
    engine = make_engine(url, deferred_sync=True)
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        wal = WalSync(engine)
        assert wal.path == str(tmp_path / "claimdesk.db-wal")
        assert Path(wal.path).stat().st_size > 0  # the commit is in the WAL, not synced yet
        wal.sync()
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1
    finally:
        engine.dispose()
    engine.dispose()
    Path(f"{tmp_path / 'claimdesk.db'}-wal").unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError):
        WalSync(engine).sync()


def test_wal_sync_is_a_no_op_where_the_commit_is_durable_or_nothing_is(
    pg_database: str,
) -> None:
    memory = make_engine("sqlite://", deferred_sync=True)
    postgres = make_engine(pg_database, deferred_sync=True)
    try:
        assert WalSync(memory).path is None and WalSync(postgres).path is None
        WalSync(memory).sync()
        WalSync(postgres).sync()
    finally:
        memory.dispose()
        postgres.dispose()


@pytest.mark.parametrize(
    ("keys", "cpus", "expected"),
    [
        ({}, 2, 2),  # one store process per core
        ({}, 8, 8),
        ({}, 1, 0),  # one core: the thread
        ({"store_processes": 1}, 8, 1),  # asked for: as asked
        ({"store_processes": 3}, 1, 3),
        ({"store_in_process": True}, 8, 0),
        ({"store_in_process": True, "store_processes": 4}, 8, 0),
    ],
)
def test_how_many_store_processes(keys: dict[str, object], cpus: int, expected: int) -> None:
    assert store_processes(SmtpSettings(**keys), cpus) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////var/lib/claimdesk/desk.db", "/var/lib/claimdesk/desk.db"),
        ("sqlite:///desk.db", "desk.db"),  # relative: made absolute
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql://claimdesk@127.0.0.1/claimdesk", None),
    ],
)
def test_which_urls_name_a_sqlite_file(url: str, expected: str | None) -> None:
    found = sqlite_file(url)
    assert found == (None if expected is None else os.path.abspath(expected))
