"""`process()`: where the pipeline's steps meet. Raw bytes in, a Disposition out.

parse (pure) -> checks (pure, all failures collected) -> route (pure) -> ONE transaction
(dedupe, thread or create, store raw bytes, stamp SLA, record events). Whatever goes wrong
on the way, the bytes end up somewhere: in the database, or in the quarantine spool with the
stage, reason and traceback. Only when both fail does `process()` raise `NotKept`, the one
case in which an edge must not acknowledge (SMTP 451, IMAP leaves the message unflagged).
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from config.wiring import Services
from intake.analyse import Analysis, analyse_many
from intake.record import Incoming, Staged, bind_staged, record, stage_incoming
from intake.types import Disposition, Duplicate, ParsedMessage, Quarantined, RawMessage
from outbound.bounce import read_bounce
from outbound.bounce_record import record_bounce
from storage.spool import SpoolError

log = logging.getLogger("intake.process")

T = TypeVar("T")


class NotKept(Exception):
    """Neither the database nor the quarantine spool could keep the bytes: do not ack."""


def process(
    raw: RawMessage,
    services: Services,
    *,
    conn: Connection | None = None,
    analysis: Analysis | None = None,
    now: datetime | None = None,
    staged: Staged | None = None,
) -> Disposition:
    """Turn raw bytes into a stored ticket message, a duplicate, or a quarantine entry.

    With `conn` (an open transaction, used by batch ingest) the message's writes go into a
    SAVEPOINT of it, so one bad message rolls back alone; the caller commits. Without it,
    the message gets its own transaction, committed before this returns. `analysis`: the
    pure stages already run for `raw` (see `prepare`). `now`: the time to record, when it
    was read from the clock elsewhere (an intake worker process stores what the serving
    process received; its clock is the one tests freeze). `staged`: rows made beforehand
    (`stage()`), used where they still apply.
    Raises NotKept only when the bytes could be kept nowhere.
    """
    started = time.perf_counter()
    if raw.received_at is None:
        raw = replace(raw, received_at=now or services.clock.now())
    label = _label(raw.data)
    if analysis is None:
        assert services.analyser is not None
        analysis = services.analyser(raw)
    if analysis.failure is not None:
        stage, reason, trace = analysis.failure
        return _quarantine(raw, services, stage, reason, label, started, trace)
    parsed = analysis.parsed
    assert parsed is not None
    label = parsed.message_id
    stage = "bounce" if analysis.bounce else "store"
    try:
        if analysis.bounce:
            return _bounce(raw, parsed, services, conn, label, started)
        assert raw.received_at is not None and analysis.report and analysis.route
        incoming = Incoming(raw, parsed, analysis.report, analysis.route, raw.received_at, staged)
        at = now or services.clock.now()
        disposition = _in_transaction(
            services, conn, lambda c: record(c, incoming, services.settings, now=at)
        )
        if conn is None:
            services.outbox_signal.set()  # committed: a queued reply can go out now
    except IntegrityError:
        # Another worker stored the same Message-ID between our lookup and our insert.
        disposition = Duplicate(ticket=_ticket_of(services, conn, label), message_id=label)
    except Exception as exc:  # every failure keeps the bytes; the traceback says where
        return _quarantine(
            raw,
            services,
            stage,
            f"{type(exc).__name__}: {exc}",
            label,
            started,
            traceback.format_exc(),
        )
    _log(label, raw, disposition, started)
    return disposition


def prepare(raws: Sequence[RawMessage], services: Services) -> list[Prepared]:
    """The pure stages for a batch, before its transaction opens: on the analysis pool when
    there is one (the batch then uses every core), else here. The result goes to
    `process_batch()`, or item by item to `process(raw, services, conn=conn, analysis=...)`."""
    now = services.clock.now()
    stamped = [r if r.received_at else replace(r, received_at=now) for r in raws]
    assert services.analyser is not None
    analyses = analyse_many(stamped, services.analyser, services.pool)
    return [
        stage(Prepared(raw, analysis), services)
        for raw, analysis in zip(stamped, analyses, strict=True)
    ]


@dataclass(frozen=True)
class Prepared:
    """One message ready to store: its bytes, what the pure stages made of it, the time
    to record (None: the clock's, when stored), and the rows `stage()` made of it."""

    raw: RawMessage
    analysis: Analysis
    now: datetime | None = None
    staged: Staged | None = None


def stage(prepared: Prepared, services: Services) -> Prepared:
    """`prepared` with the rows its transaction will most likely write made already
    (`intake.record.Staged`: the message row, and the ticket, events and rendered
    acknowledgement if it opens a ticket): work that needs no database, done before the
    SQLite write turn so that the turn, which every store worker waits for, is short. The
    transaction uses what still applies and makes the rest itself (a reply joins a ticket;
    a duplicate uses none of it).

    Returns `prepared` unchanged when there is nothing to stage (a failure to quarantine, a
    bounce) or the time to record is not known yet, and when staging fails: the same work
    then fails in the transaction, which keeps the bytes and says why as it always did."""
    analysis, raw = prepared.analysis, prepared.raw
    received_at = raw.received_at or prepared.now
    if analysis.bounce or analysis.parsed is None or received_at is None:
        return prepared
    if analysis.report is None or analysis.route is None:
        return prepared
    incoming = Incoming(raw, analysis.parsed, analysis.report, analysis.route, received_at)
    try:
        staged = bind_staged(stage_incoming(incoming, services.settings), services.engine.dialect)
    except Exception:  # the transaction meets it again, and quarantines
        log.debug("%s not staged", analysis.parsed.message_id, exc_info=True)
        return prepared
    return replace(prepared, staged=staged)


def process_batch(batch: Sequence[Prepared], services: Services) -> list[Disposition | NotKept]:
    """Store a batch in ONE transaction (group commit: one durable commit for all), each
    message in its own SAVEPOINT so a bad one rolls back alone; the result of each, in order,
    is a Disposition or the NotKept for a message kept nowhere. Only after the COMMIT does
    any of them count as stored. When the transaction itself fails (the database went away,
    the commit failed), every message is tried again alone, so each still ends stored or
    quarantined, exactly as a single process() call would leave it."""
    if not batch:
        return []
    try:
        with services.engine.begin() as conn:
            results = [_kept_or_not(item, services, conn) for item in batch]
    except Exception:
        log.exception("batch of %d: the transaction failed; storing one by one", len(batch))
        return [_kept_or_not(item, services, None) for item in batch]
    services.outbox_signal.set()  # committed: queued replies can go out now
    return results


def _kept_or_not(
    item: Prepared, services: Services, conn: Connection | None
) -> Disposition | NotKept:
    try:
        return process(
            item.raw, services, conn=conn, analysis=item.analysis, now=item.now, staged=item.staged
        )
    except NotKept as exc:
        return exc


def _bounce(
    raw: RawMessage,
    parsed: ParsedMessage,
    services: Services,
    conn: Connection | None,
    label: str,
    started: float,
) -> Disposition:
    """A bounce joins the ticket whose reply bounced, or waits in quarantine; it never
    opens a ticket (outbound/bounce_record.py). Exceptions go to process()'s handler."""
    report = read_bounce(raw.data, parsed, services.desk_domain)
    assert raw.received_at is not None
    at = raw.received_at
    try:
        outcome = _in_transaction(
            services, conn, lambda c: record_bounce(c, raw, parsed, report, at)
        )
    except IntegrityError:
        outcome = Duplicate(ticket=_ticket_of(services, conn, label), message_id=label)
    if outcome is None:
        return _quarantine(raw, services, "bounce", "bounce for unknown message", label, started)
    _log(label, raw, outcome, started)
    return outcome


def _in_transaction(
    services: Services, conn: Connection | None, body: Callable[[Connection], T]
) -> T:
    scope: AbstractContextManager[object]
    if conn is None:
        with services.engine.begin() as own:
            return body(own)
    scope = conn.begin_nested() if conn.in_transaction() else nullcontext()
    with scope:
        return body(conn)


def _ticket_of(services: Services, conn: Connection | None, message_id: str) -> str | None:
    from storage import repo
    from storage.models import ticket_ref

    def lookup(c: Connection) -> str | None:
        row = repo.find_message(c, message_id)
        return ticket_ref(row.ticket_id) if row else None

    if conn is not None:
        return lookup(conn)
    with services.engine.connect() as own:
        return lookup(own)


def _label(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def _quarantine(
    raw: RawMessage,
    services: Services,
    stage: str,
    reason: str,
    label: str,
    started: float,
    trace: str = "",
) -> Quarantined:
    assert raw.received_at is not None
    try:
        entry = services.spool.keep(
            raw.data,
            stage=stage,
            reason=reason,
            source=raw.source,
            received_at=raw.received_at,
            envelope_from=raw.envelope_from,
            envelope_to=raw.envelope_to,
            queue_hint=raw.queue_hint,
            traceback=trace,
        )
    except SpoolError as exc:
        log.critical(
            "%s NOT KEPT: %s failed (%s) and the spool failed too: %s", label, stage, reason, exc
        )
        raise NotKept(f"{stage}: {reason}; spool: {exc}") from exc
    disposition = Quarantined(quarantine_id=entry.id, stage=stage, reason=reason)
    log.warning("%s quarantined at %s: %s", label, stage, reason)
    _log(label, raw, disposition, started)
    return disposition


def _log(label: str, raw: RawMessage, disposition: Disposition, started: float) -> None:
    log.info(
        "%s source=%s disposition=%s ticket=%s ms=%.1f",
        label,
        raw.source,
        disposition.kind,
        disposition.ticket,
        (time.perf_counter() - started) * 1000,
    )
