"""Shared fixtures: real databases (SQLite file, and the local PostgreSQL), a frozen clock,
and a `services` factory that wires claimdesk exactly as production does.

Tests that need a service skip when it is absent on a developer's machine, but FAIL when
CLAIMDESK_REQUIRE_SERVICES=1 (set by .ci/run), so CI can never pass on skipped service tests.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, text

from config.settings import Settings, build_settings
from scheduler.clock import FrozenClock
from storage.engine import make_engine
from storage.schema import upgrade

if TYPE_CHECKING:
    from config.wiring import Services

PG_ADMIN_URL = os.environ.get(
    "CLAIMDESK_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_SERVICES = os.environ.get("CLAIMDESK_REQUIRE_SERVICES") == "1"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def service_missing(name: str, why: str) -> None:
    """Skip locally, fail in CI: a test that needs `name` must not pass by being skipped."""
    message = f"service {name} unavailable: {why}"
    if REQUIRE_SERVICES:
        pytest.fail(message + " (CLAIMDESK_REQUIRE_SERVICES=1)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated to head, dropped afterwards."""
    try:
        admin = make_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        service_missing("postgresql", str(exc).splitlines()[0])
    name = f"claimdesk_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty_pg(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "TRUNCATE attachment, event, outbox, message, ticket, imap_cursor, job_run "
                "RESTART IDENTITY CASCADE"
            )
        )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs on SQLite and again on PostgreSQL, on an empty schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'claimdesk.db'}"
        return
    url = request.getfixturevalue("pg_database")
    engine = make_engine(url)
    _empty_pg(engine)
    engine.dispose()
    yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'claimdesk.db'}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """Settings from the defaults plus overrides: make_settings(desk={"timezone": ...})."""

    def factory(url: str | None = None, **tables: Any) -> Settings:
        document: dict[str, Any] = {
            k: dict(v) if isinstance(v, dict) else v for k, v in tables.items()
        }
        document.setdefault("database", {})["url"] = url or f"sqlite:///{tmp_path / 'cd.db'}"
        document.setdefault("desk", {}).setdefault("spool_dir", str(tmp_path / "spool"))
        return build_settings(document, env={})

    return factory


@pytest.fixture
def make_services(
    make_settings: SettingsFactory, clock: FrozenClock
) -> Iterator[Callable[..., Services]]:
    # Imported here so that storage and config tests run even while a pipeline module breaks.
    from config.wiring import build_services

    built: list[Services] = []

    def factory(url: str | None = None, **tables: Any) -> Services:
        services = build_services(make_settings(url, **tables), clock=clock)
        built.append(services)
        return services

    yield factory
    for services in built:
        services.engine.dispose()


@pytest.fixture
def services(make_services: Callable[..., Services], db_url: str) -> Services:
    """claimdesk wired on each database (SQLite, then PostgreSQL)."""
    return make_services(db_url)


@pytest.fixture
def sqlite_services(make_services: Callable[..., Services], sqlite_url: str) -> Services:
    """claimdesk wired on SQLite only (for tests about parsing/checks, not storage)."""
    return make_services(sqlite_url)
