"""The pure half of `process()`: parse, checks and route, with no database and no clock.

Kept apart so it can run in other processes: `analyse_many()` spreads a batch over a small
process pool (the work is CPU-bound Python, so threads would wait on the GIL), and the
parent then stores the results in order in one transaction. Whatever fails here comes back
as a value (`failure`) for the parent to quarantine; nothing raises out of `analyse()`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from multiprocessing import get_context

from config.settings import Settings
from intake.checks import Checker
from intake.mime import parse_message
from intake.types import CheckReport, ParsedMessage, RawMessage, RouteDecision, Unparseable
from outbound.bounce import looks_like_bounce
from routing.router import Router

log = logging.getLogger("intake.analyse")

# Below this many messages a pool's round trips cost more than they save.
POOL_MIN_BATCH = 8
# After the pool broke, analyse in-process this long before starting it again: a message
# that kills a worker must not cost a pool start (seconds) on every batch.
POOL_REST_SECONDS = 60.0


@dataclass(frozen=True)
class Analysis:
    """What the pure stages made of one message: either `parsed` (+ `report` and `route`,
    absent for a bounce) or a `failure` (stage, reason, traceback) to quarantine."""

    parsed: ParsedMessage | None = None
    report: CheckReport | None = None
    route: RouteDecision | None = None
    bounce: bool = False
    failure: tuple[str, str, str] | None = None


class Analyser:
    """The pure stages, built once per process (language profiles, compiled rules)."""

    def __init__(self, settings: Settings, checker: Checker | None = None,
                 router: Router | None = None) -> None:  # fmt: skip
        self.domain = settings.desk.from_address.rpartition("@")[2] or "claimdesk.invalid"
        self.checker = checker or Checker(settings)
        self.router = router or Router(settings)

    def __call__(self, raw: RawMessage) -> Analysis:
        stage = "parse"
        try:
            parsed = parse_message(raw.data, desk_domain=self.domain)
            if isinstance(parsed, Unparseable):
                return Analysis(failure=("parse", parsed.reason, ""))
            if not parsed.from_address and raw.envelope_from:
                parsed = replace(parsed, from_address=raw.envelope_from.strip().lower())
            if not parsed.from_address:
                return Analysis(failure=("parse", "no sender address", ""))
            if looks_like_bounce(parsed):
                return Analysis(parsed=parsed, bounce=True)
            stage = "checks"
            report = self.checker.run(parsed)
            stage = "route"
            route = self.router.route(raw.envelope_to, parsed, raw.queue_hint)
            return Analysis(parsed=parsed, report=report, route=route)
        except Exception as exc:  # a bug on some input: the bytes are quarantined, not lost
            return Analysis(failure=(stage, f"{type(exc).__name__}: {exc}", traceback.format_exc()))


_worker: Analyser | None = None


def exit_with_parent(parent: int) -> None:
    """End this (worker) process as soon as `parent` is no longer its parent: a worker must
    not outlive a SIGKILLed server, holding its inherited stdout and stderr open and idling
    for nothing. `parent` comes from the parent itself: if it died while this worker was
    starting, getppid() is already someone else's and the watch ends this process at once."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _init_worker(settings: Settings, parent: int) -> None:
    global _worker
    exit_with_parent(parent)
    _worker = Analyser(settings)


def _ready() -> bool:
    return _worker is not None


def _analyse_in_worker(raw: RawMessage) -> Analysis:
    assert _worker is not None
    return _worker(raw)


class AnalysisPool:
    """A lazily started pool of analyser processes (spawned: safe in a threaded server)."""

    def __init__(self, settings: Settings, processes: int | None = None) -> None:
        self.settings = settings
        self.processes = processes if processes is not None else (os.cpu_count() or 1)
        self._executor: Executor | None = None
        self._resting_until = 0.0

    @property
    def enabled(self) -> bool:
        """Configured with more than one process, and not resting after a break."""
        return self.processes > 1 and time.monotonic() >= self._resting_until

    def broke(self) -> None:
        """A worker died: close the pool and analyse in-process for a while."""
        self.close()
        self._resting_until = time.monotonic() + POOL_REST_SECONDS

    def _pool(self) -> Executor:
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.processes,
                mp_context=get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.settings, os.getpid()),
            )
        return self._executor

    def map(self, raws: Sequence[RawMessage]) -> list[Analysis]:
        """Analyses in order; raises BrokenProcessPool if a worker died."""
        chunk = max(1, len(raws) // (self.processes * 4))
        return list(self._pool().map(_analyse_in_worker, raws, chunksize=chunk))

    def warm(self) -> None:
        """Start the worker processes now (their language profiles take about a second to
        load) without waiting for them, so the first message does not pay for it."""
        if self.enabled:
            pool = self._pool()
            for _ in range(self.processes):
                pool.submit(_ready)

    def one(self, raw: RawMessage, fallback: Analyser) -> Analysis:
        """One message on the pool (for an edge with one message at a time, e.g. SMTP
        DATA: the calling thread waits without holding the GIL); in-process if the pool
        is off or broke."""
        if self.enabled:
            try:
                return self._pool().submit(_analyse_in_worker, raw).result()
            except BrokenProcessPool:
                log.error("analysis pool broke; analysing in-process for a while")
                self.broke()
        return fallback(raw)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def analyse_many(
    raws: Sequence[RawMessage], analyser: Analyser, pool: AnalysisPool | None
) -> list[Analysis]:
    """Every message analysed, in order: in the pool for a large enough batch, else here.
    A pool that breaks (a worker killed) is closed and the batch is analysed here."""
    if pool is not None and pool.enabled and len(raws) >= POOL_MIN_BATCH:
        try:
            return pool.map(raws)
        except BrokenProcessPool:
            log.error("analysis pool broke; analysing in-process for a while")
            pool.broke()
    return [analyser(raw) for raw in raws]
