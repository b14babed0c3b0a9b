"""The IMAP cursor row on SQLite and PostgreSQL, its migration, and UID set formatting."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import delete, inspect
from sqlalchemy.exc import IntegrityError

from intake.imap_session import uid_set
from storage.engine import make_engine
from storage.imap_repo import Cursor, load_cursor, save_cursor
from storage.models import IMAP_CURSOR
from storage.schema import MIGRATIONS_DIR, upgrade
from tests.conftest import T0

MAX_UID = 2**32 - 1  # RFC 3501: nz-number is 32-bit unsigned; INTEGER would overflow


def test_cursor_round_trips_unsigned_32_bit_values(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(delete(IMAP_CURSOR))  # the PostgreSQL database is shared by the run
    first = Cursor("main", "INBOX", MAX_UID, last_uid=MAX_UID - 1, retry=(7,), after_pending=(1, 2))
    with engine.begin() as conn:
        assert load_cursor(conn, "main", "INBOX") is None
        save_cursor(conn, first, T0, exists=False)
    later = Cursor("main", "INBOX", MAX_UID, last_uid=MAX_UID)
    with engine.begin() as conn:
        assert load_cursor(conn, "main", "INBOX", for_update=True) == first
        save_cursor(conn, later, T0, exists=True)
    with engine.connect() as conn:
        assert load_cursor(conn, "main", "INBOX") == later
        assert load_cursor(conn, "main", "Archive") is None  # keyed by mailbox and folder
    with pytest.raises(IntegrityError), engine.begin() as conn:
        save_cursor(conn, first, T0, exists=False)  # a second poller's racing insert
    engine.dispose()


def test_migration_0002_adds_and_removes_only_the_cursor_table(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    assert "imap_cursor" in inspect(engine).get_table_names()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")  # later migrations first, then ours alone
    assert "imap_cursor" in inspect(engine).get_table_names()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    names = inspect(engine).get_table_names()
    assert "imap_cursor" not in names and "ticket" in names
    upgrade(engine)
    assert "imap_cursor" in inspect(engine).get_table_names()
    engine.dispose()


@pytest.mark.parametrize(
    ("uids", "expected"),
    [
        ([5], "5"),
        ([3, 1, 2], "1:3"),
        ([1, 2, 3, 7, 9, 10], "1:3,7,9:10"),
        ([10, 10, 11], "10:11"),
        ([1, 3, 5], "1,3,5"),
    ],
)
def test_uid_set_is_a_compact_sequence_set(uids: list[int], expected: str) -> None:
    assert uid_set(uids) == expected


def test_uid_set_refuses_an_empty_set() -> None:
    with pytest.raises(ValueError):
        uid_set([])
