"""Least-connections balancing for `serve --workers N`: which serving process accepts next.

Why: with one SO_REUSEPORT socket per worker the kernel hashes each connection to a worker,
and with few long-lived connections (a sending MTA opens ten and sends hundreds of messages
on each) the split is often uneven (2/8, 3/7). Each serving process works on one core (it
stores in a thread of its own), so an uneven split leaves a core idle and halved the
throughput of the unlucky runs. Instead, the supervisor makes ONE listening socket that every
worker inherits, and a table of every worker's open connections in anonymous shared memory
(also inherited across fork); a worker accepts only while it holds no more connections than
the least-loaded serving worker.

The table has one signed 64-bit slot per worker index, written only by that worker (and by
the supervisor once that worker is dead), read by all. No lock: an aligned 8-byte store is
not torn on the machines we run on, and since every worker publishes its count right after
each accept (before it looks again), a stale read lets it run at most one connection ahead.
A worker that is not serving (starting, draining, dead) holds NOT_SERVING, so it never looks
least-loaded: nobody leaves new connections to a process that will not take them. Linux only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import select
import socket
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

log = logging.getLogger("intake.smtp")

NOT_SERVING = 2**62  # the count of a worker that is starting, draining or dead
RECHECK_SECONDS = 0.0015  # a worker that is not least-loaded looks again after this
RESOURCE_RETRY_SECONDS = 1.0  # after EMFILE/ENOBUFS, as asyncio's own accept loop waits
# A connection left waiting this long is taken by whoever sees it: the least-loaded worker
# may be hung (alive, so still in the table) and a sender must not wait on it for long.
TAKEOVER_SECONDS = 0.05
_SLOT_BYTES = 8


class ConnectionShares:
    """Per-worker open-connection counts in anonymous shared memory.

    Create it before forking: the mapping is MAP_SHARED, so the parent and every forked child
    see the same slots. Every slot starts at NOT_SERVING."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"at least one worker, not {workers}")
        self._map = mmap.mmap(-1, workers * _SLOT_BYTES, flags=mmap.MAP_SHARED)
        self._slots = memoryview(self._map).cast("q")  # aligned native int64 stores
        for index in range(workers):
            self._slots[index] = NOT_SERVING

    @property
    def workers(self) -> int:
        return len(self._slots)

    def counts(self) -> list[int]:
        """A snapshot of every slot, by worker index."""
        return self._slots.tolist()

    def set(self, index: int, count: int) -> None:
        """Publish worker `index`'s count (only that worker does, or the supervisor once it
        is dead). Raises IndexError for an index outside the table."""
        self._slots[index] = count

    def eligible(self, index: int) -> bool:
        """True when worker `index` serves and holds no more connections than any other
        serving worker (ties: all of them are eligible, and the first accept wins)."""
        counts = self._slots.tolist()
        mine = counts[index]
        return mine < NOT_SERVING and mine <= min(counts)

    def seat(self, index: int) -> Seat:
        """Worker `index`'s view of the table. Raises IndexError outside the table."""
        if not 0 <= index < self.workers:
            raise IndexError(f"worker {index} of {self.workers}")
        return Seat(self, index)

    def close(self) -> None:
        self._slots.release()
        self._map.close()


@dataclass(frozen=True)
class Seat:
    """One worker's place in the table: the one slot it writes, and its eligibility."""

    shares: ConnectionShares
    index: int

    def publish(self, count: int) -> None:
        self.shares.set(self.index, count)

    def leave(self) -> None:
        """Not serving any more (draining): never least-loaded from now on."""
        self.shares.set(self.index, NOT_SERVING)

    def eligible(self) -> bool:
        return self.shares.eligible(self.index)


@dataclass(eq=False)
class _Handover:
    """A connection accepted and not yet handed over; `protocol` once asyncio made it."""

    protocol: asyncio.BaseProtocol | None = None


