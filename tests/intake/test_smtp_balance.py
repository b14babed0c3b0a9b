"""Least-connections balancing of `serve --workers`: the shared table of open connections
(across a real fork) and the accept loop over one shared listening socket on 127.0.0.1.

The accept loops run here as two event loops in two threads of this process, each with its
own seat in one table, as two worker processes would run them; their protocol greets with
the worker's index, so a client knows who took it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from intake.smtp_balance import (
    NOT_SERVING,
    TAKEOVER_SECONDS,
    BalancedAcceptor,
    ConnectionShares,
)
from intake.smtp_server import listening_socket

# -- the table ---------------------------------------------------------------------------------


def test_every_slot_starts_not_serving_and_then_nobody_is_eligible() -> None:
    shares = ConnectionShares(3)
    assert shares.counts() == [NOT_SERVING] * 3
    assert not any(shares.eligible(index) for index in range(3))
    shares.set(2, 7)  # the first worker to serve takes everything, however many it holds
    assert [shares.eligible(index) for index in range(3)] == [False, False, True]
    shares.close()


def test_the_fewest_open_connections_are_eligible_and_ties_all_are() -> None:
    shares = ConnectionShares(3)
    for index, count in enumerate((2, 1, 1)):
        shares.set(index, count)
    assert [shares.eligible(index) for index in range(3)] == [False, True, True]
    shares.set(1, 0)
    assert [shares.eligible(index) for index in range(3)] == [False, True, False]
    shares.close()


def test_a_worker_not_serving_is_never_least_loaded() -> None:
    shares = ConnectionShares(2)
    shares.set(0, 40)
    shares.seat(1).leave()  # draining, dead or not started: NOT_SERVING
    assert shares.eligible(0)
    assert not shares.eligible(1)
    shares.close()


def test_a_seat_outside_the_table_is_refused() -> None:
    shares = ConnectionShares(2)
    with pytest.raises(IndexError):
        shares.seat(2)
    shares.close()


def test_the_counts_are_shared_across_a_real_fork() -> None:
    shares = ConnectionShares(2)
    shares.set(0, 2)
    pid = os.fork()
    if pid == 0:  # the child: sees the parent's count, publishes its own
        code = 1
        try:
            if shares.counts()[0] == 2:
                shares.set(1, 1)
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert shares.counts() == [2, 1]
    assert shares.eligible(1) and not shares.eligible(0)
    shares.close()


# -- the accept loop ---------------------------------------------------------------------------


class Greeter(asyncio.Protocol):
    """Says which worker took the connection; counts itself in that worker's registry."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.worker.opened(self)
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(b"%d\r\n" % self.worker.index)

    def connection_lost(self, exc: Exception | None) -> None:
        self.worker.closed(self)


class Worker:
    """One serving process's accept loop, in a thread: its event loop, its registry of open
    connections (published through the acceptor, as Station does) and its seat."""

    def __init__(self, sock: socket.socket, shares: ConnectionShares, index: int) -> None:
        self.index = index
        self.open: set[Greeter] = set()
        self.changed = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self.acceptor = BalancedAcceptor(
            self.loop, sock, lambda: Greeter(self), shares.seat(index), self.open
        )
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def start(self) -> None:
        self.call(self.acceptor.start)

    def call(self, function: Callable[[], object]) -> None:
        """Runs `function()` on the worker's loop and returns once it did."""

        async def run() -> None:
            function()

        asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def drain(self) -> None:
        asyncio.run_coroutine_threadsafe(self.acceptor.close(), self.loop).result(timeout=10)

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.drain()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def opened(self, greeter: Greeter) -> None:
        with self.changed:
            self.open.add(greeter)
            self.changed.notify_all()

    def closed(self, greeter: Greeter) -> None:
        with self.changed:
            self.open.discard(greeter)
            self.changed.notify_all()
        self.acceptor.recount()  # as Station.on_closed does

    def wait_holding(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.open) == count, timeout=10), (
                f"worker {self.index} holds {len(self.open)}, not {count}"
            )


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = listening_socket("127.0.0.1", 0)
    yield sock
    sock.close()


@pytest.fixture
def workers(listener: socket.socket) -> Iterator[list[Worker]]:
    shares = ConnectionShares(2)
    pair = [Worker(listener, shares, index) for index in range(2)]
    yield pair
    for worker in pair:
        worker.stop()
    shares.close()


def connect(listener: socket.socket, count: int) -> list[socket.socket]:
    """`count` connections opened at once (the kernel completes them into the backlog)."""
    return [socket.create_connection(listener.getsockname()[:2], timeout=10) for _ in range(count)]


def taken_by(client: socket.socket, timeout: float = 10.0) -> int:
    """The index of the worker that greeted `client`."""
    client.settimeout(timeout)
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = client.recv(16)
        if not chunk:
            raise ConnectionError("closed before the greeting")
        line += chunk
    return int(line)


def close(clients: list[socket.socket]) -> None:
    for client in clients:
        client.close()


def test_ten_connections_at_once_are_split_five_and_five(
    listener: socket.socket, workers: list[Worker]
) -> None:
    for worker in workers:
        worker.start()
    clients = connect(listener, 10)
    assert Counter(taken_by(client) for client in clients) == {0: 5, 1: 5}
    close(clients)


def test_the_worker_whose_connections_closed_takes_the_next_ones(
    listener: socket.socket, workers: list[Worker]
) -> None:
    for worker in workers:
        worker.start()
    clients = connect(listener, 10)
    by_worker: dict[int, list[socket.socket]] = {0: [], 1: []}
    for client in clients:
        by_worker[taken_by(client)].append(client)
    close(by_worker[0][:3])
    workers[0].wait_holding(2)

    later = connect(listener, 3)
    assert [taken_by(client) for client in later] == [0, 0, 0]
    close(clients + later)


def test_a_draining_worker_takes_nothing_even_holding_the_fewest(
    listener: socket.socket, workers: list[Worker]
) -> None:
    for worker in workers:
        worker.start()
    held = connect(listener, 2)
    assert sorted(taken_by(client) for client in held) == [0, 1]
    workers[1].drain()  # holds 1, like worker 0, but it is leaving

    later = connect(listener, 4)
    assert [taken_by(client) for client in later] == [0, 0, 0, 0]
    close(held + later)


def test_a_connection_the_least_loaded_worker_leaves_waiting_is_taken_by_another_soon(
    listener: socket.socket, workers: list[Worker]
) -> None:
    """Worker 0 holds none but its loop is stuck (hung, yet alive: still in the table);
    worker 1 holds two, so it is not least-loaded: it leaves the new connection to worker 0,
    then takes it over once it has waited TAKEOVER_SECONDS, instead of letting it hang."""
    workers[1].start()
    held = connect(listener, 2)
    assert [taken_by(client) for client in held] == [1, 1]
    workers[0].start()
    stuck = threading.Event()
    workers[0].loop.call_soon_threadsafe(stuck.wait)  # its reader cannot run meanwhile
    try:
        started = time.monotonic()
        [late] = connect(listener, 1)
        assert taken_by(late) == 1
        assert time.monotonic() - started >= TAKEOVER_SECONDS  # not before its turn passed
    finally:
        stuck.set()
    close([*held, late])
