"""Schema management: Alembic migrations applied programmatically.

`ensure_schema()` runs at start-up of every command, so the first run on an empty database
creates the schema by itself; `claimdesk db upgrade` calls `upgrade()` explicitly. Both take a
lock first (PostgreSQL advisory lock; SQLite's write lock) so two processes starting together
do not race to create the same tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x43440001  # "CD" + 1: any constant shared by all claimdesk processes


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> str | None:
    """Apply every pending migration; returns the revision now current."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
        if current_revision(conn) != head_revision():
            command.upgrade(_alembic_config(conn), "head")
        return current_revision(conn)


def ensure_schema(engine: Engine) -> None:
    """Upgrade only when behind: a cheap read on every start, the full upgrade once."""
    with engine.connect() as conn:
        if current_revision(conn) == head_revision():
            return
    upgrade(engine)
