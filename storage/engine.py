"""Engines and transactions. The only place that knows SQLite from PostgreSQL at connect time.

SQLite runs in WAL mode (readers never block the writer), with foreign keys enforced, a busy
timeout so several processes (`serve --workers N`, a CLI command next to the server) wait for
each other instead of failing, and `synchronous=FULL` so a commit that preceded an SMTP 250 is
on disk even after a power cut. The intake's store engines (`deferred_sync=True`) commit with
`synchronous=NORMAL` instead and make their commits durable themselves, with one fsync of the
WAL outside the write turn before anything is acknowledged (storage/wal_sync.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.pool import StaticPool

from storage.prepared import driver_sql

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalise_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (SQLAlchemy would otherwise pick psycopg2)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    _sqlite_setup(dbapi_connection, "FULL")


def _sqlite_pragmas_deferred_sync(dbapi_connection: Any, _record: Any) -> None:
    # NORMAL in WAL mode: a COMMIT writes its frames to the WAL without an fsync (SQLite
    # still syncs the WAL before every checkpoint and the database after it). The caller
    # fsyncs the WAL before it tells anyone (WalSync), outside the write turn.
    _sqlite_setup(dbapi_connection, "NORMAL")


def _sqlite_setup(dbapi_connection: Any, synchronous: str) -> None:
    # pysqlite's own BEGIN handling breaks SAVEPOINTs; we issue BEGIN ourselves below.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # A batch stores each message in a SAVEPOINT (intake/process.py), and SQLite keeps the
    # first image of every page a savepoint changes in a sub-journal. With temporary files
    # on disk, a sub-journal past 64 KiB (SQLITE_STMTJRNL_SPILL: a message or two of 4 KiB
    # pages) goes to a temp file, written page by page: about a fifth of the write turn's
    # CPU, measured. In memory it is emptied at each RELEASE. It only ever serves ROLLBACK
    # TO; the WAL alone makes a commit durable, so durability does not change.
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock at BEGIN, so two writers queue on busy_timeout instead of
    # one failing later with "database is locked" when it upgrades a read lock.
    driver_sql(conn, "BEGIN IMMEDIATE")


def _savepoint(conn: Connection, name: str) -> None:
    driver_sql(conn, f"SAVEPOINT {name}")


def _release_savepoint(conn: Connection, name: str) -> None:
    driver_sql(conn, f"RELEASE SAVEPOINT {name}")


def _rollback_to_savepoint(conn: Connection, name: str) -> None:
    driver_sql(conn, f"ROLLBACK TO SAVEPOINT {name}")


def _plain_savepoints(dialect: Dialect) -> None:
    """SAVEPOINT, RELEASE and ROLLBACK TO as fixed SQL on the driver's cursor. SQLAlchemy's
    own compile a clause object through a full execute() each time, and a batch (one
    SAVEPOINT per message, see intake/process.py) runs two of them per message."""
    dialect.do_savepoint = _savepoint  # type: ignore[method-assign]
    dialect.do_release_savepoint = _release_savepoint  # type: ignore[method-assign]
    dialect.do_rollback_to_savepoint = _rollback_to_savepoint  # type: ignore[method-assign]


def sqlite_file(url: str | URL) -> str | None:
    """The absolute path of the SQLite database file `url` names; None for any other
    database and for in-memory SQLite (no file: no WAL to sync or checkpoint, no lock
    file to take turns on)."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return os.path.abspath(parsed.database)


def make_engine(url: str, *, deferred_sync: bool = False) -> Engine:
    """An engine for `url` with claimdesk's connection settings applied.

    `deferred_sync`: on a SQLite file, COMMIT does not fsync; whoever commits must call
    `WalSync(engine).sync()` before saying that anything is kept (the intake's store
    engines: the fsync then happens outside the write turn every store waits for, and one
    fsync covers every transaction committed before it). No effect on other databases."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            poolclass=StaticPool if memory else None,
        )
        pragmas = _sqlite_pragmas_deferred_sync if deferred_sync else _sqlite_pragmas
        event.listen(engine, "connect", pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
    _plain_savepoints(engine.dialect)
    return engine


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction: commits when the block ends, rolls back when it raises."""
    with engine.begin() as conn:
        yield conn
