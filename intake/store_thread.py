"""The SMTP/LMTP edge's store when it has no store processes: one thread of the serving
process that runs process() whole, committing together what arrives together.

Why one thread, and when: store processes (intake/store_workers.py) exist to use more cores
than the serving process's one GIL allows. When a serving process has no more than one core
to itself (`serve --workers N` with N >= CPUs, or a one-CPU machine), they only add work:
every message crosses a socket twice, pickled, and each switch between processes cools the
caches (measured on 2 cores, `--workers 2`: about 1.5 ms of CPU per message against 1.2 ms
with this thread). One thread, not a pool: threads of one process share the GIL, so more of
them would only take turns, and would each commit alone.

The batch rule is the store workers' own (`gather`: analyse what arrived, take the write
turn, one transaction for the lot, each message in its SAVEPOINT; `store_batch`: release the
turn, fsync the WAL, then answer). The thread answers the event loop once per batch, after
that sync, so 250 still means committed and durable.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter, deque
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Engine

from config.settings import SmtpSettings
from config.wiring import Services
from intake.process import NotKept, Prepared, stage
from intake.store_workers import WalCheckpoints, WriterTurns, gather, store_batch
from intake.types import Disposition, RawMessage
from storage.engine import make_engine, sqlite_file
from storage.wal_sync import WalSync

log = logging.getLogger("intake.smtp")

_Arrival = tuple["asyncio.Future[Disposition]", RawMessage, datetime]
_Result = Disposition | NotKept | BaseException


def store_processes(smtp: SmtpSettings, cpus: int) -> int:
    """How many store processes the SMTP edge of one serving process runs on `cpus` cores
    (its share of the machine); 0: it stores in a StoreThread instead. `store_processes`
    set (> 0) is taken as is; 0 (the default) means one per core where there are at least
    two, else the thread (see the module docstring); `store_in_process` always the thread."""
    if smtp.store_in_process:
        return 0
    if smtp.store_processes:
        return smtp.store_processes
    return cpus if cpus >= 2 else 0


class _Inbox:
    """Messages handed from the event loop to the store thread (Arrivals of `gather`)."""

    def __init__(self) -> None:
        self._items: deque[_Arrival] = deque()
        self._ready = threading.Condition()
        self._closed = False

    def put(self, item: _Arrival) -> None:
        with self._ready:
            self._items.append(item)
            self._ready.notify()

    def close(self) -> None:
        """No more input: receive() returns None once the queue is empty."""
        with self._ready:
            self._closed = True
            self._ready.notify()

    def receive(self, *, wait: bool) -> _Arrival | None:
        with self._ready:
            while wait and not self._items and not self._closed:
                self._ready.wait()
            return self._items.popleft() if self._items else None

    def readable(self) -> bool:
        return bool(self._items)

    def __len__(self) -> int:
        return len(self._items)


class StoreThread:
    """process() for the edge in one thread of this process, by batches (group commit).

    `store()` is called on the edge's event loop; start() must have been awaited on it."""

    def __init__(self, services: Services) -> None:
        if sqlite_file(services.engine.url):
            # Its own engine: its connections commit without fsync and it syncs the WAL
            # itself (storage/wal_sync.py); the rest of the process keeps synchronous=FULL.
            engine = make_engine(services.settings.database.url, deferred_sync=True)
            services = replace(services, engine=engine)
            self._own_engine = True
        else:
            self._own_engine = False
        self.services = services
        self._inbox = _Inbox()
        self._turns = WriterTurns(services.settings.database.url)
        self._wal = WalSync(services.engine)
        self._checkpoints = WalCheckpoints(services.engine)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="smtp-store", daemon=True)
        self._taken: list[asyncio.Future[Disposition]] = []  # the batch being stored
        # Messages stored, by the size of the transaction they were in (group commit at work).
        self.batch_sizes: Counter[int] = Counter()

    @property
    def engine(self) -> Engine:
        """The engine it stores with (its own on a SQLite file, see __init__)."""
        return self.services.engine

    @property
    def holding(self) -> int:
        """Messages handed over and not answered yet (waiting, or in the batch)."""
        return len(self._inbox) + len(self._taken)

    @property
    def live(self) -> int:
        """1 while the thread runs."""
        return int(self._thread.is_alive())

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()

    async def store(self, raw: RawMessage, now: datetime) -> Disposition:
        """process() of `raw` with whatever arrived with it; returns after the COMMIT and the
        WAL's sync. Raises NotKept when the bytes were kept nowhere."""
        assert self._loop is not None, "start() first"
        future: asyncio.Future[Disposition] = self._loop.create_future()
        self._inbox.put((future, raw, now))
        return await future

    async def close(self) -> None:
        """Finish what was handed over, then end the thread; idempotent."""
        self._inbox.close()
        if self._thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        if self._own_engine:
            self.services.engine.dispose()

    def _run(self) -> None:
        services = self.services
        analyser = services.analyser
        assert analyser is not None
        taken = self._taken  # this batch's futures, answered whatever happens

        def analyse(item: _Arrival) -> Prepared:
            future, raw, now = item
            taken.append(future)
            # The rows are made here, before the write turn every store waits for.
            return stage(Prepared(raw, analyser(raw), now), services)

        while (first := self._inbox.receive(wait=True)) is not None:
            taken.clear()
            results: list[_Result]
            try:
                batch = gather(self._inbox, first, analyse, self._turns)
                results = list(store_batch(batch, services, self._turns, self._wal))
            except Exception as exc:  # a bug: nothing says these messages are kept
                log.exception("store thread: a batch of %d failed", len(taken))
                results = [exc] * len(taken)
            for _ in taken:
                self.batch_sizes[len(taken)] += 1
            self._answer(list(taken), results)
            taken.clear()
            try:
                self._checkpoints.after_batch()
            except Exception:  # the next one may succeed; the WAL only grows meanwhile
                log.exception("store thread: checkpoint failed")

    def _answer(self, futures: list[asyncio.Future[Disposition]], results: list[_Result]) -> None:
        """One wake-up of the event loop for the whole batch."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(_settle, list(zip(futures, results, strict=True)))


def _settle(answers: list[tuple[asyncio.Future[Disposition], _Result]]) -> None:
    for future, result in answers:
        if future.done():  # cancelled: the edge's handler logs what became of it
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)
