"""Storage on both dialects: schema by migration, UTC times, refs, raw bytes, the spool."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from storage import repo
from storage.engine import make_engine
from storage.models import TICKET, ticket_id_from_ref, ticket_ref
from storage.schema import current_revision, ensure_schema, head_revision, upgrade
from storage.spool import Spool, SpoolError


def _ticket(at: datetime) -> dict:
    return {
        "queue": "general",
        "status": "new",
        "subject": "s",
        "sender": "a@b.c",
        "language": "en",
        "route_rule": "fallback",
        "received_at": at,
        "clock_started_at": at,
        "due_at": at + timedelta(days=30),
        "updated_at": at,
    }


def test_schema_is_created_by_migration_and_idempotent(db_url: str) -> None:
    engine = make_engine(db_url)
    ensure_schema(engine)
    ensure_schema(engine)
    assert upgrade(engine) == head_revision()
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        tables = set(inspect(conn).get_table_names())
    assert {"ticket", "message", "attachment", "event", "outbox"} <= tables
    engine.dispose()


def test_times_come_back_aware_utc(db_url: str) -> None:
    engine = make_engine(db_url)
    ensure_schema(engine)
    moscow = timezone(timedelta(hours=3))
    at = datetime(2026, 1, 31, 23, 30, tzinfo=moscow)
    with engine.begin() as conn:
        tid = repo.insert_ticket(conn, _ticket(at))
    with engine.connect() as conn:
        row = repo.get_ticket(conn, tid)
    assert row.received_at == at and row.received_at.tzinfo == UTC
    with engine.begin() as conn, pytest.raises(Exception, match="naive"):
        repo.insert_ticket(conn, _ticket(datetime(2026, 1, 1)))
    engine.dispose()


def test_sqlite_runs_in_wal_with_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        # Savepoint sub-journals stay in memory (storage/engine.py): 2 is MEMORY.
        assert conn.exec_driver_sql("PRAGMA temp_store").scalar() == 2
    engine.dispose()


def test_foreign_keys_are_enforced(db_url: str) -> None:
    engine = make_engine(db_url)
    ensure_schema(engine)
    with pytest.raises(Exception), engine.begin() as conn:  # noqa: B017 - dialects differ
        repo.add_event(conn, 999, "created", datetime.now(UTC))
    engine.dispose()


def test_refs() -> None:
    assert ticket_ref(42) == "CD-000042"
    assert ticket_ref(12345678) == "CD-12345678"
    assert ticket_id_from_ref("cd-000042") == 42
    for bad in ("CD-42", "XX-000042", "CD-00004a", "000042"):
        assert ticket_id_from_ref(bad) is None


def test_refs_are_unique_per_row(db_url: str) -> None:
    engine = make_engine(db_url)
    ensure_schema(engine)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        ids = [repo.insert_ticket(conn, _ticket(at)) for _ in range(3)]
    with engine.connect() as conn:
        assert [r.id for r in conn.execute(select(TICKET.c.id))] == ids
    assert len({ticket_ref(i) for i in ids}) == 3
    engine.dispose()


def test_spool_keeps_exact_bytes_and_metadata(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    data = bytes(range(256)) * 10
    entry = spool.keep(
        data,
        stage="parse",
        reason="why",
        source="test",
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
        envelope_to=("a@b",),
    )
    assert spool.raw(entry.id) == data
    assert spool.get(entry.id) == entry
    assert [e.id for e in spool.list()] == [entry.id]
    assert not list((tmp_path / "spool").glob(".*.tmp"))
    spool.mark_released(entry.id)
    assert spool.list() == []
    assert (tmp_path / "spool" / "released" / f"{entry.id}.eml").read_bytes() == data


def test_spool_reports_failure_to_keep(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    spool = Spool(tmp_path / "file" / "spool")
    with pytest.raises(SpoolError):
        spool.keep(b"x", stage="s", reason="r", source="t", received_at=datetime.now(UTC))


def test_spool_lists_bytes_whose_metadata_is_missing(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    (tmp_path / "orphan.eml").write_bytes(b"abc")
    [entry] = spool.list()
    assert entry.id == "orphan" and entry.stage == "unknown" and entry.size == 3


def test_migrations_match_the_models(db_url: str) -> None:
    """Alembic's autogenerate finds nothing to add: the tables are what the models say."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    engine.dispose()


def test_spool_keeps_the_same_bytes_once(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    first = spool.keep(b"same", stage="parse", reason="r", source="a", received_at=at)
    again = spool.keep(b"same", stage="store", reason="r2", source="b", received_at=at)
    other = spool.keep(b"other", stage="parse", reason="r", source="c", received_at=at)
    assert again == first and other.id != first.id
    assert len(spool.list()) == 2
    spool.mark_released(first.id)
    assert spool.keep(b"same", stage="parse", reason="r", source="d", received_at=at).id != first.id
