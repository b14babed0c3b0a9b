"""`claimdesk serve`: run the configured components until SIGTERM or SIGINT.

A component is any object with `name`, `start()` (returns once it is serving; raises when it
cannot) and `stop()` (returns once its in-flight work is done): the SMTP/LMTP intake and the
IMAP pollers, the mailer and the scheduler; the web UI will join `_components()` the same way.
Components stop in reverse order of starting.

`--workers N` (N > 1): the parent forks N worker processes and only supervises them (it opens
no database and starts no threads, so forking stays safe). It opens the one listening SMTP
socket before forking and every worker accepts from it, the least-loaded first (fewest open
connections, counted in shared memory: intake/smtp_balance.py). Why not SO_REUSEPORT: the
kernel hashes the few long-lived connections of a sending MTA unevenly (2/8, 3/7), and each
worker works on one core, so a core idled. Components that must run once (scheduler,
pollers, web UI) go to worker 0. SIGTERM/SIGINT to the parent is forwarded to the workers;
a worker that dies is restarted, unless it failed by itself while starting (then everything
stops with exit code 1).
Exit codes: 0 after a clean stop, 1 when a component failed, 2 for an unusable configuration.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Protocol

from config.settings import ConfigError, Settings
from config.wiring import Services, build_services
from desk.log_batch import batch_stream_handlers
from intake.smtp_balance import NOT_SERVING, ConnectionShares
from intake.store_thread import store_processes
from outbound.enqueue import templates_for
from outbound.templates import TemplateProblem

log = logging.getLogger("desk.serve")

STARTUP_WINDOW_SECONDS = 5.0  # a worker failing sooner than this after its start is not restarted
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Component(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class SharedListener:
    """What the supervisor makes before forking and every worker inherits: the one listening
    SMTP socket, and the table of open connections by which the workers share it out."""

    sock: socket.socket
    shares: ConnectionShares

    def close(self) -> None:
        self.sock.close()
        self.shares.close()


def _components(
    settings: Settings, services: Services, worker: int, shared: SharedListener | None
) -> list[Component]:
    """What this process runs, in starting order. `worker` is 0 in a single process; what must
    run once (IMAP pollers; later the scheduler and the web UI) goes to worker 0 only."""
    from intake.imap_service import ImapService
    from intake.smtp_server import SmtpIntake
    from outbound.mailer import MailerService
    from scheduler.app import SchedulerService

    # Started in this order, stopped in reverse: the intake (SMTP, then IMAP) stops first,
    # so SIGTERM closes the door at once while background work (scheduler jobs, the mailer)
    # finishes after it. Every worker runs a mailer (rows are claimed atomically, so each
    # is sent once) woken by its own commits; the scheduler and the pollers run once.
    components: list[Component] = [MailerService(services, worker_id=f"{os.getpid()}-{worker}")]
    if worker == 0 and settings.scheduler.enabled:
        components.append(SchedulerService(services))
    if shared is None:
        components.append(SmtpIntake(settings, services))
    else:
        seat = shared.shares.seat(worker)
        components.append(SmtpIntake(settings, services, sock=shared.sock, balance=seat))
    if worker == 0:
        components.append(ImapService(services))  # one thread per [[mailboxes]] entry
    return components


def _log_levels() -> None:
    # A server's log is its record: one line per message (intake.smtp) and per start/stop,
    # even without -v. aiosmtpd logs every command at INFO: only its warnings are useful.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    for name in ("intake.smtp", "intake.imap", "desk.serve", "scheduler.app", "outbound.mailer"):
        logging.getLogger(name).setLevel(logging.INFO)
    batch_stream_handlers()  # one write per busy moment, not per line (desk/log_batch.py)


def run(settings: Settings, *, workers: int = 1) -> int:
    """Serve until SIGTERM/SIGINT; returns the process exit code."""
    _log_levels()
    if workers > 1:
        return _supervise(_share_cores(settings, workers), workers)
    return _serve(settings, worker=0, shared=None)


def _share_cores(settings: Settings, workers: int) -> Settings:
    """The cores are shared out among the workers' process pools, not multiplied: "one per
    CPU" (0) becomes each worker's share, CPUs / workers: analysis processes (1: no pool)
    and store processes (intake/store_thread.py `store_processes`: with a share of one core
    or less, a worker stores in one thread of its own, which measured best: on 2 cores
    --workers 2 did 0.18 of bare with 2 store processes each, 0.26 with 1, and more with
    the thread, no process switches and no pickling per message)."""
    share = max(1, (os.cpu_count() or 1) // workers)
    intake, smtp = settings.intake, settings.smtp
    if intake.analysis_processes == 0:
        intake = intake.model_copy(update={"analysis_processes": share})
    if smtp.store_processes == 0:
        processes = store_processes(smtp, share)
        update = {"store_processes": processes} if processes else {"store_in_process": True}
        smtp = smtp.model_copy(update=update)
    return settings.model_copy(update={"intake": intake, "smtp": smtp})


def _serve(settings: Settings, *, worker: int, shared: SharedListener | None) -> int:
    """One process: start every component, wait for a stop signal, stop them in reverse.
    `shared` is the supervisor's listening socket and balance table (`--workers`), else None."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stop.set()

    for signum in _STOP_SIGNALS:
        signal.signal(signum, on_signal)
    try:
        services = build_services(settings)
    except Exception as exc:  # the database is unreachable or its schema cannot be applied
        print(f"claimdesk: serve: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        # A broken reply template fails the start, not the first reply.
        templates_for(settings)
        components = _components(settings, services, worker, shared)
        if services.pool is not None and worker == 0 and settings.mailboxes:
            services.pool.warm()  # the pollers' batches use it; SMTP has its own workers
    except (
        ConfigError,
        ValueError,
        TemplateProblem,
    ) as exc:  # ValueError: e.g. two mailboxes with one name
        print(f"claimdesk: {exc}", file=sys.stderr)
        services.engine.dispose()
        return 2
    started: list[Component] = []
    code = 0
    try:
        for component in components:
            component.start()
            started.append(component)
        log.info("serving (pid %d): %s", os.getpid(), ", ".join(c.name for c in started))
        while not stop.wait(1.0):
            pass
    except OSError as exc:
        print(f"claimdesk: serve: {exc}", file=sys.stderr)
        code = 1
    finally:
        for component in reversed(started):
            try:
                component.stop()
            except Exception:
                log.exception("stopping %s failed", component.name)
                code = 1
        if services.pool is not None:
            services.pool.close()  # after the intake: no message is waiting on it any more
        services.engine.dispose()
    log.info("stopped (pid %d)", os.getpid())
    return code


def _shared_listener(settings: Settings, workers: int) -> tuple[SharedListener, Settings]:
    """Bind the SMTP port (non-blocking, SO_REUSEADDR) once, before forking, and make the
    workers' table of open connections: every worker inherits both. This fails early when
    the port is taken and resolves port 0 to one real port for every worker. The first
    worker that serves makes it listen: until then connections are refused (the sender
    retries), rather than queued for whichever worker comes up first to take them all.
    Raises OSError."""
    from intake.smtp_server import listening_socket

    sock = listening_socket(settings.smtp.host, settings.smtp.port, listen=False)
    try:
        shares = ConnectionShares(workers)
    except BaseException:
        sock.close()
        raise
    smtp = settings.smtp.model_copy(update={"port": sock.getsockname()[1]})
    return SharedListener(sock, shares), settings.model_copy(update={"smtp": smtp})


class _Supervisor:
    """Forks the workers, restarts the ones that die, forwards stop signals."""

    def __init__(self, settings: Settings, workers: int, shared: SharedListener) -> None:
        self.settings = settings
        self.workers = workers
        self.shared = shared
        self.children: dict[int, tuple[int, float]] = {}  # pid -> (worker index, started)
        self.stopping = False
        self.failed = False
        self._wake_r, self._wake_w = os.pipe()

    def run(self) -> int:
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(self._wake_w)
        for signum in (*_STOP_SIGNALS, signal.SIGCHLD):
            signal.signal(signum, self._on_signal)
        for index in range(self.workers):
            self._fork(index)
        log.info("supervising %d workers on port %d", self.workers, self.settings.smtp.port)
        while self.children:
            select.select([self._wake_r], [], [], 1.0)
            self._drain_wakeups()
            self._reap()
        signal.set_wakeup_fd(-1)
        return 1 if self.failed else 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum in _STOP_SIGNALS and not self.stopping:
            self._stop_all(f"received {signal.Signals(signum).name}")

    def _stop_all(self, why: str) -> None:
        log.info("%s: stopping %d workers", why, len(self.children))
        self.stopping = True
        for pid in self.children:
            _kill(pid, signal.SIGTERM)

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 512):
                pass

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            index, started = self.children.pop(pid)
            # Its last count would make a dead worker look least-loaded: the others would
            # leave new connections in the backlog for it (its replacement sets it again).
            self.shared.shares.set(index, NOT_SERVING)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                self.failed |= code != 0
                continue
            log.error("worker %d (pid %d) exited with %d", index, pid, code)
            # Killed by a signal (OOM killer, an operator): restart. Failed on its own right
            # after starting (it printed why): restarting would only repeat that.
            if code > 0 and time.monotonic() - started < STARTUP_WINDOW_SECONDS:
                self.failed = True
                self._stop_all(f"worker {index} failed while starting")
            else:
                self._fork(index)

    def _fork(self, index: int) -> None:
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(self._wake_r)
                os.close(self._wake_w)
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                code = _serve(self.settings, worker=index, shared=self.shared)
            except BaseException:
                log.exception("worker %d crashed", index)
            finally:
                logging.shutdown()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        self.children[pid] = (index, time.monotonic())


def _kill(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _supervise(settings: Settings, workers: int) -> int:
    try:
        from intake.smtp_server import tls_context

        tls_context(settings.smtp)  # an unusable certificate is a config error, said once
        shared, settings = _shared_listener(settings, workers)
    except ConfigError as exc:
        print(f"claimdesk: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"claimdesk: serve: {settings.smtp.host}:{settings.smtp.port}: {exc}", file=sys.stderr
        )
        return 1
    try:
        _migrate_once(settings)
    except Exception as exc:
        print(f"claimdesk: serve: cannot start: {exc}", file=sys.stderr)
        shared.close()
        return 1
    try:
        return _Supervisor(settings, workers, shared).run()
    finally:
        shared.close()  # every worker has exited: nobody accepts from it any more


def _migrate_once(settings: Settings) -> None:
    """Apply migrations before forking, so workers do not race to (they only check)."""
    from storage.engine import make_engine
    from storage.schema import ensure_schema

    engine = make_engine(settings.database.url)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()
