"""The composition root: the one place that constructs collaborators from settings.

`Services` is what `process()` and every edge receive; nothing reads global state. Building
it is the expensive part of start-up (language profiles, compiled rules, schema check), so
an edge builds it once and reuses it for every message.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from config.settings import Settings
from intake.analyse import Analyser, AnalysisPool
from intake.checks import Checker
from routing.router import Router
from scheduler.clock import Clock, SystemClock
from storage.engine import make_engine
from storage.schema import ensure_schema
from storage.spool import Spool


@dataclass
class Services:
    settings: Settings
    engine: Engine
    spool: Spool
    checker: Checker
    router: Router
    clock: Clock = field(default_factory=SystemClock)
    # Set by process() after a commit that may have queued mail: wakes the mailer thread.
    outbox_signal: threading.Event = field(default_factory=threading.Event)
    # The pure stages in this process, and a pool of processes for batches (started lazily).
    analyser: Analyser | None = None
    pool: AnalysisPool | None = None

    def __post_init__(self) -> None:
        if self.analyser is None:
            self.analyser = Analyser(self.settings, self.checker, self.router)

    @property
    def desk_domain(self) -> str:
        return self.settings.desk.from_address.rpartition("@")[2] or "claimdesk.invalid"


def build_services(
    settings: Settings,
    *,
    clock: Clock | None = None,
    engine: Engine | None = None,
    migrate: bool = True,
) -> Services:
    """Everything `process()` needs; applies pending migrations unless `migrate` is False."""
    engine = engine or make_engine(settings.database.url)
    if migrate:
        ensure_schema(engine)
    processes = settings.intake.analysis_processes
    return Services(
        settings=settings,
        engine=engine,
        spool=Spool(Path(settings.desk.spool_dir)),
        checker=Checker(settings),
        router=Router(settings),
        clock=clock or SystemClock(),
        pool=AnalysisPool(settings, processes or None),
    )
