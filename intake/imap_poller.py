"""One exactly-once pass over one IMAP folder: new UIDs -> process() -> cursor -> after action.

Per batch of `batch_size` UIDs:
1. `UID FETCH BODY.PEEK[]`: reading changes nothing on the server.
2. ONE transaction: `process()` for each message (each in its own savepoint), then the cursor
   row (storage/imap_repo.py): last UID, UIDs to fetch again, UIDs awaiting the after action.
3. Commit, and only then flag or move exactly the UIDs just committed.

A crash before the commit loses nothing: the batch was never committed and the next pass
imports it again (dedupe answers `duplicate` for anything stored meanwhile), never a second
ticket. A crash after the commit leaves `after_pending`, which the next pass acts on before
anything else. A UIDVALIDITY change resets the cursor and re-reads the
whole folder, relying on the same dedupe. Nothing is ever deleted.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from config.settings import MailboxSettings
from config.wiring import Services
from intake.imap_session import Fetched, FolderState, ImapFault, ImapSession, uid_set
from intake.process import NotKept, prepare, process
from intake.types import Disposition, RawMessage
from storage.imap_repo import Cursor, load_cursor, save_cursor

log = logging.getLogger("intake.imap")


class Progress(Protocol):
    """What a pass reports as it goes (the CLI draws a progress bar from it)."""

    def found(self, mailbox: str, count: int) -> None: ...

    def processed(self, mailbox: str, disposition: Disposition) -> None: ...


class _Quiet:
    def found(self, mailbox: str, count: int) -> None:
        pass

    def processed(self, mailbox: str, disposition: Disposition) -> None:
        pass


@dataclass
class PassReport:
    """What one pass did. `undelivered`: UIDs the server did not deliver (fetched again next
    pass). `interrupted`: stopped early (stop requested, or another process holds the folder).
    `process_seconds`: time spent inside process() (the rest of a pass is IMAP and cursor)."""

    mailbox: str
    folder: str
    uidvalidity: int = 0
    found: int = 0
    dispositions: Counter[str] = field(default_factory=Counter)
    acted: int = 0
    undelivered: list[int] = field(default_factory=list)
    resynced: bool = False
    interrupted: bool = False
    process_seconds: float = 0.0

    @property
    def imported(self) -> int:
        return sum(self.dispositions.values())

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.dispositions.items())) or "nothing new"
        text = f"mailbox {self.mailbox} ({self.folder}): {self.imported} message(s): {kinds}"
        if self.undelivered:
            text += f"; {len(self.undelivered)} not delivered by the server (retried next pass)"
        if self.resynced:
            text += "; UIDVALIDITY changed: full resync"
        return text


class _CursorMoved(Exception):
    """Another process advanced this folder's cursor: our batch was rolled back."""


