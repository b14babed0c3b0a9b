"""Helpers for the SMTP/LMTP tests: wire-format mail, raw sessions, certificates, a served
`claimdesk` subprocess, and what the database holds afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config.wiring import Services
from intake.smtp_server import SmtpIntake
from intake.store_thread import StoreThread
from storage import repo
from storage.models import MESSAGE, ticket_id_from_ref
from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 30.0


def crlf(data: bytes) -> bytes:
    """Mail as it travels over SMTP: CRLF line ends (our builders write LF)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def read_replies(sock: socket.socket, count: int, timeout: float = 10.0) -> list[str]:
    """The next `count` complete replies (multi-line ones joined), as text."""
    sock.settimeout(timeout)
    buffer = b""
    replies: list[str] = []
    current: list[str] = []
    while len(replies) < count:
        while b"\r\n" not in buffer:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed after {replies + current}")
            buffer += chunk
        line, buffer = buffer.split(b"\r\n", 1)
        text = line.decode("utf-8", "replace")
        current.append(text)
        if text[3:4] != "-":
            replies.append("\n".join(current))
            current = []
    return replies


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and localhost), made with the openssl CLI."""
    if shutil.which("openssl") is None:
        service_missing("openssl", "the openssl command makes the test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def wait_listening(port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until the port greets (a subprocess's readiness), failing when `proc` dies."""
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"claimdesk serve exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(512).startswith(b"220"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} after {READY_SECONDS:.0f} s")


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def wait_refusing(port: int, seconds: float = READY_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not refuses(port):
        if time.monotonic() > deadline:
            raise AssertionError(f"port {port} still accepts after {seconds:.0f} s")
        time.sleep(0.02)


@dataclass
class Served:
    """`claimdesk --config FILE serve` as a subprocess on a fresh SQLite database."""

    directory: Path
    port: int
    extra: str = ""
    workers: int = 1
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.directory / "claimdesk.toml"

    @property
    def database(self) -> Path:
        return self.directory / "claimdesk.db"

    @property
    def log(self) -> Path:
        return self.directory / "serve.log"

    def write_config(self) -> None:
        self.config.write_text(
            f'[database]\nurl = "sqlite:///{self.database}"\n'
            f'[desk]\nspool_dir = "{self.directory / "spool"}"\n'
            f"[smtp]\nport = {self.port}\n{self.extra}"
        )

    def start(self, *, wait: bool = True) -> subprocess.Popen[bytes]:
        self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMDESK_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "desk.cli", "--config", str(self.config), "serve",
                 "--workers", str(self.workers)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=log,
            )  # fmt: skip
        if wait:
            wait_listening(self.port, self.proc)
        return self.proc

    def terminate(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def children(self) -> list[int]:
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()]

    def message_counts(self) -> Counter[str]:
        with sqlite3.connect(self.database) as conn:
            return Counter(row[0] for row in conn.execute("SELECT message_id FROM message"))

    def cleanup(self) -> None:
        """Kill what is still running: the workers first (by pid), then the supervisor."""
        if self.proc is None or self.proc.poll() is not None:
            return
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        self.proc.wait(timeout=10)


# -- the SMTP edge in this process ------------------------------------------------------


@dataclass
class Running:
    server: SmtpIntake
    services: Services

    @property
    def port(self) -> int:
        return self.server.address[1]

    def smtp(self) -> smtplib.SMTP:
        client = smtplib.SMTP("127.0.0.1", self.port, local_hostname="client.example", timeout=10)
        client.ehlo()
        return client

    def connect(self, source: str = "127.0.0.1") -> socket.socket:
        address = ("127.0.0.1", self.port)
        return socket.create_connection(address, timeout=10, source_address=(source, 0))

    def messages(self) -> list[Any]:
        with self.services.engine.connect() as conn:
            return list(conn.execute(select(MESSAGE).order_by(MESSAGE.c.id)))

    def ticket(self, ref: str) -> Any:
        with self.services.engine.connect() as conn:
            return repo.get_ticket(conn, ticket_id_from_ref(ref))  # type: ignore[arg-type]

    def count_tickets(self) -> int:
        with self.services.engine.connect() as conn:
            return repo.count_tickets(conn)


Serve = Callable[..., Running]


@pytest.fixture
def serve(make_services: Callable[..., Services], sqlite_url: str) -> Iterator[Serve]:
    """serve(url=None, **smtp_keys): claimdesk's SMTP edge on a random port. process() runs
    in its threads unless `store_processes` asks for worker processes."""
    running: list[SmtpIntake] = []

    def start(url: str | None = None, **smtp: Any) -> Running:
        smtp = {"port": 0, "store_in_process": "store_processes" not in smtp, **smtp}
        services = make_services(url or sqlite_url, smtp=smtp)
        server = SmtpIntake(services.settings, services)
        server.start()
        running.append(server)
        return Running(server, services)

    yield start
    for server in running:
        server.stop(grace=2)


class Outage:
    """Takes the database away and brings it back (the real thing: no patched ORM)."""

    def __init__(self, services: Services, server: SmtpIntake | None = None) -> None:
        self.services = services
        # The store thread's own engine (intake/store_thread.py) holds connections too.
        store = server.store if server is not None else None
        self._engines = [services.engine]
        if isinstance(store, StoreThread) and store.engine is not services.engine:
            self._engines.append(store.engine)

    def database_down(self) -> None:
        engine = self.services.engine
        if engine.dialect.name == "sqlite":
            for each in self._engines:
                each.dispose()  # pooled connections would keep the old file open
            path = Path(engine.url.database or "")
            for suffix in ("", "-wal", "-shm"):
                moved = Path(f"{path}{suffix}")
                if moved.exists():
                    moved.rename(f"{moved}.away")
            path.mkdir()  # "unable to open database file" from now on
        else:
            self._pg(f'ALTER DATABASE "{engine.url.database}" ALLOW_CONNECTIONS false')
            self._pg(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{engine.url.database}'"
            )

    def database_up(self) -> None:
        engine = self.services.engine
        if engine.dialect.name == "sqlite":
            path = Path(engine.url.database or "")
            path.rmdir()
            for suffix in ("", "-wal", "-shm"):
                moved = Path(f"{path}{suffix}.away")
                if moved.exists():
                    moved.rename(f"{path}{suffix}")
        else:
            self._pg(f'ALTER DATABASE "{engine.url.database}" ALLOW_CONNECTIONS true')
        for each in self._engines:
            each.dispose()

    def spool_down(self) -> None:
        spool = self.services.spool.directory
        spool.rename(spool.with_name("spool.away"))
        spool.write_text("not a directory")

    def spool_up(self) -> None:
        spool = self.services.spool.directory
        spool.unlink()
        spool.with_name("spool.away").rename(spool)

    def _pg(self, statement: str) -> None:
        from sqlalchemy import text

        from storage.engine import make_engine
        from tests.conftest import PG_ADMIN_URL

        admin = make_engine(PG_ADMIN_URL).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(statement))
        admin.dispose()
