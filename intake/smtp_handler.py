"""The aiosmtpd handler of the intake edge: EHLO extensions, sender and recipient checks,
and DATA -> process() in a thread pool, answered only after process() returned.

The trace a Received header would carry (peer, HELO name, protocol, envelope) goes into the
RawMessage (`source`, `envelope_from`, `envelope_to`), so the stored bytes stay exact.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from aiosmtpd.smtp import SMTP, Envelope, Session

from config.wiring import Services
from intake import smtp_replies as replies
from intake.process import NotKept, process
from intake.smtp_limits import RecipientPolicy
from intake.smtp_protocol import Guarded, Station
from intake.store_thread import StoreThread
from intake.store_workers import NoWorker, StoreWorkers, WorkerLost
from intake.types import Disposition, Quarantined, RawMessage

log = logging.getLogger("intake.smtp")


def _printable(text: str | None) -> str:
    """For logs and the `source` trace: client-supplied text, never able to break a line or
    an encoder (lone surrogates come from non-UTF-8 bytes, see aiosmtpd's surrogateescape)."""
    if text is None:
        return "-"
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(c if c.isprintable() and not c.isspace() else f"\\x{ord(c):02x}" for c in safe)


def _sha_label(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()[:16]


class DeskHandler:
    """aiosmtpd handler hooks: EHLO extensions, sender and recipient checks, DATA -> process().

    One instance serves every connection; per-connection state lives on the protocol."""

    def __init__(
        self,
        services: Services,
        pool: ThreadPoolExecutor,
        station: Station,
        *,
        lmtp: bool = False,
        store: StoreWorkers | StoreThread | None = None,
    ) -> None:
        smtp = services.settings.smtp
        self.services = services
        self.pool = pool
        self.store = store
        self.station = station
        self.lmtp = lmtp
        self.max_recipients = smtp.max_recipients
        self.policy = RecipientPolicy(services.settings.desk_addresses(), smtp.extra_domains)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        # No AUTH: nobody submits through us (aiosmtpd would offer LOGIN/PLAIN after TLS).
        # PIPELINING (RFC 2920): aiosmtpd reads commands from one stream buffer in order.
        kept = [r for r in responses if not r.startswith("250-AUTH")]
        return [*kept[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", kept[-1]]

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        try:
            address.encode("utf-8")
        except UnicodeEncodeError:
            return replies.BAD_SENDER
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        if not self.policy.accepts(address):
            shown = _printable(address)
            local = self.policy.is_local(address)
            log.info(
                "%s rcpt %s refused (%s)", _peer(server), shown, "unknown" if local else "relay"
            )
            reply = replies.NOT_A_DESK_ADDRESS if local else replies.RELAY_DENIED
            return reply.format(address=shown)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(server, Guarded)
        data = envelope.original_content or b""
        recipients = list(envelope.rcpt_tos)
        mail_from = envelope.mail_from or ""
        raw = RawMessage(
            data=data,
            source=_trace(server, session, envelope, self.lmtp),
            # The null reverse-path <> (bounces, auto-replies) is kept as "".
            envelope_from="" if mail_from == "<>" else mail_from,
            envelope_to=tuple(dict.fromkeys(recipients)),
        )
        started = time.perf_counter()
        server.processing(True)
        try:
            reply, disposition = await self._process(raw, server)
        finally:
            server.processing(False)
        self._log(raw, server, disposition, reply, started)
        return replies.per_recipient(reply, recipients) if self.lmtp else reply

    def _analyse_and_process(self, raw: RawMessage) -> Disposition:
        """In a worker thread: the pure stages on the analysis pool (another core), then
        process() stores the message (the one step that needs this process)."""
        services = self.services
        assert services.analyser is not None
        if services.pool is None:
            return process(raw, services)
        return process(raw, services, analysis=services.pool.one(raw, services.analyser))

    def _in_this_process(self, raw: RawMessage) -> asyncio.Future[Disposition]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self.pool, self._analyse_and_process, raw)

    async def _in_store(self, store: StoreWorkers | StoreThread, raw: RawMessage) -> Disposition:
        """process() in the store (worker processes or the store thread); in this thread
        pool while no worker process is up."""
        now = self.services.clock.now()
        try:
            disposition = await store.store(replace(raw, received_at=now), now)
        except NoWorker:
            return await self._in_this_process(raw)
        self.services.outbox_signal.set()  # committed: the mailer here sends the reply
        return disposition

    async def _process(self, raw: RawMessage, server: Guarded) -> tuple[str, Disposition | None]:
        if self.store is not None:
            future = asyncio.ensure_future(self._in_store(self.store, raw))
        else:
            future = self._in_this_process(raw)
        self.station.inflight.add(future)
        future.add_done_callback(self.station.inflight.discard)
        try:
            disposition = await asyncio.shield(future)
        except NotKept:
            return replies.NOT_KEPT, None  # process() has logged it (critical)
        except WorkerLost as exc:
            log.error("%s %s before storing it: 451, the sender retries", _sha_label(raw.data), exc)
            return replies.NOT_KEPT, None
        except asyncio.CancelledError:
            # The client went away before our reply: it will retry; say what happened here.
            future.add_done_callback(_late(raw, server))
            raise
        except Exception:  # a bug in process(): nothing says the bytes are kept
            log.exception("%s process() failed", _sha_label(raw.data))
            return replies.NOT_KEPT, None
        return replies.accepted(disposition), disposition

    def _log(
        self,
        raw: RawMessage,
        server: Guarded,
        disposition: Disposition | None,
        reply: str,
        started: float,
    ) -> None:
        label = getattr(disposition, "message_id", None) or _sha_label(raw.data)
        ticket = disposition.ticket if disposition else None
        if isinstance(disposition, Quarantined):
            ticket = disposition.quarantine_id
        log.info(
            "%s peer=%s from=<%s> to=%s size=%d disposition=%s ticket=%s reply=%s ms=%.1f",
            label,
            _peer(server),
            _printable(raw.envelope_from),
            ",".join(_printable(a) for a in raw.envelope_to),
            len(raw.data),
            disposition.kind if disposition else "not_kept",
            ticket or "-",
            reply.split(" ", 1)[0],
            (time.perf_counter() - started) * 1000,
        )


def _peer(server: SMTP) -> str:
    peer = server.session.peer if server.session else None
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def _trace(server: SMTP, session: Session, envelope: Envelope, lmtp: bool) -> str:
    """`smtp:PEER helo=NAME with=PROTO`: what a Received header would have said.

    PROTO as in Received headers (RFC 3848, RFC 6531): ESMTP, ESMTPS, UTF8SMTPS, LMTP..."""
    tls = session.ssl is not None
    if envelope.smtp_utf8:
        proto = "UTF8LMTP" if lmtp else "UTF8SMTP"
    elif lmtp:
        proto = "LMTP"
    else:
        proto = "ESMTP" if session.extended_smtp else "SMTP"
    scheme = "lmtp" if lmtp else "smtp"
    return f"{scheme}:{_peer(server)} helo={_printable(session.host_name)} with={proto}{'S' * tls}"


def _late(raw: RawMessage, server: Guarded) -> Callable[[asyncio.Future[Disposition]], None]:
    def report(future: asyncio.Future[Disposition]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        outcome = f"failed ({error})" if error else future.result().kind
        log.warning(
            "%s peer=%s disconnected before the reply; outcome %s (the sender will retry)",
            _sha_label(raw.data),
            _peer(server),
            outcome,
        )

    return report
