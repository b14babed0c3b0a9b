"""SMTP intake throughput: `claimdesk serve` against a bare aiosmtpd server, same client.

    python -m bench.smtp [--messages 5000] [--connections 10] [--workers 1 2]
                         [--client asyncio|smtplib] [--store N] [--threads N] [--repeat N]

Each target runs as its own subprocess on 127.0.0.1: first a bare aiosmtpd server whose
handler answers 250 at once, then `claimdesk serve` (and `serve --workers N`) on a fresh
temporary SQLite database with every check on and a durable commit before each 250. The
client (the same for every target) has N connections that take the next message from one
shared queue (distinct ~3 KB claims from bench.corpus): by default one asyncio process using
RFC 2920 pipelining (MAIL, RCPT, DATA in one write, then the message), the lightest client,
so the bare figure is the server's ceiling; `--client smtplib` is the conventional one (a
thread per connection, a round trip per command). Prints messages/s, the ratio to the bare
server, the server's CPU per message (all its processes; "of it below": the store workers,
or for --workers the serving processes and theirs), the client's, and the CPU the rest of
the machine used meanwhile (other load on a small machine skews the figures), and checks
that every message answered 250 is in the database once. With `--repeat N` it ends with
each target's median, min and max ratio, each run's ratio taken to the bare server of that
run. BENCH_VERBOSE=1 makes the servers log each message (-v).

What limits claimdesk here is CPU and the serial write turn. Per message, across all its
processes, about 1.2-1.4 ms against ~0.27 ms for the bare server, plus ~0.1 ms for the
client. In `--workers 2` (each serving process stores in its own thread): the SMTP side
~0.33 (aiosmtpd's own work ~0.27, as in the bare server), analysis ~0.42 (0.30 when run
back to back: interleaved with storing, each stage finds the caches cooler), staging the
rows ~0.17, the write turn ~0.3 (statements and COMMIT for batches of 4-6 messages, one
per connection in flight). SQLite lets one writer in at a time, so the turn is serial; the
WAL's fsync is done after it (storage/wal_sync.py), so no store waits through another's
disk flush. One serving process with 2 store processes costs more per message (each
message crosses a socket twice, pickled, and the processes switch on 2 cores).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.corpus import generate

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0
VERBOSE = ["-v"] if os.environ.get("BENCH_VERBOSE") else []


@dataclass(frozen=True)
class Result:
    name: str
    sent: int
    accepted: int
    seconds: float
    server_cpu: float  # CPU seconds of the server process and all below it during the run
    below_cpu: float  # the part of server_cpu used by the processes below it
    client_cpu: float
    other_cpu: float  # CPU seconds the rest of the machine used meanwhile (contention)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    @property
    def server_ms(self) -> float:
        return self.server_cpu / max(self.accepted, 1) * 1000


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (workers, their store processes), from /proc."""
    found = [pid]
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split():
                    found += _descendants(int(child))
    return found


def _cpu_of(pid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks
    return 0.0


def _cpu_tree(pid: int) -> dict[int, float]:
    """CPU seconds of `pid` and of each process below it, by pid (Linux /proc)."""
    return {one: _cpu_of(one) for one in _descendants(pid)}


def _cpu_used(pid: int, before: dict[int, float]) -> tuple[float, float]:
    """CPU seconds since `before`: of `pid` itself, and of the processes below it (a process
    started meanwhile counts from zero; one that ended meanwhile is not counted)."""
    after = _cpu_tree(pid)
    used = {one: seconds - before.get(one, 0.0) for one, seconds in after.items()}
    top = used.pop(pid, 0.0)
    return top, sum(used.values())


def _machine_cpu() -> float:
    """CPU seconds all processes on this machine have used (busy time, all CPUs)."""
    with contextlib.suppress(OSError):
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        idle = values[3] + values[4]
        return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    return 0.0


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def wire_bytes(data: bytes) -> bytes:
    """The DATA payload as an MTA sends it: CRLF lines, dot-stuffed, with the final dot."""
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    stuffed = [b"." + line if line.startswith(b".") else line for line in lines]
    return b"\r\n".join(stuffed) + b"\r\n.\r\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
                sock.recv(512)  # the 220 greeting: it really serves
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {READY_TIMEOUT:.0f} s")


def wait_until_serving(log: Path, workers: int, proc: subprocess.Popen[bytes]) -> None:
    """Until every serving process has logged that it serves: the first one listens while
    the others still start, and the run must not time their start (nor give the first one
    every connection, as a start under load would)."""
    deadline = time.monotonic() + READY_TIMEOUT
    while log.read_bytes().count(b" serving (pid ") < workers:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before serving")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not every worker serves after {READY_TIMEOUT:.0f} s")
        time.sleep(0.05)


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One (possibly multi-line) reply; returns its last line."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return line


