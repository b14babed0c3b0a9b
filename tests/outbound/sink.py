"""A real SMTP relay on 127.0.0.1 for the mailer to talk to: an aiosmtpd Controller that keeps
every message it accepts, and can be told to refuse (4xx/5xx), to go slowly, to require AUTH,
or to hand each message to a callback (a test auto-responder)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.intake.smtp_support import make_certificate

SINK_USER, SINK_PASSWORD = "desk", "s3cret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content()).replace("\r\n", "\n")

    def html(self) -> str | None:
        part = self.message.get_body(preferencelist=("html",))
        return None if part is None else str(part.get_content()).replace("\r\n", "\n")


@dataclass
class SinkHandler:
    """`replies`: SMTP replies to give to the next DATA commands, in order (then 250);
    `refuse`: recipient -> reply at RCPT; `on_message` runs in its own thread."""

    replies: list[str] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    on_message: Callable[[Received], None] | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() in self.refuse:
            return self.refuse[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.delay:
            time.sleep(self.delay)  # blocks the sink's loop on purpose: a slow relay
        with self.lock:
            if self.replies:
                return self.replies.pop(0)
            item = Received(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=bytes(envelope.original_content or b""),
            )
            self.received.append(item)
        if self.on_message is not None:
            threading.Thread(target=self.on_message, args=(item,), daemon=True).start()
        return "250 2.0.0 accepted"


def _authenticator(
    server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SINK_USER.encode()
        and auth_data.password == SINK_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) for the relay, in its own folder."""
    folder = directory / "relay-tls"
    folder.mkdir(exist_ok=True)
    return make_certificate(folder)


class Sink:
    """`tls`: (certificate, key) to offer STARTTLS, required before MAIL and before AUTH;
    `auth`: AUTH PLAIN/LOGIN with SINK_USER / SINK_PASSWORD, required."""

    def __init__(
        self, handler: SinkHandler, *, auth: bool = False, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.handler = handler
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*tls)
            kwargs.update(tls_context=context, require_starttls=True)
        if auth:
            kwargs.update(
                authenticator=_authenticator, auth_require_tls=tls is not None, auth_required=True
            )
        self.controller = Controller(handler, hostname="127.0.0.1", port=self.port, **kwargs)

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.received) >= count:
                return self.received
            time.sleep(0.02)
        raise AssertionError(f"sink got {len(self.received)} message(s), expected {count}")

    def relay_settings(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "starttls": False}
