"""`ImapService`: every configured mailbox polled in a thread of its own, for `claimdesk serve`.

Each thread runs passes (intake/imap_poller.py) on one kept connection. Between passes it
waits in IDLE (RFC 2177) when the server offers it and the mailbox has `idle = true`, so new
mail is imported within a second or two; otherwise, and at the latest after `poll_seconds`
(which also renews the IDLE well inside the 30-minute limit), it runs another pass. A failure
(connection, login, folder, database) is logged on `intake.imap` and retried with exponential
backoff; mailboxes never wait for each other.
"""

from __future__ import annotations

import logging
import random
import ssl
import threading
from collections.abc import Mapping, Sequence

from config.settings import MailboxSettings
from config.wiring import Services
from intake.imap_poller import MailboxPoller
from intake.imap_session import ImapFault

log = logging.getLogger("intake.imap")

BACKOFF_START = 1.0  # seconds before the first retry
BACKOFF_MAX = 300.0  # retries never wait longer than this
IDLE_MAX = 25 * 60.0  # RFC 2177: re-issue IDLE well before a server's 30-minute autologout


class ImapService:
    """start() launches one daemon thread per mailbox; stop() ends them and logs out.

    A `desk.serve` component: it must run in one process only (worker 0). start() never
    fails because of a mailbox: each one is retried in its own thread."""

    name = "imap"

    def __init__(
        self,
        services: Services,
        *,
        mailboxes: Sequence[MailboxSettings] | None = None,
        env: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        backoff_start: float = BACKOFF_START,
        backoff_max: float = BACKOFF_MAX,
    ) -> None:
        chosen = services.settings.mailboxes if mailboxes is None else mailboxes
        names = [mb.name for mb in chosen]
        if len(set(names)) != len(names):
            # The name keys the cursor: two threads would fight over one row.
            raise ValueError(f"mailbox names must be unique: {names}")
        self._stop = threading.Event()
        self._workers = [
            _Worker(
                MailboxPoller(services, mb, env=env, ssl_context=ssl_context),
                self._stop,
                backoff_start,
                backoff_max,
            )
            for mb in chosen
        ]

    def start(self) -> None:
        for worker in self._workers:
            worker.start()
        if self._workers:
            log.info("IMAP intake started for %d mailbox(es)", len(self._workers))

    def stop(self, timeout: float = 10.0) -> None:
        """Ask every thread to finish; a pass ends after its current batch is committed and
        acted on. Waits at most `timeout` seconds per thread."""
        self._stop.set()
        for worker in self._workers:
            if worker.is_alive():
                worker.join(timeout)
                if worker.is_alive():
                    log.warning("mailbox %s: still busy after %.0fs", worker.name, timeout)

    @property
    def failing(self) -> dict[str, str]:
        """Mailboxes whose last attempt failed, with the reason (for health reports)."""
        return {w.poller.mailbox.name: w.last_error for w in self._workers if w.last_error}


class _Worker(threading.Thread):
    def __init__(
        self,
        poller: MailboxPoller,
        stop: threading.Event,
        backoff_start: float,
        backoff_max: float,
    ) -> None:
        super().__init__(name=f"imap-{poller.mailbox.name}", daemon=True)
        self.poller = poller
        self._stop_event = stop
        self._backoff_start = backoff_start
        self._backoff_max = backoff_max
        self.last_error = ""

    def run(self) -> None:
        delay = self._backoff_start
        failures = 0
        try:
            while not self._stop_event.is_set():
                try:
                    self.poller.run_pass(should_stop=self._stop_event.is_set)
                    if failures:
                        log.info(
                            "mailbox %s: working again after %d failed attempt(s)",
                            self.poller.mailbox.name,
                            failures,
                        )
                    failures, delay, self.last_error = 0, self._backoff_start, ""
                    self._wait_for_mail()
                except Exception as exc:  # the thread must outlive any failure
                    failures += 1
                    self.last_error = str(exc)
                    wait = delay * random.uniform(0.9, 1.1)  # spread reconnects to one server
                    if isinstance(exc, ImapFault):
                        log.error("%s; retrying in %.1fs", exc, wait)
                    else:
                        log.exception(
                            "mailbox %s: unexpected failure; retrying in %.1fs",
                            self.poller.mailbox.name,
                            wait,
                        )
                    self.poller.close()
                    self._stop_event.wait(wait)
                    delay = min(delay * 2, self._backoff_max)
        finally:
            self.poller.close()

    def _wait_for_mail(self) -> None:
        mailbox = self.poller.mailbox
        session = self.poller.session
        if mailbox.idle and session is not None and session.can_idle:
            session.wait_for_mail(min(mailbox.poll_seconds, IDLE_MAX), self._stop_event)
        else:
            self._stop_event.wait(mailbox.poll_seconds)
