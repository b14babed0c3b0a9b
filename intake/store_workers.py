"""Processes that run process() whole for the SMTP/LMTP edge, committing together what
arrives together.

Why: parsing, the language check and the transaction are CPU-bound Python. In the serving
process they would share one GIL with aiosmtpd's event loop, and threads only add switching;
so each message goes, pickled and length-framed over a socketpair, to one of a few worker
processes, which run the pure stages and then ONE transaction for every message that queued
up meanwhile (group commit: one COMMIT for the lot, each message in its own SAVEPOINT,
`process_batch()`). A worker answers only after that COMMIT and an fsync of the WAL
(`store_batch`), so the edge's 250 still means "committed, durably". A worker that dies
fails the messages it held with NotKept (the edge answers 451 and the sender retries; one
that was committed just before the death is then a Duplicate, never a second ticket) and
is replaced; while no worker is up, the edge stores in its own process.

A worker never idles while another holds the SQLite write turn: it analyses the messages
that arrived meanwhile and stores them with its batch (bigger batches, fewer commits).

Frames: an 8-byte big-endian length, then a pickle. Edge -> worker: (request id, RawMessage,
time to record). Worker -> edge: the answers of one transaction in one frame, a list of
(request id, Disposition or None, why not kept, how many messages shared the transaction);
request id 0 says the worker is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import multiprocessing
import os
import pickle
import select
import signal
import socket
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy import Engine, event

from config.settings import Settings
from intake.types import Disposition, Quarantined, RawMessage
from storage.engine import make_engine, sqlite_file
from storage.wal_sync import WalSync

if TYPE_CHECKING:
    from config.wiring import Services
    from intake.process import NotKept, Prepared

_In = TypeVar("_In")
_Held = TypeVar("_Held")

log = logging.getLogger("intake.smtp")

_HEADER = struct.Struct("!Q")
_READY = 0
BATCH_LIMIT = 64  # messages in one transaction at most
READY_SECONDS = 120.0  # a worker loads language profiles and opens the database first
_RESPAWN_MAX_DELAY = 30.0
_STABLE_SECONDS = 10.0  # a worker that lived this long restarts at once when it dies


class WorkerLost(Exception):
    """The worker holding a message died before answering: nothing says it was kept."""


class NoWorker(Exception):
    """No worker is up (all died and are restarting): the caller stores in-process."""


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    started: float
    pending: dict[int, asyncio.Future[Disposition]] = field(default_factory=dict)
    outgoing: list[bytes] = field(default_factory=list)  # frames not written yet (_send)


class StoreWorkers:
    """`processes` worker processes and the edge's side of their sockets (one event loop)."""

    def __init__(self, settings: Settings, processes: int) -> None:
        # The workers store; they must not start pools of their own.
        intake = settings.intake.model_copy(update={"analysis_processes": 1})
        self.settings = settings.model_copy(update={"intake": intake})
        self.processes = processes
        self._live: dict[int, _Worker] = {}
        self._next_id = 1
        self._closing = False
        self._delays: dict[int, float] = {}
        # A worker that dies young waits this long, doubled each time, before its restart
        # (a worker that crashes at once must not spin); an old one restarts at once.
        self.restart_delay = 1.0
        self._tasks: set[asyncio.Task[None]] = set()
        # Messages stored, by the size of the transaction they were in (group commit at work).
        self.batch_sizes: Counter[int] = Counter()

    @property
    def live(self) -> int:
        """Workers up and ready."""
        return len(self._live)

    def pids(self) -> dict[int, int | None]:
        """Worker index -> pid, of the live workers."""
        return {index: w.process.pid for index, w in self._live.items()}

    def holding(self) -> dict[int, int]:
        """Worker index -> messages sent to it and not answered yet."""
        return {index: len(w.pending) for index, w in self._live.items()}

    async def start(self) -> None:
        """Start every worker and wait until each is ready; raises RuntimeError if one
        could not start (the edge must not claim to serve)."""
        results = await asyncio.gather(
            *(self._launch(index) for index in range(self.processes)), return_exceptions=True
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self.close()
            raise RuntimeError(f"intake worker failed to start: {failures[0]}")

    async def store(self, raw: RawMessage, now: datetime) -> Disposition:
        """process() of `raw` in the least busy worker; returns after its COMMIT.

        Raises NotKept (the worker kept the bytes nowhere), WorkerLost (it died first) or
        NoWorker (none is up)."""
        from intake.process import NotKept

        if not self._live:
            raise NoWorker
        worker = min(self._live.values(), key=lambda w: len(w.pending))
        request = self._next_id
        self._next_id += 1
        future: asyncio.Future[Disposition] = asyncio.get_running_loop().create_future()
        worker.pending[request] = future
        payload = pickle.dumps((request, raw, now), protocol=pickle.HIGHEST_PROTOCOL)
        if not worker.outgoing:
            asyncio.get_running_loop().call_soon(self._send, worker)
        worker.outgoing.append(_HEADER.pack(len(payload)) + payload)
        result = await future
        if isinstance(result, NotKept):
            raise result
        return result

    async def close(self) -> None:
        """Tell every worker to finish (end of input), wait for them; idempotent."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        workers = list(self._live.values())
        for worker in workers:
            worker.writer.close()
        loop = asyncio.get_running_loop()
        for worker in workers:
            await loop.run_in_executor(None, _join, worker.process)
        self._live.clear()

    def _send(self, worker: _Worker) -> None:
        """Write the frames queued for `worker` in this turn of the event loop in one send:
        messages whose DATA ended together cost one write here and wake the worker once.
        No drain: what is queued is bounded by the open transactions (one per connection).
        A worker that went away fails what it held through `_answers` -> `_lost`."""
        data = b"".join(worker.outgoing)
        worker.outgoing.clear()
        if worker.writer.is_closing():
            return
        try:
            worker.writer.write(data)
        except (ConnectionError, RuntimeError):
            worker.writer.close()  # _answers sees the end of input and fails the pending

    # -- starting, reading answers, restarting ------------------------------------------------

    async def _launch(self, index: int) -> None:
        parent, child = socket.socketpair()
        process = multiprocessing.get_context("spawn").Process(
            target=_worker_main,
            args=(child, self.settings, os.getpid(), logging.getLogger().level),
            name=f"claimdesk-intake-{index}",
            daemon=True,
        )
        try:
            process.start()
        finally:
            child.close()
        reader, writer = await asyncio.open_connection(sock=parent, limit=2**20)
        try:
            answers = await asyncio.wait_for(_read_frame(reader), READY_SECONDS)
            request = answers[0][0]
            if request != _READY:
                raise RuntimeError(f"worker {index} said {request!r} instead of ready")
        except (asyncio.IncompleteReadError, TimeoutError, RuntimeError) as exc:
            writer.close()
            await asyncio.get_running_loop().run_in_executor(None, _join, process)
            raise RuntimeError(f"worker {index} (exit {process.exitcode}): {exc!r}") from exc
        worker = _Worker(index, process, reader, writer, time.monotonic())
        self._live[index] = worker
        self._spawn_task(self._answers(worker))
        log.info("intake worker %d ready (pid %s)", index, process.pid)

    async def _answers(self, worker: _Worker) -> None:
        from intake.process import NotKept

        try:
            while True:
                for request, disposition, why, batch in await _read_frame(worker.reader):
                    self.batch_sizes[batch] += 1
                    future = worker.pending.pop(request, None)
                    if future is None or future.done():
                        continue
                    future.set_result(disposition if disposition is not None else NotKept(why))
        except (asyncio.IncompleteReadError, ConnectionError, OSError, pickle.PickleError):
            pass
        finally:
            self._lost(worker)

    def _lost(self, worker: _Worker) -> None:
        self._live.pop(worker.index, None)
        worker.writer.close()
        for future in worker.pending.values():
            if not future.done():
                future.set_exception(WorkerLost(f"intake worker {worker.index} died"))
        worker.pending.clear()
        if self._closing:
            return
        lived = time.monotonic() - worker.started
        if lived > _STABLE_SECONDS:
            self._delays.pop(worker.index, None)
        delay = 0.0 if lived > _STABLE_SECONDS else self._backoff(worker.index)
        log.error(
            "intake worker %d (pid %s) died; restarting in %.1f s",
            worker.index,
            worker.process.pid,
            delay,
        )
        self._spawn_task(self._restart(worker, delay))

    async def _restart(self, worker: _Worker, delay: float) -> None:
        await asyncio.get_running_loop().run_in_executor(None, _join, worker.process)
        await asyncio.sleep(delay)
        if self._closing:
            return
        try:
            await self._launch(worker.index)
        except RuntimeError as exc:
            log.error("intake worker %d could not restart: %s", worker.index, exc)
            if not self._closing:
                self._spawn_task(self._restart(worker, self._backoff(worker.index)))

    def _backoff(self, index: int) -> float:
        """The next restart delay of a worker that keeps failing: doubled each time."""
        previous = self._delays.get(index)
        delay = min(previous * 2 if previous else self.restart_delay, _RESPAWN_MAX_DELAY)
        self._delays[index] = delay
        return delay

    def _spawn_task(self, coroutine: object) -> None:
        task = asyncio.ensure_future(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


_Answer = tuple[int, Disposition | None, str, int]


async def _read_frame(reader: asyncio.StreamReader) -> list[_Answer]:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    frame: list[_Answer] = pickle.loads(await reader.readexactly(size))
    return frame


def _join(process: BaseProcess, timeout: float = 60.0) -> None:
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()


# -- the worker process ------------------------------------------------------------------------


class _Channel:
    """The worker's end of the socketpair: blocking frames, and "is another one waiting?"."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.ended = False

    def _frame(self) -> bytes | None:
        if len(self.buffer) < _HEADER.size:
            return None
        (size,) = _HEADER.unpack_from(self.buffer)
        end = _HEADER.size + size
        if len(self.buffer) < end:
            return None
        frame = bytes(self.buffer[_HEADER.size : end])
        del self.buffer[:end]
        return frame

    def receive(self, *, wait: bool) -> bytes | None:
        """The next frame; None at the end of input, or (wait=False) when none is complete."""
        while (frame := self._frame()) is None:
            if not wait and not self.readable():
                return None
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                self.ended = True
                return None
            self.buffer += chunk
        return frame

    def readable(self) -> bool:
        """Bytes are waiting: receive() would not block for long."""
        return not self.ended and bool(select.select([self.sock], [], [], 0)[0])

    def send(self, value: object) -> None:
        payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        self.sock.sendall(_HEADER.pack(len(payload)) + payload)


class WriterTurns:
    """Whose turn it is to write a SQLite database, among the store workers of every serving
    process on this machine: an exclusive flock on a lock file named after the database.

    SQLite lets one writer in at a time and makes the others poll: its busy handler sleeps
    1, 2, 5, 10... ms between tries, so a worker that finds the lock taken sleeps through
    several of the other's commits. A flock wakes the next writer the moment it is free
    (and is released by the kernel if its holder dies). PostgreSQL needs no turns."""

    def __init__(self, database_url: str) -> None:
        self._file: int | None = None
        database = sqlite_file(database_url)
        if database is not None:
            name = hashlib.sha256(database.encode()).hexdigest()[:16]
            path = os.path.join(tempfile.gettempdir(), f"claimdesk-writer-{name}.lock")
            self._file = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def take(self, *, wait: bool) -> bool:
        """Take the turn; with wait=False only if it is free at once. True: it is ours."""
        if self._file is None:
            return True
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        self.take(wait=True)
        try:
            yield
        finally:
            self.release()


class WalCheckpoints:
    """A store worker's SQLite checkpoints, run outside the write turn.

    Why: SQLite checkpoints automatically inside the COMMIT that takes its WAL past 1,000
    pages, i.e. inside the write turn every store worker waits for (about 2 ms, every ~20
    batches). The workers' own connections therefore do not checkpoint automatically; each
    runs a PASSIVE checkpoint (it never blocks a writer) every `every` batches, after it has
    released the turn and answered. The other connections (the serving process, scheduler,
    mailer) keep SQLite's automatic checkpoint, so the WAL stays bounded without workers too.
    A no-op on PostgreSQL and in-memory SQLite."""

    def __init__(self, engine: Engine, every: int = 16) -> None:
        self._engine = engine if sqlite_file(engine.url) else None
        self.every = every
        self._batches = 0
        if self._engine is not None:
            event.listen(self._engine, "connect", _no_autocheckpoint)
            self._engine.dispose()  # connections made before this get the setting too

    def after_batch(self) -> bool:
        """Count a committed batch; checkpoint every `every`. True when it checkpointed."""
        if self._engine is None:
            return False
        self._batches += 1
        if self._batches % self.every:
            return False
        raw = self._engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
        finally:
            raw.close()
        return True


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


class Arrivals(Protocol[_In]):
    """Where a store's messages arrive: a worker's socket, the store thread's inbox."""

    def receive(self, *, wait: bool) -> _In | None:
        """The next arrival; None at the end of input or (wait=False) when none is there."""

    def readable(self) -> bool:
        """An arrival is waiting: receive() would not block for long."""


def gather(
    arrivals: Arrivals[_In],
    first: _In,
    analyse: Callable[[_In], _Held],
    turns: WriterTurns,
) -> list[_Held]:
    """The batch for one transaction, returned with the write turn taken: `first` and what
    queued behind it, each analysed as it is read. While another store holds the turn, the
    messages that arrive meanwhile are analysed and join the batch instead of waiting for
    the next one; the turn is waited for only when there is nothing else to do."""
    held = [analyse(first)]
    while True:
        while len(held) < BATCH_LIMIT and (more := arrivals.receive(wait=False)) is not None:
            held.append(analyse(more))
        if turns.take(wait=False):
            return held
        if len(held) >= BATCH_LIMIT or not arrivals.readable():
            turns.take(wait=True)
            return held


def store_batch(
    batch: list[Prepared], services: Services, turns: WriterTurns, wal: WalSync
) -> list[Disposition | NotKept]:
    """`process_batch()` of `batch` (the turn already taken, see gather), the turn released
    as soon as it committed, then the WAL fsynced (`make_engine(deferred_sync=True)`): the
    results may be told. A commit that could not be made durable is not acknowledged:
    its messages become NotKept (451, the sender retries and finds a Duplicate at worst);
    a quarantined message stays kept (the spool syncs its own files)."""
    from intake.process import NotKept, process_batch

    try:
        results = process_batch(batch, services)
    finally:
        turns.release()
    try:
        wal.sync()
    except OSError as exc:
        log.critical("batch of %d: the WAL could not be synced: %s; answering 451", len(batch), exc)
        why = f"the commit could not be made durable: {exc}"
        return [r if isinstance(r, (NotKept, Quarantined)) else NotKept(why) for r in results]
    return results


def _worker_main(sock: socket.socket, settings: Settings, parent: int, level: int) -> None:
    """A worker: build the services, say ready, then store batches until the end of input."""
    from config.wiring import build_services
    from intake.analyse import exit_with_parent
    from intake.process import NotKept, Prepared, stage

    def analyse(frame: bytes) -> tuple[int, Prepared]:
        request, raw, now = pickle.loads(frame)
        # The rows are made here, before the write turn, which every worker waits for.
        return request, stage(Prepared(raw, analyser(raw), now), services)

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # Ctrl-C in a terminal and systemd's stop signal reach the whole process group: a worker
    # finishes what it holds and ends when the serving process closes its socket (after
    # draining) or dies, never in the middle of a batch.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    exit_with_parent(parent)
    engine = make_engine(settings.database.url, deferred_sync=True)
    services = build_services(settings, engine=engine, migrate=False)
    analyser = services.analyser
    assert analyser is not None
    turns = WriterTurns(settings.database.url)
    wal = WalSync(engine)
    checkpoints = WalCheckpoints(engine)
    channel = _Channel(sock)
    channel.send([(_READY, None, "", 0)])
    try:
        while (first := channel.receive(wait=True)) is not None:
            held = gather(channel, first, analyse, turns)
            results = store_batch([prepared for _, prepared in held], services, turns, wal)
            size = len(held)
            channel.send(
                [
                    (request, None, str(result), size)
                    if isinstance(result, NotKept)
                    else (request, result, "", size)
                    for (request, _), result in zip(held, results, strict=True)
                ]
            )
            checkpoints.after_batch()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the serving process is gone; what was committed stays committed
    finally:
        with contextlib.suppress(Exception):
            services.engine.dispose()
