"""The SMTP/LMTP intake edge: a mail endpoint that acknowledges only what it has kept.

An aiosmtpd server on `smtp.host:smtp.port` (LMTP with `smtp.lmtp`), run on its own event loop
in a thread by `SmtpIntake` (start()/stop(), like the other `serve` components). The contract:

- RCPT: desk addresses and addresses at `smtp.extra_domains` only, else `550 5.1.1`: never a
  relay. At most `smtp.max_recipients` per message (`452 4.5.3`).
- DATA: the exact bytes (`envelope.original_content`, no trace header added) go to `process()`
  in one of the store worker processes (intake/store_workers.py: one transaction for the
  messages that arrive together), or, where the serving process has a core or less to itself
  or with `smtp.store_in_process`, in its store thread (intake/store_thread.py, the same
  batches; `store_processes()` decides). `250 2.0.0 Ok: <ticket> <disposition>` is sent
  only after `process()` returned, i.e. after its commit and the WAL's fsync (or the
  quarantine spool's fsync);
  `451 4.3.0` when nothing kept the bytes; `552 5.3.4` over `smtp.max_message_bytes` (SIZE).
  LMTP answers once per accepted recipient (RFC 2033 4.2), all with the one outcome.
- The trace a Received header would carry (peer, HELO name, protocol, envelope) is kept in the
  message row instead (`source`, `envelope_from`, `envelope_to`), so the bytes stay exact.
- Connections: `smtp.max_connections` in all and `smtp.max_connections_per_client` per client
  address (`421 4.7.0`), closed after `smtp.idle_timeout_seconds` of silence (`421 4.4.2`;
  never while the message is being processed). `stop()` stops accepting, lets open
  transactions finish (up to a grace period), waits for every `process()` call, then returns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor

from aiosmtpd.smtp import SMTP

from config.settings import ConfigError, Settings, SmtpSettings
from config.wiring import Services
from intake import smtp_replies as replies
from intake.smtp_balance import BalancedAcceptor, Seat
from intake.smtp_handler import DeskHandler
from intake.smtp_protocol import DeskLMTP, DeskSMTP, Station
from intake.store_thread import StoreThread, store_processes
from intake.store_workers import StoreWorkers

log = logging.getLogger("intake.smtp")

SHUTDOWN_GRACE_SECONDS = 30.0


def tls_context(smtp: SmtpSettings) -> ssl.SSLContext | None:
    """The STARTTLS context from `smtp.tls_cert`/`smtp.tls_key`, or None when both are empty.

    Raises ConfigError (naming the key) when only one is set or the files cannot be loaded."""
    if not smtp.tls_cert and not smtp.tls_key:
        return None
    if not smtp.tls_cert or not smtp.tls_key:
        missing = "smtp.tls_key" if smtp.tls_cert else "smtp.tls_cert"
        raise ConfigError(f"invalid configuration: {missing}: needed for STARTTLS")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(smtp.tls_cert, smtp.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"invalid configuration: smtp.tls_cert: cannot load: {exc}") from None
    return context


LISTEN_BACKLOG = 256


def listening_socket(host: str, port: int, *, listen: bool = True) -> socket.socket:
    """A bound, non-blocking TCP socket, listening unless `listen` is False (`serve
    --workers`: the supervisor binds the port before forking, and the first worker that
    serves opens it, so no connection waits in a backlog nobody takes from yet, to land
    all on whichever worker serves first). Raises OSError."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        if listen:
            sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class SmtpIntake:
    """The SMTP/LMTP server as a `serve` component: start() returns once it listens, stop()
    returns once every connection is closed and every accepted message was processed.

    Runs its own event loop in a daemon thread. `sock` (a bound socket; it listens once this
    serves) overrides `smtp.host/port`. With `balance` (`serve --workers`: `sock` is then the
    one socket every worker inherited) it accepts only while this worker holds the fewest
    connections (intake/smtp_balance.py), instead of asyncio's accept-all server; the socket
    stays open at stop(), it belongs to the supervisor.
    """

    name = "smtp"

    def __init__(
        self,
        settings: Settings,
        services: Services,
        *,
        sock: socket.socket | None = None,
        balance: Seat | None = None,
    ) -> None:
        if balance is not None and sock is None:
            raise ValueError("balance needs the listening socket the workers share")
        self.settings = settings.smtp
        self.services = services
        self._sock = sock
        self._balance = balance
        self._acceptor: BalancedAcceptor | None = None
        self._tls = tls_context(self.settings)  # config errors surface before start()
        self._hostname = socket.getfqdn()  # aiosmtpd would look it up once per connection
        self._station = Station(self.settings)
        self._pool = ThreadPoolExecutor(
            max_workers=self.settings.process_threads, thread_name_prefix="smtp-process"
        )
        processes = store_processes(self.settings, os.cpu_count() or 1)
        self._workers = StoreWorkers(settings, processes) if processes else None
        self._store: StoreWorkers | StoreThread = self._workers or StoreThread(services)
        self._handler = DeskHandler(
            services, self._pool, self._station, lmtp=self.settings.lmtp, store=self._store
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None

    @property
    def store(self) -> StoreWorkers | StoreThread:
        """What stores the messages: the store worker processes, or a thread of this one."""
        return self._store

    @property
    def workers(self) -> StoreWorkers | None:
        """The store worker processes, or None when a thread of this process stores."""
        return self._workers

    @property
    def address(self) -> tuple[str, int]:
        """(host, port) actually listened on (the port chosen by the OS when 0 was asked)."""
        assert self._sock is not None, "not started"
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Bind (unless given a socket) and serve; raises OSError when the port is taken."""
        if self._sock is None:
            host, port = self.settings.host, self.settings.port
            try:
                self._sock = listening_socket(host, port)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
        self._thread = threading.Thread(target=self._run, name="smtp-intake", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._failure is not None:
            raise self._failure
        host, port = self.address
        log.info(
            "listening on %s:%d (%s%s)",
            host,
            port,
            "LMTP" if self.settings.lmtp else "SMTP",
            ", STARTTLS" if self._tls else "",
        )

    def stop(self, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
        """Stop accepting; let open transactions end (at most `grace` seconds, then close
        them); wait for every process() call; close the loop. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            self._pool.shutdown(wait=True)
            return
        asyncio.run_coroutine_threadsafe(self._drain(grace), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> SmtpIntake:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _protocol(self) -> SMTP:
        kind = DeskLMTP if self.settings.lmtp else DeskSMTP
        return kind(
            self._handler,
            station=self._station,
            data_size_limit=self.settings.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self._hostname,
            ident="LMTP claimdesk" if self.settings.lmtp else "ESMTP claimdesk",
            tls_context=self._tls,
            loop=self._loop,
        )

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._store.start())
            self._start_accepting(loop)
        except BaseException as exc:  # reported to start()'s caller
            self._failure = exc
            self._started.set()
            loop.close()
            return
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _start_accepting(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._sock is not None
        if self._balance is None:
            self._server = loop.run_until_complete(
                loop.create_server(self._protocol, sock=self._sock)
            )
            return
        # `serve --workers`: least-connections instead of whoever wakes first, so the few
        # long-lived connections of a sending MTA keep every worker's core busy. The shared
        # socket is only bound until a worker serves (listen() again changes nothing).
        self._sock.listen(LISTEN_BACKLOG)
        self._acceptor = BalancedAcceptor(
            loop, self._sock, self._protocol, self._balance, self._station.connections
        )
        self._station.on_closed = self._acceptor.recount
        self._acceptor.start()

    async def _stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()
        if self._acceptor is not None:
            await self._acceptor.close()  # the other workers take new connections from now

    async def _drain(self, grace: float) -> None:
        station = self._station
        station.draining = True
        station.all_closed = asyncio.Event()
        await self._stop_accepting()  # no new connections from here on
        for connection in list(station.connections):
            if not connection.in_transaction:
                connection.close_with(replies.SHUTTING_DOWN)
        if station.connections:
            log.info("waiting for %d open transaction(s)", len(station.connections))
            try:
                await asyncio.wait_for(station.all_closed.wait(), grace)
            except TimeoutError:
                log.warning(
                    "%d connection(s) still open after %.0f s: closing them",
                    len(station.connections),
                    grace,
                )
                for connection in list(station.connections):
                    connection.abort()
        # Messages whose sender vanished are still being stored: they finish, too.
        if station.inflight:
            await asyncio.gather(*list(station.inflight), return_exceptions=True)
        await self._store.close()
        if self._server is not None:
            await self._server.wait_closed()
