"""One IMAP connection to one mailbox folder: the only module that speaks IMAP (via IMAPClient).

`ImapSession.open()` connects (implicit TLS, STARTTLS or plain) and logs in (password or XOAUTH2
token, both read from environment variables named in the config); `select()` opens the folder.
Every command uses UIDs, never sequence numbers; bodies are read with `BODY.PEEK[]` so that
reading changes nothing on the server. Every failure becomes an `ImapFault` whose message names
the mailbox and what failed; a session that raised one is not used again.
"""

from __future__ import annotations

import imaplib
import logging
import re
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imapclient import IMAPClient, SocketTimeout

from config.settings import MailboxSettings

log = logging.getLogger("intake.imap")

SEEN = rb"\Seen"
DELETED = rb"\Deleted"
CONNECT_TIMEOUT = 15.0  # seconds to open the connection
READ_TIMEOUT = 120.0  # seconds any one command may stay silent (a 200-message FETCH included)
IDLE_TICK = 1.0  # how often an IDLE wait looks at the stop flag
CLOSE_TIMEOUT = 5.0  # seconds LOGOUT may take before the socket is just closed

# imaplib raises IMAP4.error (and its subclass abort) for NO/BAD/BYE; sockets raise OSError
# (refused, reset, timeout, TLS); a server that hangs up mid-response gives EOFError.
_FAILURES = (imaplib.IMAP4.error, OSError, EOFError)


@dataclass(frozen=True)
class Fetched:
    """One message as the server delivered it: the exact bytes and its INTERNALDATE."""

    data: bytes
    arrived: datetime | None


class ImapFault(Exception):
    """A pass over a mailbox could not go on: connection, login, folder, command or storage.

    The message names the mailbox and the failure. Nothing uncommitted was acted on."""


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int
    uidnext: int | None
    exists: int


def uid_set(uids: Iterable[int]) -> str:
    """A compact RFC 3501 sequence set: [1, 2, 3, 7, 9, 10] -> "1:3,7,9:10"."""
    ordered = sorted(set(uids))
    if not ordered:
        raise ValueError("empty UID set")
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == prev + 1:
            prev = uid
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        if uid is not None:
            start = prev = uid
    return ",".join(parts)


def _text(exc: BaseException) -> str:
    """The server's words, not a repr of bytes (IMAPClient's LoginError wraps `str(b"...")`)."""
    parts = [a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a) for a in exc.args]
    text = " ".join(parts) or type(exc).__name__
    quoted = re.fullmatch(r"b(['\"])(.*)\1", text, re.DOTALL)
    return quoted.group(2) if quoted else text


def _secret(mailbox: MailboxSettings, env: Mapping[str, str]) -> tuple[str, str]:
    """("oauth2" | "password", value) from the environment variable the config names."""
    if mailbox.oauth2_token_env:
        kind, name = "oauth2", mailbox.oauth2_token_env
    elif mailbox.password_env:
        kind, name = "password", mailbox.password_env
    else:
        raise ImapFault(
            f"mailbox {mailbox.name}: neither password_env nor oauth2_token_env is configured"
        )
    value = env.get(name)
    if not value:
        raise ImapFault(f"mailbox {mailbox.name}: environment variable {name} ({kind}) is not set")
    return kind, value


