"""`claimdesk serve` as a real process: SIGTERM finishes what is in flight and exits 0, a
SIGKILL loses nothing that was acknowledged, `--workers` shares the port and supervises, and
shares connections out evenly (least-connections, not the kernel's hash).
"""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.corpus import generate
from intake import smtp_replies as replies
from tests.intake.smtp_support import (
    Served,
    crlf,
    free_port,
    read_replies,
    read_until_closed,
    wait_listening,
    wait_refusing,
)
from tests.mail import claim

DISPUTES = "disputes@desk.example"
BUYER = "buyer@example.org"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path, free_port())
    yield server
    server.cleanup()


def test_sigterm_lets_the_message_in_flight_finish_and_exits_0(served: Served) -> None:
    served.start()
    idle = socket.create_connection(("127.0.0.1", served.port), timeout=10)
    assert read_replies(idle, 1)[0].startswith("220")
    # Hold the database's write lock: the message will be in process() when SIGTERM comes.
    blocker = sqlite3.connect(served.database, isolation_level=None, timeout=30)
    blocker.execute("BEGIN IMMEDIATE")
    client = smtplib.SMTP("127.0.0.1", served.port, timeout=30)
    client.ehlo("client.example")
    client.mail(BUYER)
    client.rcpt(DISPUTES)
    assert client.docmd("DATA")[0] == 354
    assert client.sock is not None
    client.sock.sendall(crlf(claim()) + b".\r\n")
    replied: list[tuple[int, bytes]] = []
    waiter = threading.Thread(target=lambda: replied.append(client.getreply()))
    waiter.start()

    assert served.proc is not None
    served.proc.send_signal(signal.SIGTERM)
    wait_refusing(served.port)  # it stopped accepting...
    assert read_until_closed(idle) == (replies.SHUTTING_DOWN + "\r\n").encode()
    assert served.proc.poll() is None  # ...but waits for the message in flight
    blocker.rollback()
    blocker.close()

    waiter.join(timeout=30)
    assert replied and replied[0][0] == 250, replied
    assert served.proc.wait(timeout=30) == 0
    client.close()
    assert sum(served.message_counts().values()) == 1


def test_sigkill_and_restart_lose_nothing_acknowledged(served: Served) -> None:
    """Four clients send 60 distinct messages, retrying whatever got no 250; the server is
    SIGKILLed after the 15th 250 and restarted. Every message ends in the database once."""
    served.start()
    corpus = [crlf(data) for data in generate(60, seed=11)]
    ids = [f"bench-11-{index}@example.org" for index in range(len(corpus))]
    acknowledged: set[str] = set()
    unanswered: set[str] = set()  # sent at least once without getting a 250
    progress = threading.Condition()
    deadline = time.monotonic() + 40

    def send(message_id: str, data: bytes) -> None:
        while time.monotonic() < deadline:
            try:
                with smtplib.SMTP("127.0.0.1", served.port, timeout=10) as client:
                    client.sendmail(BUYER, [DISPUTES], data)
            except (OSError, smtplib.SMTPException):
                with progress:
                    unanswered.add(message_id)
                wait_listening(served.port)  # the restarted server, then try again
                continue
            with progress:
                acknowledged.add(message_id)
                progress.notify_all()
            return

    def sender(share: list[int]) -> None:
        for index in share:
            send(ids[index], corpus[index])

    threads = [threading.Thread(target=sender, args=(list(range(i, 60, 4)),)) for i in range(4)]
    for thread in threads:
        thread.start()
    with progress:
        assert progress.wait_for(lambda: len(acknowledged) >= 15, timeout=30)
    served.kill()
    served.start()
    for thread in threads:
        thread.join(timeout=60)
    assert served.terminate() == 0

    counts = served.message_counts()
    assert unanswered  # the kill did cut sessions short: the retries were exercised
    assert acknowledged == set(ids)  # every message got its 250 in the end...
    assert {i: counts[i] for i in ids} == dict.fromkeys(ids, 1)  # ...and is stored once
    assert sum(counts.values()) == len(ids)


def peers(pid: int, port: int) -> set[int]:
    """The client ports of the TCP connections to `port` that process `pid` holds open, read
    from /proc: the process's socket inodes matched against the kernel's TCP table."""
    inodes: set[str] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    held: set[int] = set()
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
        if int(local.split(":")[1], 16) == port and state != "0A" and inode in inodes:  # 0A: LISTEN
            held.add(int(remote.split(":")[1], 16))
    return held