class MailboxPoller:
    """Passes over one mailbox, keeping one session open between passes (for IDLE)."""

    def __init__(
        self,
        services: Services,
        mailbox: MailboxSettings,
        *,
        env: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.services = services
        self.mailbox = mailbox
        self._env = os.environ if env is None else env
        self._ssl_context = ssl_context
        self._session: ImapSession | None = None
        self._uidvalidity: int | None = None  # of the pass under way
        self._stored: Cursor | None = None  # the cursor row as last read or written

    # -- the pass -----------------------------------------------------------------------------

    def run_pass(
        self,
        progress: Progress | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> PassReport:
        """Import every message not imported yet; raises ImapFault when the pass cannot go on
        (what was committed before stays committed and is acted on by the next pass)."""
        progress = progress or _Quiet()
        mb = self.mailbox
        report = PassReport(mb.name, mb.folder)
        self._uidvalidity = None
        try:
            state = self._select()
            self._uidvalidity = report.uidvalidity = state.uidvalidity
            cursor = self._start_cursor(state, report)
            cursor = self._finish_pending(cursor, report)
            retry = self._still_there(cursor)
            new = [] if _nothing_new(state, cursor) else self._live().uids_after(cursor.last_uid)
            todo = retry + new
            report.found = len(todo)
            progress.found(mb.name, len(todo))
            for start in range(0, len(todo), mb.batch_size):
                if should_stop():
                    report.interrupted = True
                    break
                cursor = self._batch(cursor, todo[start : start + mb.batch_size], report, progress)
            if cursor.after_pending:
                self._commit_cursor(replace(cursor, after_pending=()))
        except _CursorMoved:
            log.warning(
                "mailbox %s: another process is importing %s; this pass stops here",
                mb.name,
                mb.folder,
            )
            report.interrupted = True
        except ImapFault:
            self.close()
            raise
        except (SQLAlchemyError, NotKept) as exc:
            self.close()
            raise ImapFault(
                f"mailbox {mb.name}: the batch was rolled back and stays unflagged: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if report.imported or report.undelivered or report.resynced:
            log.info("%s", report.summary())
        return report

    def _select(self) -> FolderState:
        """Select on the kept session, or on a fresh one if the kept one died while idle."""
        if self._session is not None:
            try:
                return self._session.select()
            except ImapFault as exc:
                log.info("mailbox %s: reconnecting (%s)", self.mailbox.name, exc)
                self.close()
        return self._open().select()

    def _start_cursor(self, state: FolderState, report: PassReport) -> Cursor:
        mb = self.mailbox
        with self.services.engine.connect() as conn:
            self._stored = load_cursor(conn, mb.name, mb.folder)
        stored = self._stored
        if stored is not None and stored.uidvalidity == state.uidvalidity:
            return stored
        fresh = Cursor(mb.name, mb.folder, state.uidvalidity)
        if stored is not None:
            # RFC 3501 2.3.1.1: the old UIDs mean nothing now, including any pending action.
            log.warning(
                "mailbox %s: UIDVALIDITY of %s changed from %d to %d: re-reading the whole "
                "folder (messages already imported come back as duplicates)",
                mb.name,
                mb.folder,
                stored.uidvalidity,
                state.uidvalidity,
            )
            report.resynced = True
            self._commit_cursor(fresh)
        return fresh

    def _finish_pending(self, cursor: Cursor, report: PassReport) -> Cursor:
        """Act on UIDs committed by an earlier pass whose flag or move was not confirmed."""
        if not cursor.after_pending:
            return cursor
        done = self._live().after(cursor.after_pending)
        log.info(
            "mailbox %s: %s %d message(s) committed by an earlier pass (UIDs %s)",
            self.mailbox.name,
            done,
            len(cursor.after_pending),
            uid_set(cursor.after_pending),
        )
        report.acted += len(cursor.after_pending)
        cursor = replace(cursor, after_pending=())
        self._commit_cursor(cursor)
        return cursor

    def _still_there(self, cursor: Cursor) -> list[int]:
        """The retry list without the UIDs another client removed meanwhile."""
        if not cursor.retry:
            return []
        present = self._live().existing(cursor.retry)
        for uid in sorted(set(cursor.retry) - present):
            log.warning(
                "%s: left the folder before the server ever delivered it; no longer retried",
                self._source(uid),
            )
        return sorted(present)

    def _batch(
        self, cursor: Cursor, uids: list[int], report: PassReport, progress: Progress
    ) -> Cursor:
        bodies, undelivered = self._fetch(uids)
        delivered = [uid for uid in uids if uid in bodies]
        mb = self.mailbox
        kinds: Counter[str] = Counter()  # counted in the report only once committed
        # The pure stages before the transaction: the write lock is held only for storing.
        started = time.perf_counter()
        prepared = prepare([self._raw(uid, bodies[uid]) for uid in delivered], self.services)
        report.process_seconds += time.perf_counter() - started
        with self.services.engine.begin() as conn:
            try:
                current = load_cursor(conn, mb.name, mb.folder, for_update=True)
                if current != self._stored:
                    raise _CursorMoved
                for item in prepared:
                    started = time.perf_counter()
                    disposition = process(
                        item.raw, self.services, conn=conn, analysis=item.analysis
                    )
                    report.process_seconds += time.perf_counter() - started
                    kinds[disposition.kind] += 1
                    progress.processed(mb.name, disposition)
                retry = (set(cursor.retry) - set(uids)) | set(undelivered)
                cursor = replace(
                    cursor,
                    last_uid=max(cursor.last_uid, *uids),
                    retry=tuple(sorted(retry)),
                    after_pending=tuple(delivered),
                )
                save_cursor(conn, cursor, self.services.clock.now(), exists=current is not None)
            except IntegrityError as exc:  # our cursor INSERT lost a race with another process
                raise _CursorMoved from exc
        self._stored = cursor
        self.services.outbox_signal.set()  # committed: the batch's replies can go out now
        report.dispositions.update(kinds)
        report.undelivered.extend(undelivered)
        if delivered:
            self._live().after(delivered)
            report.acted += len(delivered)
        return cursor

    # -- fetching -----------------------------------------------------------------------------

    def _fetch(self, uids: list[int]) -> tuple[dict[int, Fetched], list[int]]:
        """(bodies by UID, UIDs the server did not deliver). A failed batch FETCH is retried
        one UID at a time on fresh connections, so one message the server cannot read does not
        hold up the others; if the server cannot be reached at all, ImapFault propagates."""
        undelivered: list[int] = []
        try:
            bodies = self._live().fetch(uids)
        except ImapFault as exc:
            if len(uids) == 1:
                raise
            log.warning(
                "mailbox %s: FETCH of %d message(s) failed (%s); fetching them one at a time",
                self.mailbox.name,
                len(uids),
                exc,
            )
            self.close()
            bodies = {}
            for uid in uids:
                session = self._live()  # reconnects; an unreachable server ends the pass
                try:
                    bodies.update(session.fetch([uid]))
                except ImapFault as single:
                    self.close()
                    log.warning(
                        "%s: the server failed to deliver it: %s", self._source(uid), single
                    )
                    undelivered.append(uid)
        missing = [uid for uid in uids if uid not in bodies and uid not in undelivered]
        if missing:
            present = self._live().existing(missing)
            for uid in missing:
                if uid in present:
                    log.warning(
                        "%s: the server returned no body; it stays unflagged and is fetched "
                        "again on the next pass",
                        self._source(uid),
                    )
                    undelivered.append(uid)
                else:
                    log.info("%s: expunged by another client before it was read", self._source(uid))
        return bodies, sorted(undelivered)

    # -- helpers ------------------------------------------------------------------------------

    def _raw(self, uid: int, fetched: Fetched) -> RawMessage:
        """The 30-day clock starts when the message reached the mailbox (INTERNALDATE), not
        when we got round to reading it: downtime must not lengthen the desk's deadline.
        A server date in the future (clock skew) is capped at now."""
        mb = self.mailbox
        now = self.services.clock.now()
        arrived = min(fetched.arrived, now) if fetched.arrived is not None else now
        return RawMessage(
            data=fetched.data,
            source=self._source(uid),
            envelope_to=(mb.address.strip().lower(),) if mb.address else (),
            queue_hint=mb.queue or None,
            received_at=arrived,
        )

    def _source(self, uid: int) -> str:
        mb = self.mailbox
        return f"imap:{mb.name}/{mb.folder}/{self._uidvalidity}:{uid}"

    def _commit_cursor(self, cursor: Cursor) -> None:
        mb = self.mailbox
        with self.services.engine.begin() as conn:
            try:
                current = load_cursor(conn, mb.name, mb.folder, for_update=True)
                if current != self._stored:
                    raise _CursorMoved
                save_cursor(conn, cursor, self.services.clock.now(), exists=current is not None)
            except IntegrityError as exc:
                raise _CursorMoved from exc
        self._stored = cursor

    def _open(self) -> ImapSession:
        if self._session is None:
            self._session = ImapSession.open(self.mailbox, self._env, self._ssl_context)
        return self._session

    def _live(self) -> ImapSession:
        """The open session; after a reconnect mid-pass, the folder must still be the same."""
        if self._session is not None:
            return self._session
        session = self._open()
        state = session.select()
        if self._uidvalidity is not None and state.uidvalidity != self._uidvalidity:
            self.close()
            raise ImapFault(
                f"mailbox {self.mailbox.name}: UIDVALIDITY changed during the pass; the next "
                "pass re-reads the folder"
            )
        return session

    @property
    def session(self) -> ImapSession | None:
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None


def _nothing_new(state: FolderState, cursor: Cursor) -> bool:
    """UIDNEXT (when the server sends it) says whether a search is needed at all."""
    return state.uidnext is not None and state.uidnext <= cursor.last_uid + 1


def fetch_once(
    services: Services,
    mailbox: MailboxSettings,
    *,
    env: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    progress: Progress | None = None,
) -> PassReport:
    """One pass over one mailbox on a connection of its own (`claimdesk fetch`)."""
    poller = MailboxPoller(services, mailbox, env=env, ssl_context=ssl_context)
    try:
        return poller.run_pass(progress)
    finally:
        poller.close()