class BalancedAcceptor:
    """Accepts from the listening socket shared by the workers, one connection at a time and
    only while this worker is least-loaded, and hands each one to asyncio
    (`connect_accepted_socket`, the same transport `create_server` would make).

    `registry` is this process's live set of open connections (its protocols add themselves
    in connection_made); `recount()` must be called (from the loop thread) whenever one
    leaves it. The count published is the registry's size plus the accepted connections not
    in it yet, each connection counted once: a count one short would let this worker accept
    out of turn, one too high would send the others more than their share. Runs on its
    loop's thread only."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.BaseProtocol],
        seat: Seat,
        registry: AbstractSet[object],
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._protocol_factory = protocol_factory
        self._seat = seat
        self._registry = registry
        self._handovers: dict[asyncio.Task[None], _Handover] = {}
        self._reading = False
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        self._passed_since: float | None = None  # first left to the others, still waiting

    def start(self) -> None:
        """Publish this worker's count (it serves from now on) and start accepting."""
        self._publish()
        self._resume()

    def recount(self) -> None:
        """This worker's count changed: publish it; when it dropped while this worker was
        waiting its turn, it may be least-loaded now, so look again at once."""
        self._publish()
        if not self._reading:
            self._resume()

    async def close(self) -> None:
        """Stop accepting at once and leave the table (other workers take the new
        connections from here on); returns once every accepted connection was handed over.
        The listening socket stays open: it belongs to the supervisor."""
        self._closed = True
        self._pause()
        self._seat.leave()
        if self._handovers:
            await asyncio.gather(*list(self._handovers), return_exceptions=True)

    def count(self) -> int:
        """Open connections of this worker, the ones being handed over included."""
        registry = self._registry
        arriving = sum(h.protocol not in registry for h in self._handovers.values())
        return len(registry) + arriving

    def _publish(self) -> None:
        if not self._closed:  # a draining worker's slot stays NOT_SERVING
            self._seat.publish(self.count())

    def _resume(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if not self._closed and not self._reading:
            self._loop.add_reader(self._sock, self._on_readable)
            self._reading = True

    def _pause(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._reading:
            self._loop.remove_reader(self._sock)
            self._reading = False

    def _wait(self, delay: float) -> None:
        # The socket is level-triggered: staying registered while not taking the connection
        # would spin. Look again after `delay`, or sooner if this worker's count drops.
        self._pause()
        self._retry = self._loop.call_later(delay, self._look_again)

    def _look_again(self) -> None:
        self._retry = None
        if not select.select([self._sock], [], [], 0)[0]:
            self._passed_since = None  # another worker took what was waiting
        self._resume()

    def _on_readable(self) -> None:
        if not self._seat.eligible() and not self._overdue():
            self._wait(RECHECK_SECONDS)
            return
        self._passed_since = None
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the client left before we did
        except OSError as exc:  # out of descriptors or buffers: the backlog waits meanwhile
            log.error("cannot accept: %s; retrying in %.0f s", exc, RESOURCE_RETRY_SECONDS)
            self._wait(RESOURCE_RETRY_SECONDS)
            return
        conn.setblocking(False)
        handover = _Handover()
        task = self._loop.create_task(self._hand_over(conn, handover))
        self._handovers[task] = handover
        task.add_done_callback(self._handed_over)
        self._publish()  # before the next readable event: that one checks this count

    def _overdue(self) -> bool:
        """A connection this worker left to the least-loaded one has waited too long."""
        now = self._loop.time()
        if self._passed_since is None:
            self._passed_since = now
            return False
        if now - self._passed_since < TAKEOVER_SECONDS:
            return False
        log.warning(
            "a connection waited %.0f ms for the least-loaded worker: taking it",
            (now - self._passed_since) * 1000,
        )
        return True

    async def _hand_over(self, conn: socket.socket, handover: _Handover) -> None:
        def protocol() -> asyncio.BaseProtocol:
            handover.protocol = self._protocol_factory()
            return handover.protocol

        try:
            await self._loop.connect_accepted_socket(protocol, conn)
        except Exception:
            log.exception("cannot serve an accepted connection")
            with contextlib.suppress(OSError):
                conn.close()

    def _handed_over(self, task: asyncio.Task[None]) -> None:
        # connection_made has run: the registry holds the connection now (or it was refused).
        del self._handovers[task]
        self.recount()
