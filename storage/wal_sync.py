"""Durability for commits made with `make_engine(..., deferred_sync=True)`: one fsync of the
SQLite WAL, after the COMMIT and outside the write turn, before anything is acknowledged.

Why: with `synchronous=FULL` every COMMIT fsyncs the WAL while it holds SQLite's write lock
(and the intake's writer turn, storage's one serial resource), so every other store waits
through the disk's flush as well, and each transaction pays its own. Committing with
`synchronous=NORMAL` writes the same frames without the fsync; `WalSync.sync()` then flushes
the WAL file. It is as durable: a commit's frames are in the WAL until a checkpoint copies
them into the database, and SQLite syncs the WAL before every checkpoint and the database
after it, so whether or not a checkpoint (or a WAL restart) came in between, once sync()
returns the commit survives a power cut. One fsync covers every transaction committed
before it, by any process: group commit across the serving processes.
"""

from __future__ import annotations

import os

from sqlalchemy import Engine

from storage.engine import sqlite_file


class WalSync:
    """fsync of one SQLite database's WAL file; a no-op for PostgreSQL (its COMMIT is
    durable) and in-memory SQLite (nothing is)."""

    def __init__(self, engine: Engine) -> None:
        database = sqlite_file(engine.url)
        self.path = f"{database}-wal" if database else None

    def sync(self) -> None:
        """Make every transaction committed on this database so far durable.

        Raises OSError when it could not (the disk failed, the WAL is gone): the caller must
        then not acknowledge what it committed since its last successful sync."""
        if self.path is None:
            return
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
