"""The SMTP/LMTP protocol of the intake edge: aiosmtpd's, plus what a public endpoint needs.

`DeskSMTP` and `DeskLMTP` add, per connection: admission against the connection caps
(`421 4.7.0`), a silence watchdog (`421 4.4.2`; it never fires while process() runs, and
data arriving mid-DATA counts as activity, unlike aiosmtpd's per-command timer), enhanced
status codes on aiosmtpd's own replies, and leaving after the current transaction when the
server drains for shutdown (`421 4.3.2`). What the connections share lives in a `Station`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from config.settings import SmtpSettings
from intake import smtp_replies as replies
from intake.smtp_limits import ConnectionGate
from intake.types import Disposition

log = logging.getLogger("intake.smtp")

# aiosmtpd's own per-command timer is replaced by the silence watchdog; this keeps aiosmtpd's
# timer from ever firing first.
AIOSMTPD_TIMEOUT = 365 * 24 * 3600.0

# Replies written at once even when more commands are waiting: the STARTTLS go-ahead must
# precede the TLS switch (RFC 3207 also has the server discard what was pipelined after it),
# and 221/421 precede a close.
_WRITTEN_AT_ONCE = (b"220", b"221", b"421")

# `<local@domain>` with both sides plain dot-atoms (RFC 5322 atext, ASCII), then nothing or
# one space and the parameters: what nearly every MAIL FROM and RCPT TO looks like.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"<({_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*)>(?: (?![ \t(]))?")


def plain_path(arg: str) -> tuple[str, str] | None:
    """(address, parameters) of a plain `<local@domain> PARAMS` path, exactly as aiosmtpd's
    parse through the email package's RFC 5322 parser gives them; None for anything else
    (quoted local parts, comments, literals, UTF-8, odd spacing), which goes to that parser.

    Why: the full parser builds a token tree for every address and aiosmtpd declares a
    typing Protocol class on each call; for the plain form the answer is the text itself,
    at a fraction of the CPU of a command."""
    match = _PLAIN_PATH.match(arg)
    if match is None:
        return None
    rest = arg[match.end() :]
    if rest[:1] in (" ", "\t", "("):
        return None  # more folding white space or a comment: the parser decides
    return match.group(1), rest


class Station:
    """What the connections of one server share: caps, the registry, the draining flag."""

    def __init__(self, smtp: SmtpSettings) -> None:
        self.gate = ConnectionGate(smtp.max_connections, smtp.max_connections_per_client)
        self.idle_timeout = smtp.idle_timeout_seconds
        self.connections: set[Guarded] = set()
        self.inflight: set[asyncio.Future[Disposition]] = set()
        self.draining = False
        self.all_closed: asyncio.Event | None = None
        # Called once a connection left the registry: under `serve --workers` this process
        # publishes its lower count at once, so it gets the next connection when it is now
        # the least-loaded one (intake/smtp_balance.py).
        self.on_closed: Callable[[], None] | None = None

    def closed(self, connection: Guarded) -> None:
        self.connections.discard(connection)
        if self.on_closed is not None:
            self.on_closed()
        if self.draining and not self.connections and self.all_closed is not None:
            self.all_closed.set()


class Guarded(SMTP):
    """aiosmtpd's protocol plus admission caps, a silence watchdog and graceful shutdown.

    Only public asyncio Protocol methods, `push` and (for speed, with the same results)
    `_getaddr` are overridden."""

    def __init__(self, handler: Any, *, station: Station, **kwargs: Any) -> None:
        super().__init__(handler, timeout=AIOSMTPD_TIMEOUT, **kwargs)
        self.station = station
        self.busy = False  # process() is running for this connection's message
        self.client_host = "?"
        self._seen = False
        self._admitted = False
        self._last_heard = 0.0
        self._idle_handle: asyncio.TimerHandle | None = None
        self._held: list[bytes] = []  # replies batched for one write (see push)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's MAIL/RCPT path parse, with a shortcut for plain paths (plain_path)."""
        plain = plain_path(arg)
        if plain is None:
            return super()._getaddr(arg)  # type: ignore[no-any-return]
        address, rest = plain
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    @property
    def in_transaction(self) -> bool:
        """Between MAIL and the reply to DATA (or RSET): shutdown waits for these."""
        return self.busy or (self.envelope is not None and self.envelope.mail_from is not None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._seen:  # the TLS layer after STARTTLS: same connection, same admission
            super().connection_made(transport)
            return
        self._seen = True
        peer = transport.get_extra_info("peername")
        self.client_host = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        refusal = self._refusal()
        if refusal is not None:
            log.warning("refused connection from %s: %s", self.client_host, refusal)
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(refusal.encode() + b"\r\n")
            transport.close()
            return
        self._admitted = True
        self.station.connections.add(self)
        self._last_heard = self.loop.time()
        self._arm_watchdog(self.station.idle_timeout)
        super().connection_made(transport)

    def _refusal(self) -> str | None:
        if self.station.draining:
            return replies.SHUTTING_DOWN
        gate = self.station.gate
        if gate.admit(self.client_host):
            return None
        if gate.total >= gate.max_total:
            return replies.TOO_MANY_CONNECTIONS
        return replies.TOO_MANY_FROM_YOU

    def data_received(self, data: bytes) -> None:
        self._last_heard = self.loop.time()
        super().data_received(data)

    def connection_lost(self, error: Exception | None) -> None:
        if not self._admitted:
            return  # refused in connection_made: aiosmtpd never started on it
        self._admitted = False
        if self._idle_handle is not None:
            self._idle_handle.cancel()
        self.station.gate.release(self.client_host)
        self.station.closed(self)
        super().connection_lost(error)

    async def push(self, status: str | bytes) -> None:
        """aiosmtpd's push, plus enhanced status codes, and RFC 2920 reply batching: while
        the client has pipelined more commands (a complete line is already buffered), the
        reply waits and goes out in one write with the next ones (a loopback send costs
        about as much CPU as a command). A held reply is written at the latest when this
        connection's coroutine next waits (call_soon), so none is ever delayed for input."""
        if isinstance(status, str):
            status = replies.enhanced(status).encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
        line = status + b"\r\n"
        if status[:3] not in _WRITTEN_AT_ONCE and b"\n" in self._reader._buffer:  # type: ignore[attr-defined]
            self._held.append(line)
            if len(self._held) == 1:
                self.loop.call_soon(self._write_held)
        else:
            self._held.append(line)
            self._write_held()
            await self._writer.drain()
        # The reply that ended a transaction is the moment to leave during a shutdown.
        if self.station.draining and not self.in_transaction:
            self.close_with(replies.SHUTTING_DOWN)

    def _write_held(self) -> None:
        if not self._held:
            return
        data = b"".join(self._held)
        self._held.clear()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self._writer.write(data)

    def close_with(self, reply: str) -> None:
        """Say `reply` (a 421) and close: held and buffered replies are flushed first."""
        self._write_held()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(reply.encode() + b"\r\n")
        transport.close()

    def abort(self) -> None:
        """Close at once, mid-transaction: no reply was given, so the sender retries."""
        if self.transport is not None:
            self.transport.abort()

    def processing(self, running: bool) -> None:
        """Marks process() running (the watchdog waits) or done (the silence starts now)."""
        self.busy = running
        self._last_heard = self.loop.time()

    def _arm_watchdog(self, delay: float) -> None:
        self._idle_handle = self.loop.call_later(delay, self._watchdog)

    def _watchdog(self) -> None:
        if self.transport is None:
            return
        timeout = self.station.idle_timeout
        silent = self.loop.time() - self._last_heard
        if self.busy or silent < timeout:
            self._arm_watchdog(timeout if self.busy else timeout - silent)
            return
        log.info("%s idle for %.0f s, closing", self.client_host, silent)
        self.close_with(replies.IDLE_TIMEOUT)


class DeskSMTP(Guarded):
    """ESMTP with claimdesk's limits."""


class DeskLMTP(Guarded, LMTP):
    """LMTP (RFC 2033) with claimdesk's limits; LHLO instead of HELO/EHLO."""
