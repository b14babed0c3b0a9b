"""The mailer: outbox rows out through the configured relay. The only module that opens
outbound SMTP.

`drain_outbox()` is a plain function (the scheduler's retry job and `claimdesk outbox send`
call it); `MailerService` runs it in a thread inside `claimdesk serve`, woken right after a
commit that queued mail (`Services.outbox_signal`) and at least every `outbound.poll_seconds`.

Per row: claim it (`pending -> sending`, atomically, see storage/outbox_repo.py), compose
its bytes if this is its first attempt (`compose_row()`; they are stored in `outbox.raw` with
the outcome, and a retry sends the same bytes), send them, then in a second transaction
record the outcome:
- 2xx: `sent` (`sent_at`, event `reply_sent`);
- 4xx, or the connection failed: back to `pending` with `next_attempt_at` doubling from
  `outbound.retry_base_seconds` up to `retry_max_seconds`; `failed` after `max_attempts`;
- 5xx for this message (sender, recipient or data refused): `failed` (event `reply_failed`).
A row is in flight under one worker's lock; only when that lock expires (the worker died
mid-send, `outbound.lock_seconds`) may another take it over: at-least-once in that window,
never two concurrent sends. Without `relay.host` nothing is sent: rows wait, visible with
`claimdesk outbox list`.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from config.settings import Settings
from config.wiring import Services
from outbound.compose import ComposeError
from outbound.enqueue import compose_row
from storage import outbox_repo, repo

log = logging.getLogger("outbound.mailer")


@dataclass(frozen=True)
class DrainCounts:
    """What one drain did. `relay_error` is set when the relay could not be used at all."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    relay_error: str = ""

    @property
    def attempted(self) -> int:
        return self.sent + self.retried + self.failed


@dataclass(frozen=True)
class _Outcome:
    status: str  # sent | retry | failed
    error: str = ""
    connection_lost: bool = False
    composed: bytes | None = None  # bytes made for this attempt, to be stored


class RelayUnavailable(Exception):
    """The relay cannot be used (configuration, network, authentication)."""


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


class _Relay:
    """One SMTP session with the relay, opened on first use and reused for the whole drain."""

    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        self._settings = settings
        self._env = env
        self._smtp: smtplib.SMTP | None = None

    def send(self, mail_from: str, recipient: str, raw: bytes) -> None:
        if self._smtp is None:
            self._smtp = self._open()
        self._smtp.sendmail(mail_from, [recipient], raw)

    def _open(self) -> smtplib.SMTP:
        relay = self._settings.relay
        password = ""
        if relay.username:
            password = self._env.get(relay.password_env, "") if relay.password_env else ""
            if not password:
                raise RelayUnavailable(
                    f"relay.password_env: environment variable {relay.password_env or '(unset)'}"
                    " is empty"
                )
        domain = self._settings.desk.from_address.rpartition("@")[2] or "localhost"
        smtp = smtplib.SMTP(
            relay.host,
            relay.port,
            local_hostname=domain,
            timeout=self._settings.outbound.timeout_seconds,
        )
        try:
            smtp.ehlo()
            if relay.starttls:
                context = ssl.create_default_context(cafile=relay.ca_file or None)
                smtp.starttls(context=context)
                smtp.ehlo()
            if relay.username:
                smtp.login(relay.username, password)
        except BaseException:
            smtp.close()
            raise
        return smtp

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
            self._smtp = None


def _attempt(relay: _Relay, settings: Settings, mail_from: str, row: Any) -> _Outcome:
    composed = None
    if row.raw:
        raw = bytes(row.raw)
    else:
        try:
            raw = composed = compose_row(row, settings).raw
        except ComposeError as exc:
            return _Outcome("failed", f"cannot compose: {exc}")
    return replace(_send(relay, mail_from, row.recipient, raw), composed=composed)


def _send(relay: _Relay, mail_from: str, recipient: str, raw: bytes) -> _Outcome:
    try:
        relay.send(mail_from, recipient, raw)
    except smtplib.SMTPRecipientsRefused as exc:
        code, text = next(iter(exc.recipients.values()), (0, b""))
        return _by_code(code, text)
    except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
        return _by_code(exc.smtp_code, exc.smtp_error)
    except (RelayUnavailable, smtplib.SMTPException, OSError) as exc:
        relay.close()
        return _Outcome("retry", f"relay: {type(exc).__name__}: {exc}", connection_lost=True)
    return _Outcome("sent")


def _by_code(code: int, text: bytes | str) -> _Outcome:
    message = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    error = f"{code} {message}".strip()
    if code == 421:  # the server is closing the connection: nothing wrong with this mail
        return _Outcome("retry", error, connection_lost=True)
    if 500 <= code < 600:
        return _Outcome("failed", error)
    return _Outcome("retry", error)


def backoff(settings: Settings, attempts: int) -> timedelta:
    """Wait before attempt `attempts + 1`: base, 2 x base, 4 x base, ... up to the max."""
    out = settings.outbound
    seconds = min(out.retry_base_seconds * 2 ** max(attempts - 1, 0), out.retry_max_seconds)
    return timedelta(seconds=seconds)


