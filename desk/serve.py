"""`claimdesk serve`: run the configured components until SIGTERM or SIGINT.

A component is any object with `name`, `start()` (returns once it is serving; raises when it
cannot) and `stop()` (returns once its in-flight work is done): the SMTP/LMTP intake and the
IMAP pollers, the mailer and the scheduler; the web UI will join `_components()` the same way.
Components stop in reverse order of starting.

`--workers N` (N > 1): the parent forks N worker processes and only supervises them (it opens
no database and starts no threads, so forking stays safe). Every worker serves SMTP on the
same port with SO_REUSEPORT; components that must run once (scheduler, pollers, web UI) go to
worker 0. SIGTERM/SIGINT to the parent is forwarded to the workers; a worker that dies is
restarted, unless it failed by itself while starting (then everything stops with exit code 1).
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
from types import FrameType
from typing import Protocol

from config.settings import ConfigError, Settings
from config.wiring import Services, build_services
from desk.log_batch import batch_stream_handlers
from outbound.enqueue import templates_for
from outbound.templates import TemplateProblem

log = logging.getLogger("desk.serve")

STARTUP_WINDOW_SECONDS = 5.0  # a worker failing sooner than this after its start is not restarted
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Component(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


def _components(
    settings: Settings, services: Services, worker: int, shared_port: bool
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
    components.append(SmtpIntake(settings, services, reuse_port=shared_port))
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
    return _serve(settings, worker=0, shared_port=False)


def _share_cores(settings: Settings, workers: int) -> Settings:
    """The cores are shared out among the workers' process pools, not multiplied: "one per
    CPU" (0) becomes CPUs / workers in each worker, at least 1: analysis processes (1: no
    pool) and store processes. Storing in the serving process's own threads measured worst
    (one GIL for SMTP and storing, no group commit); more store processes than the share
    measured worse too (smaller batches, more switching, more waiting for the SQLite write
    turn): on 2 cores --workers 2 at 2 store processes each did 0.18 of bare, at 1 each 0.21,
    the same as one serving process."""
    share = max(1, (os.cpu_count() or 1) // workers)
    intake, smtp = settings.intake, settings.smtp
    if intake.analysis_processes == 0:
        intake = intake.model_copy(update={"analysis_processes": share})
    if smtp.store_processes == 0:
        smtp = smtp.model_copy(update={"store_processes": share})
    return settings.model_copy(update={"intake": intake, "smtp": smtp})


def _serve(settings: Settings, *, worker: int, shared_port: bool) -> int:
    """One process: start every component, wait for a stop signal, stop them in reverse."""
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
        components = _components(settings, services, worker, shared_port)
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


def _reserve_port(settings: Settings) -> tuple[socket.socket, Settings]:
    """Bind (without listening) the SMTP port with SO_REUSEPORT: this fails early when the
    port is taken, resolves port 0 to a real port for every worker, and receives no
    connections itself (the kernel only hands them to listening sockets)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        settings.smtp.host, settings.smtp.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    port = sock.getsockname()[1]
    smtp = settings.smtp.model_copy(update={"port": port})
    return sock, settings.model_copy(update={"smtp": smtp})


class _Supervisor:
    """Forks the workers, restarts the ones that die, forwards stop signals."""

    def __init__(self, settings: Settings, workers: int) -> None:
        self.settings = settings
        self.workers = workers
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
                code = _serve(self.settings, worker=index, shared_port=True)
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
        reservation, settings = _reserve_port(settings)
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
        reservation.close()
        return 1
    try:
        return _Supervisor(settings, workers).run()
    finally:
        reservation.close()


def _migrate_once(settings: Settings) -> None:
    """Apply migrations before forking, so workers do not race to (they only check)."""
    from storage.engine import make_engine
    from storage.schema import ensure_schema

    engine = make_engine(settings.database.url)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()