def until(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    """Polls another process's state (no event of ours to wait on) until `condition()`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not after {seconds:.0f} s"
        time.sleep(0.02)


def greeted(port: int) -> socket.socket:
    """A connection that got its 220 and its answer to EHLO."""
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert read_replies(client, 1)[0].startswith("220")
    client.sendall(b"EHLO client.example\r\n")
    assert read_replies(client, 1)[0].startswith("250")
    return client


def local_port(client: socket.socket) -> int:
    return int(client.getsockname()[1])


def test_workers_share_the_port_are_supervised_and_stop_on_sigterm(served: Served) -> None:
    served.workers = 2
    served.start()
    deadline = time.monotonic() + 30
    while len(served.children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = served.children()
    assert len(workers) == 2
    # Both serve before one is killed: else its buffered "listening" line may die with it.
    until(lambda: served.log.read_text().count("listening on 127.0.0.1") == 2, "both listen")
    messages = [crlf(claim(subject=f"Parcel {i}")) for i in range(8)]
    for data in messages:
        with smtplib.SMTP("127.0.0.1", served.port, timeout=10) as client:
            client.sendmail(BUYER, [DISPUTES], data)

    # A worker that dies is replaced; the port keeps serving.
    os.kill(workers[0], signal.SIGKILL)
    while (set(served.children()) & {workers[0]} or len(served.children()) < 2) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert len(served.children()) == 2 and workers[0] not in served.children()
    # The other worker keeps the port open: wait for the replacement's own "listening".
    while served.log.read_text().count("listening on 127.0.0.1") < 3:
        assert time.monotonic() < deadline, "the replacement worker never listened"
        time.sleep(0.05)
    wait_listening(served.port)
    with smtplib.SMTP("127.0.0.1", served.port, timeout=10) as client:
        client.sendmail(BUYER, [DISPUTES], crlf(claim(subject="After the restart")))

    assert served.terminate() == 0
    assert sum(served.message_counts().values()) == 9


def test_workers_take_connections_least_loaded_first_even_after_one_is_killed(
    served: Served,
) -> None:
    """Ten long-lived connections opened at once split 5/5 over two workers. A worker killed
    while holding the fewest does not look least-loaded once dead: the survivor serves the
    next connection at once; the replacement, holding none, takes the ones after."""
    served.workers = 2
    served.start()
    until(lambda: served.log.read_text().count("listening on 127.0.0.1") == 2, "both listen")
    victim, survivor = workers = served.children()
    until(lambda: not peers(victim, served.port) | peers(survivor, served.port), "probes closed")

    clients = [socket.create_connection(("127.0.0.1", served.port), timeout=10) for _ in range(10)]
    for client in clients:
        assert read_replies(client, 1)[0].startswith("220")
        client.sendall(b"EHLO client.example\r\n")
        assert read_replies(client, 1)[0].startswith("250")
    assert {pid: len(peers(pid, served.port)) for pid in workers} == {victim: 5, survivor: 5}

    # The victim dies holding 2, the survivor 5: its last count must not keep it "least-loaded".
    victims = [c for c in clients if local_port(c) in peers(victim, served.port)]
    for client in victims[:3]:
        client.close()
    until(lambda: len(peers(victim, served.port)) == 2, "the victim holds 2")
    os.kill(victim, signal.SIGKILL)
    until(lambda: victim not in served.children(), "the victim reaped")
    late = greeted(served.port)  # long before the replacement serves (it takes a second)
    assert local_port(late) in peers(survivor, served.port)

    until(lambda: served.log.read_text().count("listening on 127.0.0.1") == 3, "replaced")
    [replacement] = set(served.children()) - {survivor}
    after = [greeted(served.port) for _ in range(4)]  # the survivor holds 6, the replacement 0
    assert {local_port(c) for c in after} == peers(replacement, served.port)
    for client in [*clients, late, *after]:
        client.close()

    with smtplib.SMTP("127.0.0.1", served.port, timeout=10) as client:
        client.sendmail(BUYER, [DISPUTES], crlf(claim(subject="After the restart")))
    assert served.terminate() == 0
    assert sum(served.message_counts().values()) == 1


def test_unusable_tls_configuration_exits_2_naming_the_key(served: Served) -> None:
    served.extra = 'tls_cert = "/nonexistent/cert.pem"\n'
    proc = served.start(wait=False)
    assert proc.wait(timeout=30) == 2
    assert "smtp.tls_key" in served.log.read_text()


def test_serve_runs_the_mailer_and_the_scheduler(served: Served, tmp_path: Path) -> None:
    """The whole service: a claim over SMTP is acknowledged through the relay within
    seconds, and the scheduler's start-up catch-up writes the SLA report."""
    from tests.outbound.sink import Sink, SinkHandler

    relay = Sink(SinkHandler())
    relay.controller.start()
    try:
        served.extra = (
            f'[relay]\nhost = "127.0.0.1"\nport = {relay.port}\nstarttls = false\n'
            f'[reports]\nout_dir = "{tmp_path / "reports"}"\n'
        )
        served.start()
        with smtplib.SMTP("127.0.0.1", served.port, timeout=30) as client:
            client.sendmail(BUYER, [DISPUTES], claim())
        [ack] = relay.wait_for(1, timeout=20)
        assert ack.rcpt_tos == (BUYER,)
        assert "[CD-000001]" in ack.message["Subject"]
        assert ack.message["Auto-Submitted"] == "auto-replied"
        deadline = time.monotonic() + 20
        while not list((tmp_path / "reports").glob("sla-*.html")):
            assert time.monotonic() < deadline, "no report written at start"
            time.sleep(0.1)
        assert served.terminate() == 0
    finally:
        relay.controller.stop()