def _record(services: Services, row: Any, worker: str, outcome: _Outcome) -> str:
    """Store the outcome of one attempt; returns the row's new status."""
    settings, now = services.settings, services.clock.now()
    attempts = row.attempts + 1
    status = outcome.status
    if status == "retry" and attempts >= settings.outbound.max_attempts:
        status = "failed"
    values: dict[str, Any] = {"attempts": attempts, "locked_until": None}
    if outcome.composed is not None:
        values["raw"] = outcome.composed
    if status == "sent":
        values.update(status="sent", sent_at=now, last_error=None)
    elif status == "retry":
        values.update(
            status="pending",
            next_attempt_at=now + backoff(settings, attempts),
            last_error=outcome.error[:1000],
            locked_by=None,
        )
    else:
        values.update(status="failed", last_error=outcome.error[:1000])
    detail = {"kind": row.kind, "message_id": row.message_id, "recipient": row.recipient}
    with services.engine.begin() as conn:
        if not outbox_repo.finish(conn, row.id, worker, values):
            log.warning("%s outbox row %d was taken over by another worker", row.message_id, row.id)
            return status
        if row.ticket_id is not None and status in ("sent", "failed"):
            if status == "failed":
                detail["error"] = outcome.error[:500]
            kind = "reply_sent" if status == "sent" else "reply_failed"
            repo.add_event(conn, row.ticket_id, kind, now, {**detail, "attempts": attempts})
    log_at = logging.INFO if status == "sent" else logging.WARNING
    log.log(log_at, "%s to %s: %s %s", row.message_id, row.recipient, status, outcome.error)
    return status


def drain_outbox(
    services: Services,
    worker_id: str,
    *,
    env: Mapping[str, str] | None = None,
    stop: threading.Event | None = None,
) -> DrainCounts:
    """Send every due outbox row (claimed `outbound.batch_size` at a time) through the relay.

    Returns the counts; stops early when the relay fails at connection level (the rows not
    yet tried go back to `pending` untouched) or when `stop` is set. Without `relay.host`
    returns zero counts at once. Raises only for database errors."""
    settings = services.settings
    if not settings.relay.host:
        return DrainCounts()
    mail_from = settings.outbound.envelope_from or settings.desk.from_address
    relay = _Relay(settings, os.environ if env is None else env)
    counts = DrainCounts()
    try:
        while stop is None or not stop.is_set():
            now = services.clock.now()
            until = now + timedelta(seconds=settings.outbound.lock_seconds)
            with services.engine.begin() as conn:
                rows = outbox_repo.claim(conn, worker_id, now, until, settings.outbound.batch_size)
            if not rows:
                break
            counts, broken = _send_batch(services, relay, mail_from, worker_id, rows, counts, stop)
            if broken:
                break
    finally:
        relay.close()
    return counts


def _send_batch(
    services: Services,
    relay: _Relay,
    mail_from: str,
    worker: str,
    rows: Sequence[Any],
    counts: DrainCounts,
    stop: threading.Event | None,
) -> tuple[DrainCounts, bool]:
    for index, row in enumerate(rows):
        if stop is not None and stop.is_set():
            _release(services, rows[index:], worker)
            return counts, True
        outcome = _attempt(relay, services.settings, mail_from, row)
        status = _record(services, row, worker, outcome)
        if status == "sent":
            counts = replace(counts, sent=counts.sent + 1)
        elif status == "failed":
            counts = replace(counts, failed=counts.failed + 1)
        else:
            counts = replace(counts, retried=counts.retried + 1)
        if outcome.connection_lost:
            _release(services, rows[index + 1 :], worker)
            return replace(counts, relay_error=outcome.error), True
    return counts, False


def _release(services: Services, rows: Sequence[Any], worker: str) -> None:
    if rows:
        with services.engine.begin() as conn:
            outbox_repo.release(conn, [r.id for r in rows], worker)


class MailerService:
    """`drain_outbox()` in a thread, as a `claimdesk serve` component (start/stop).

    Wakes when `services.outbox_signal` is set (process() sets it after a commit) and at
    least every `outbound.poll_seconds`; after a relay failure it waits
    `outbound.retry_base_seconds` (doubling, capped) before trying the relay again."""

    name = "mailer"

    def __init__(self, services: Services, worker_id: str | None = None) -> None:
        self.services = services
        self.worker_id = worker_id or default_worker_id()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def _signal(self) -> threading.Event:
        return self.services.outbox_signal

    def start(self) -> None:
        """Start the sending thread; without `relay.host` there is nothing to send, so no
        thread (waking one after every stored message would only cost the intake CPU)."""
        self._stop.clear()
        if not self.services.settings.relay.host:
            log.warning("no relay.host configured: replies stay in the outbox (outbox list)")
            return
        self._thread = threading.Thread(target=self._run, name="mailer", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._signal.set()

    def stop(self) -> None:
        """Finish the row in flight (bounded by the SMTP timeout), then return."""
        self._stop.set()
        self._signal.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        out = self.services.settings.outbound
        failures = 0
        while not self._stop.is_set():
            try:
                counts = drain_outbox(self.services, self.worker_id, stop=self._stop)
                failures = failures + 1 if counts.relay_error else 0
            except Exception:
                log.exception("outbox drain failed (database?); trying again later")
                failures += 1
            if failures:
                pause = min(out.retry_base_seconds * 2 ** (failures - 1), out.retry_max_seconds)
                self._stop.wait(pause)
                continue
            self._signal.wait(out.poll_seconds)
            self._signal.clear()
