"""Engines and transactions. The only place that knows SQLite from PostgreSQL at connect time.

SQLite runs in WAL mode (readers never block the writer), with foreign keys enforced, a busy
timeout so several processes (`serve --workers N`, a CLI command next to the server) wait for
each other instead of failing, and `synchronous=FULL` so a commit that preceded an SMTP 250 is
on disk even after a power cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import Dialect, make_url
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
    # pysqlite's own BEGIN handling breaks SAVEPOINTs; we issue BEGIN ourselves below.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
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


def make_engine(url: str) -> Engine:
    """An engine for `url` with claimdesk's connection settings applied."""
    url = normalise_url(url)
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:")
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            poolclass=StaticPool if memory else None,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
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