async def _sender(port: int, queue: Iterator[tuple[str, bytes]], accepted: list[str]) -> None:
    """One connection: takes the next message from the shared queue until it is empty, so
    a slow connection (or a busy worker behind it) never leaves the others waiting."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _reply(reader)
    writer.write(b"EHLO bench.example\r\n")
    await _reply(reader)
    for message_id, payload in queue:
        writer.write(
            b"MAIL FROM:<buyer@example.org>\r\nRCPT TO:<disputes@desk.example>\r\nDATA\r\n"
        )
        mail, rcpt, data = [await _reply(reader) for _ in range(3)]
        if not (mail.startswith(b"250") and rcpt.startswith(b"250") and data.startswith(b"354")):
            raise RuntimeError(f"unexpected replies: {mail!r} {rcpt!r} {data!r}")
        writer.write(wire_bytes(payload))
        final = await _reply(reader)
        if final.startswith(b"250"):
            accepted.append(message_id)
    writer.write(b"QUIT\r\n")
    await _reply(reader)
    writer.close()
    await writer.wait_closed()


async def _client(port: int, corpus: Sequence[tuple[str, bytes]], connections: int) -> list[str]:
    accepted: list[str] = []
    queue = iter(corpus)  # one event loop: a plain iterator is a safe shared queue
    await asyncio.gather(*(_sender(port, queue, accepted) for _ in range(connections)))
    return accepted


def _smtplib_client(port: int, corpus: Sequence[tuple[str, bytes]], connections: int) -> list[str]:
    """The conventional client: one thread and one smtplib connection per sender, one
    command at a time (no pipelining), the same shared queue."""
    accepted: list[str] = []
    queue = iter(corpus)
    lock = threading.Lock()

    def sender() -> None:
        with smtplib.SMTP("127.0.0.1", port, local_hostname="bench.example") as client:
            while True:
                with lock:
                    item = next(queue, None)
                if item is None:
                    return
                message_id, data = item
                client.sendmail("buyer@example.org", ["disputes@desk.example"], data)
                with lock:
                    accepted.append(message_id)

    threads = [threading.Thread(target=sender) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return accepted


def drive(
    name: str,
    port: int,
    corpus: Sequence[tuple[str, bytes]],
    connections: int,
    server: subprocess.Popen[bytes],
    client: str = "asyncio",
) -> Result:
    server_tree, client_cpu, machine_cpu = (
        _cpu_tree(server.pid),
        time.process_time(),
        _machine_cpu(),
    )
    started = time.perf_counter()
    if client == "smtplib":
        accepted = _smtplib_client(port, corpus, connections)
    else:
        accepted = asyncio.run(_client(port, corpus, connections))
    seconds = time.perf_counter() - started
    top_cpu, below_cpu = _cpu_used(server.pid, server_tree)
    server_cpu = top_cpu + below_cpu
    client_cpu = time.process_time() - client_cpu
    other_cpu = max(0.0, _machine_cpu() - machine_cpu - server_cpu - client_cpu)
    return Result(
        name, len(corpus), len(accepted), seconds, server_cpu, below_cpu, client_cpu, other_cpu
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run_bare(corpus: Sequence[tuple[str, bytes]], connections: int, client: str) -> Result:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.smtp", "--bare-server", str(port)], cwd=ROOT
    )
    try:
        wait_until_listening(port, proc)
        return drive("bare aiosmtpd", port, corpus, connections, proc, client)
    finally:
        stop(proc)


def run_claimdesk(
    corpus: Sequence[tuple[str, bytes]],
    connections: int,
    workers: int,
    keep: bool,
    threads: int | None = None,
    store: int | None = None,
    client: str = "asyncio",
) -> Result:
    work = Path(tempfile.mkdtemp(prefix="claimdesk-bench-"))
    port = free_port()
    config = work / "claimdesk.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{work / "claimdesk.db"}"\n'
        f'[desk]\nspool_dir = "{work / "spool"}"\n'
        f"[smtp]\nport = {port}\n"
        + (f"process_threads = {threads}\n" if threads else "")
        + (f"store_processes = {store}\n" if store is not None else "")
    )
    command = [sys.executable, "-m", "desk.cli", *VERBOSE, "--config", str(config), "serve"]
    log = open(work / "serve.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*command, "--workers", str(workers)], cwd=ROOT, stderr=log)
    try:
        wait_until_listening(port, proc)
        wait_until_serving(work / "serve.log", workers, proc)
        name = f"claimdesk serve --workers {workers}"
        result = drive(name, port, corpus, connections, proc, client)
    finally:
        code = stop(proc)
        log.close()
    stored = _stored_message_ids(work / "claimdesk.db")
    sent = {message_id for message_id, _ in corpus}
    missing = sent - stored
    quarantined = len(list((work / "spool").glob("*.eml")))
    print(
        f"  {result.name}: exit {code}; {len(stored & sent)} of {len(sent)} stored, "
        f"{len(missing)} missing, {quarantined} quarantined; files in {work}"
        + ("" if keep else " (removed)")
    )
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _stored_message_ids(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT message_id FROM message")}


def bare_server(port: int) -> None:
    """A bare aiosmtpd server: answers 250 to every message at once (the ceiling)."""
    from aiosmtpd.smtp import SMTP

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handler = Handler()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="bench", enable_SMTPUTF8=True), "127.0.0.1", port
        )
        stopped = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stopped.set)
        await stopped.wait()
        server.close()

    asyncio.run(main())


def _table(rows: Sequence[Result], bare: Result) -> None:
    print(
        f"{'target':<30} {'accepted':>8} {'seconds':>8} {'msg/s':>8} {'ratio':>6} "
        f"{'server CPU ms/msg':>17} {'of it below':>11} {'client CPU ms/msg':>17} "
        f"{'other CPU s':>11}"
    )
    for result in rows:
        per_message = 1000 / max(result.accepted, 1)
        print(
            f"{result.name:<30} {result.accepted:>8} {result.seconds:>8.2f} "
            f"{result.rate:>8.1f} {result.rate / bare.rate:>6.3f} {result.server_ms:>17.2f} "
            f"{result.below_cpu * per_message:>11.2f} {result.client_cpu * per_message:>17.2f} "
            f"{result.other_cpu:>11.2f}"
        )


def _summary(ratios: dict[str, list[float]], rates: dict[str, list[float]]) -> None:
    """Each target over the runs: the ratio of each run to the bare server of the SAME run
    (a best-of table would pair one run's claimdesk with another run's bare server)."""
    runs = len(next(iter(ratios.values())))
    print(f"over {runs} runs (ratio of each run to its own bare server):")
    for name, values in ratios.items():
        if name == "bare aiosmtpd":
            continue
        print(
            f"{name:<30} msg/s median {statistics.median(rates[name]):>7.1f}   ratio median "
            f"{statistics.median(values):.3f}, min {min(values):.3f}, max {max(values):.3f}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, help="smtp.process_threads (default: config)")
    parser.add_argument(
        "--store", type=int, help="smtp.store_processes (default: config, one per CPU)"
    )
    parser.add_argument(
        "--client",
        choices=["asyncio", "smtplib"],
        default="asyncio",
        help="asyncio: one process, pipelined (the default, the lighter client); smtplib: a "
        "thread per connection, one command at a time",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs; then each target's median, min, max ratio"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary databases")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server:
        bare_server(args.bare_server)
        return
    corpus = [
        (f"bench-7-{index}@example.org", crlf(data))
        for index, data in enumerate(generate(args.messages))
    ]
    size = sum(len(p) for _, p in corpus) / len(corpus)
    print(
        f"{len(corpus)} messages (mean {size:.0f} bytes), {args.connections} connections, "
        f"{os.cpu_count()} CPUs, {args.client} client"
    )
    ratios: dict[str, list[float]] = {}
    rates: dict[str, list[float]] = {}
    for run in range(1, args.repeat + 1):
        bare = run_bare(corpus, args.connections, args.client)
        results = [
            run_claimdesk(
                corpus, args.connections, w, args.keep, args.threads, args.store, args.client
            )
            for w in args.workers
        ]
        print(f"run {run}:" if args.repeat > 1 else "")
        _table([bare, *results], bare)
        for result in (bare, *results):
            ratios.setdefault(result.name, []).append(result.rate / bare.rate)
            rates.setdefault(result.name, []).append(result.rate)
    if args.repeat > 1:
        _summary(ratios, rates)
    print(
        "other CPU: what the rest of the machine used meanwhile; on a 2-core machine anything "
        "above a few seconds means the figures are held down by other load."
    )


if __name__ == "__main__":
    main()
