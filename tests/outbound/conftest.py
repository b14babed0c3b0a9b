"""Fixtures for the outbound tests: a relay sink, and claimdesk wired to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from config.wiring import Services
from tests.outbound.sink import Sink, SinkHandler


@pytest.fixture
def sink() -> Iterator[Sink]:
    relay = Sink(SinkHandler())
    relay.controller.start()
    yield relay
    relay.controller.stop()


@pytest.fixture
def desk(make_services: Callable[..., Services], db_url: str, sink: Sink) -> Services:
    """claimdesk on each database (SQLite, then PostgreSQL), its relay the sink."""
    return make_services(db_url, relay=sink.relay_settings())
