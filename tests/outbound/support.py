"""Helpers shared by the outbound tests."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from config.wiring import Services
from intake.process import process
from intake.types import Disposition, RawMessage
from outbound.mailer import DrainCounts, drain_outbox
from storage import repo
from storage.models import OUTBOX, ticket_id_from_ref


def receive(
    services: Services, data: bytes, *, to: str = "disputes@desk.example", **kw: Any
) -> Disposition:
    return process(RawMessage(data=data, source="test", envelope_to=(to,), **kw), services)


def drain(services: Services, worker: str = "test-worker") -> DrainCounts:
    return drain_outbox(services, worker, env={})


def outbox(services: Services) -> list[Any]:
    with services.engine.connect() as conn:
        return list(conn.execute(select(OUTBOX).order_by(OUTBOX.c.id)))


def events(services: Services, ref: str | None) -> list[Any]:
    assert ref is not None
    with services.engine.connect() as conn:
        return repo.ticket_events(conn, ticket_id_from_ref(ref))  # type: ignore[arg-type]


def kinds(services: Services, ref: str | None) -> list[str]:
    return [e.kind for e in events(services, ref)]