class ImapSession:
    """A logged-in connection to one mailbox; `select()` before reading or acting."""

    def __init__(
        self, mailbox: MailboxSettings, client: IMAPClient, capabilities: frozenset[bytes]
    ) -> None:
        self.mailbox = mailbox
        self.client = client
        self.capabilities = capabilities
        self._target_ready = False
        self._warned_no_uidplus = False

    # -- opening ------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        mailbox: MailboxSettings,
        env: Mapping[str, str],
        ssl_context: ssl.SSLContext | None = None,
    ) -> ImapSession:
        """Connect and log in (then `select()`); raises ImapFault saying which step failed."""
        kind, secret = _secret(mailbox, env)
        where = f"{mailbox.host}:{mailbox.port}"
        context = None
        if mailbox.tls != "none":
            context = ssl_context or ssl.create_default_context()
        elif mailbox.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning(
                "mailbox %s: tls = none: the login goes over the network in clear text",
                mailbox.name,
            )
        try:
            client = IMAPClient(
                mailbox.host,
                mailbox.port,
                ssl=mailbox.tls == "implicit",
                ssl_context=context,
                timeout=SocketTimeout(CONNECT_TIMEOUT, READ_TIMEOUT),
            )
            client.normalise_times = False  # INTERNALDATE as an aware datetime
        except _FAILURES as exc:
            raise ImapFault(
                f"mailbox {mailbox.name}: cannot connect to {where} (tls={mailbox.tls}): "
                f"{_text(exc)}"
            ) from exc
        try:
            if mailbox.tls == "starttls":
                try:
                    client.starttls(context)
                except _FAILURES as exc:
                    raise ImapFault(
                        f"mailbox {mailbox.name}: STARTTLS with {where} failed: {_text(exc)}"
                    ) from exc
            try:
                if kind == "oauth2":
                    client.oauth2_login(mailbox.username, secret)
                else:
                    client.login(mailbox.username, secret)
            except _FAILURES as exc:
                raise ImapFault(
                    f"mailbox {mailbox.name}: login as {mailbox.username!r} at {where} "
                    f"({'XOAUTH2' if kind == 'oauth2' else 'password'}) failed: {_text(exc)}"
                ) from exc
            try:
                # After login: servers announce MOVE, UIDPLUS and IDLE only then (RFC 3501 6.2.3).
                capabilities = frozenset(bytes(c).upper() for c in client.capabilities())
            except _FAILURES as exc:
                raise ImapFault(
                    f"mailbox {mailbox.name}: CAPABILITY at {where} failed: {_text(exc)}"
                ) from exc
            return cls(mailbox, client, capabilities)
        except BaseException:
            _close_quietly(client)
            raise

    def select(self) -> FolderState:
        """(Re-)select the folder: fresh UIDVALIDITY and UIDNEXT for this pass."""
        folder = self.mailbox.folder
        try:
            # imaplib refuses a READ-ONLY answer itself: then no after action would be possible.
            response: dict[bytes, Any] = self.client.select_folder(folder)
        except _FAILURES as exc:
            raise self._fault(f"folder {folder!r} cannot be selected", exc) from exc
        if b"UIDVALIDITY" not in response:
            raise ImapFault(
                f"mailbox {self.mailbox.name}: the server sent no UIDVALIDITY for {folder!r}; "
                "UIDs cannot be trusted, so nothing is imported"
            )
        uidnext = response.get(b"UIDNEXT")
        return FolderState(
            uidvalidity=int(response[b"UIDVALIDITY"]),
            uidnext=int(uidnext) if uidnext is not None else None,
            exists=int(response.get(b"EXISTS", 0)),
        )

    # -- reading ------------------------------------------------------------------------------

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than `last_uid`, ascending.

        `UID SEARCH UID n:*` always matches the highest UID even when it is below n (RFC 3501
        6.4.8: `*` is the largest UID in use), so the answer is filtered."""
        found = self._call("UID SEARCH", lambda: self.client.search(["UID", f"{last_uid + 1}:*"]))
        return sorted(uid for uid in found if uid > last_uid)

    def existing(self, uids: Iterable[int]) -> set[int]:
        """Which of these UIDs are still in the folder."""
        wanted = set(uids)
        if not wanted:
            return set()
        found = self._call("UID SEARCH", lambda: self.client.search(["UID", uid_set(wanted)]))
        return wanted & set(found)

    def fetch(self, uids: list[int]) -> dict[int, Fetched]:
        """The exact bytes of each UID the server delivered (a UID it left out is absent),
        with the time the message arrived in the mailbox (INTERNALDATE, RFC 3501 2.3.3)."""
        items = [b"BODY.PEEK[]", b"INTERNALDATE"]
        response = self._call("UID FETCH", lambda: self.client.fetch(uids, items))
        fetched: dict[int, Fetched] = {}
        for uid, data in response.items():
            body = data.get(b"BODY[]")
            if isinstance(body, bytes):
                arrived = data.get(b"INTERNALDATE")
                if not isinstance(arrived, datetime) or arrived.tzinfo is None:
                    arrived = None
                else:
                    # In UTC, as every time we keep; IMAPClient's own FixedOffset zone
                    # would not even survive the pickle to an analysis process.
                    arrived = arrived.astimezone(UTC)
                fetched[int(uid)] = Fetched(body, arrived)
        return fetched

    # -- acting -------------------------------------------------------------------------------

    def after(self, uids: Iterable[int]) -> str:
        """Apply the mailbox's `after` action to exactly these UIDs; returns what was done.

        Never deletes: `move` uses MOVE (RFC 6851) when offered, else COPY, then \\Seen and
        \\Deleted on these UIDs and UID EXPUNGE of these UIDs only (RFC 4315). UIDs no longer
        in the folder are ignored by the server, so repeating an action is harmless."""
        uids = list(uids)
        if not uids:
            return "nothing"
        which = uid_set(uids)
        after = self.mailbox.after
        if after == "seen":
            self._call("UID STORE", lambda: self.client.add_flags(which, [SEEN], silent=True))
            return "flagged \\Seen"
        target = after.removeprefix("move:")
        self._ensure_target(target)
        if b"MOVE" in self.capabilities:
            self._call("UID MOVE", lambda: self.client.move(which, target))
            return f"moved to {target}"
        self._call("UID COPY", lambda: self.client.copy(which, target))
        self._call("UID STORE", lambda: self.client.add_flags(which, [SEEN, DELETED], silent=True))
        if b"UIDPLUS" in self.capabilities:
            self._call("UID EXPUNGE", lambda: self.client.uid_expunge(which))
            return f"copied to {target} and expunged"
        if not self._warned_no_uidplus:
            # A plain EXPUNGE would also remove other clients' \Deleted messages.
            log.warning(
                "mailbox %s: server offers neither MOVE nor UIDPLUS; copied messages stay in "
                "%s flagged \\Deleted until some client expunges the folder",
                self.mailbox.name,
                self.mailbox.folder,
            )
            self._warned_no_uidplus = True
        return f"copied to {target} and flagged \\Deleted"

    def _ensure_target(self, target: str) -> None:
        if self._target_ready:
            return
        if target == self.mailbox.folder:
            raise ImapFault(
                f"mailbox {self.mailbox.name}: after = move:{target} names the folder being "
                "read; messages would come back forever"
            )
        if not self._call("LIST", lambda: self.client.folder_exists(target)):
            log.info(
                "mailbox %s: creating folder %r for the after action", self.mailbox.name, target
            )
            self._call("CREATE", lambda: self.client.create_folder(target))
        self._target_ready = True

    # -- waiting ------------------------------------------------------------------------------

    @property
    def can_idle(self) -> bool:
        return b"IDLE" in self.capabilities

    def wait_for_mail(self, seconds: float, stop: threading.Event) -> bool:
        """IDLE (RFC 2177) until the server announces mail, `seconds` pass, or `stop` is set.

        Returns True when new mail was announced. A connection that died shows up when IDLE
        ends (DONE fails), as an ImapFault."""
        self._call("IDLE", self.client.idle)
        announced = False
        try:
            deadline = time.monotonic() + seconds
            while not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                tick = min(IDLE_TICK, left)
                started = time.monotonic()
                responses = self._call("IDLE", lambda t=tick: self.client.idle_check(timeout=t))
                if any(len(r) > 1 and r[1] == b"EXISTS" for r in responses):
                    announced = True
                    break
                if any(r and r[0] == b"BYE" for r in responses):
                    break
                if not responses and time.monotonic() - started < tick / 2:
                    # Readable but nothing parsed: the server hung up. DONE below will tell.
                    break
        finally:
            self._call("DONE", self.client.idle_done)
        return announced

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        _close_quietly(self.client)

    def _call(self, what: str, command: Any) -> Any:
        try:
            return command()
        except _FAILURES as exc:
            raise self._fault(f"{what} failed", exc) from exc

    def _fault(self, what: str, exc: BaseException) -> ImapFault:
        return ImapFault(
            f"mailbox {self.mailbox.name} ({self.mailbox.host}:{self.mailbox.port} "
            f"{self.mailbox.folder}): {what}: {_text(exc)}"
        )


def _close_quietly(client: IMAPClient) -> None:
    try:
        client.socket().settimeout(CLOSE_TIMEOUT)  # a dead peer must not hold up stop()
        client.logout()
    except Exception:  # the connection is often dead already; nothing to keep
        try:
            client.shutdown()
        except Exception:
            log.debug("closing an IMAP connection failed", exc_info=True)
