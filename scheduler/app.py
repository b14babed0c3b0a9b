"""APScheduler 3.x inside `claimdesk serve`: the only module that imports APScheduler.

Jobs have stable ids, `replace_existing=True`, `coalesce=True`, `max_instances=1` and a
misfire grace time; their bodies are idempotent (scheduler.jobs). APScheduler's memory job
store forgets everything on restart, so the report's catch-up is ours: at start, the latest
cron time since the last recorded run (job_run) is run once, however many were missed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from config.settings import ConfigError
from config.wiring import Services
from scheduler import jobs

log = logging.getLogger("scheduler.app")

CATCH_UP_WINDOW = timedelta(days=1)  # with no run on record, look back this far


def report_trigger(services: Services) -> CronTrigger:
    try:
        return CronTrigger.from_crontab(
            services.settings.reports.sla_cron, timezone=services.settings.desk.tz
        )
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: reports.sla_cron: {exc}") from None


def latest_fire_time(trigger: CronTrigger, after: datetime, now: datetime) -> datetime | None:
    """The last time in (after, now] at which `trigger` fires, or None."""
    latest = None
    fire = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    while fire is not None and fire <= now:
        latest = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(microseconds=1))
    return latest


def run_due_report(services: Services) -> bool:
    """Run the report for the latest cron time not yet reported; True if one ran."""
    now = services.clock.now()
    with services.engine.connect() as conn:
        last = jobs.last_run(conn, "sla_report")
    due = latest_fire_time(report_trigger(services), last or now - CATCH_UP_WINDOW, now)
    if due is None:
        return False
    return jobs.sla_report(services, due) is not None


def _guarded(name: str, body: Callable[[], Any]) -> Callable[[], None]:
    """A job body that logs its failure instead of killing the scheduler thread."""

    def run() -> None:
        try:
            body()
        except Exception:
            log.exception("job %s failed; it runs again at its next time", name)

    run.__name__ = name
    return run


class SchedulerService:
    """Starts and stops the scheduled jobs; `extra_jobs` lets other components (the mailer's
    outbox retry, IMAP polling) add (id, seconds, callable) interval jobs."""

    name = "scheduler"

    def __init__(
        self,
        services: Services,
        extra_jobs: tuple[tuple[str, float, Callable[[], Any]], ...] = (),
    ) -> None:
        self.services = services
        self._extra = extra_jobs
        self._catch_up: threading.Thread | None = None
        settings = services.settings
        self.scheduler = BackgroundScheduler(
            timezone=settings.desk.tz,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": settings.scheduler.misfire_grace_seconds,
            },
        )
        self._add_jobs()

    def _add_jobs(self) -> None:
        services, settings = self.services, self.services.settings

        def add(body: Callable[[], None], trigger: Any, *, id: str, replace_existing: bool) -> None:
            self.scheduler.add_job(
                body,
                trigger,
                id=id,
                name=id,
                replace_existing=replace_existing,
                coalesce=True,  # after downtime: one run, not one per missed time
                max_instances=1,
                misfire_grace_time=settings.scheduler.misfire_grace_seconds,
            )

        add(
            _guarded("sla_sweep", lambda: jobs.sla_sweep(services)),
            IntervalTrigger(minutes=settings.scheduler.sla_sweep_minutes),
            id="sla_sweep",
            replace_existing=True,
        )
        add(
            _guarded("sla_report", lambda: run_due_report(services)),
            report_trigger(services),
            id="sla_report",
            replace_existing=True,
        )
        for job_id, seconds, body in self._extra:
            add(
                _guarded(job_id, body),
                IntervalTrigger(seconds=seconds),
                id=job_id,
                replace_existing=True,
            )

    def start(self) -> None:
        """Run on schedule, and catch up (one sweep, at most one missed report) in a thread
        of its own: a catch-up waiting on a busy database must not hold up the start of
        the rest of `serve`, nor its reaction to SIGTERM."""
        self.scheduler.start()
        self._catch_up = threading.Thread(target=self._run_catch_up, name="sla-catch-up")
        self._catch_up.start()
        log.info("scheduler started: %s", ", ".join(j.id for j in self.scheduler.get_jobs()))

    def _run_catch_up(self) -> None:
        _guarded("sla_sweep", lambda: jobs.sla_sweep(self.services))()
        _guarded("sla_report", lambda: run_due_report(self.services))()

    def stop(self) -> None:
        """Returns once the catch-up and any running job have finished."""
        if self._catch_up is not None:
            self._catch_up.join()
            self._catch_up = None
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
