"""A real Dovecot IMAP server on 127.0.0.1 for tests and benchmarks (no system service touched).

`Dovecot()` writes its own configuration into a fresh temporary directory (run and state
directories, log file, passwd-file users `user1`.. with the plaintext password PASSWORD,
Maildir storage) and runs `dovecot -F -c CONF` as a child process on a random free port. Run
as root, the mail and the login processes use the unprivileged `dovecot` and `dovenull` users
the package creates; run as anyone else, everything runs as that user. `capabilities_without`
hides capabilities from the post-login CAPABILITY (e.g. MOVE, IDLE) to exercise fallbacks;
`tls=True` adds a self-signed certificate for 127.0.0.1, STARTTLS on `port` and implicit TLS on
`tls_port`; `oauth2=True` adds XOAUTH2 with locally validated JWTs (`oauth2_token(user)`).

Needs `dovecot-imapd` (and `openssl` for TLS). Fixtures skip locally when it is missing and
fail under CLAIMDESK_REQUIRE_SERVICES=1 (tests.conftest.service_missing).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.conftest import service_missing

PASSWORD = "pw"
# Dovecot 2.3's post-login capabilities; `capabilities_without` removes from this list.
CAPABILITIES = [
    "IMAP4rev1", "SASL-IR", "LOGIN-REFERRALS", "ID", "ENABLE", "IDLE", "SORT", "SORT=DISPLAY",
    "THREAD=REFERENCES", "THREAD=REFS", "THREAD=ORDEREDSUBJECT", "MULTIAPPEND", "URL-PARTIAL",
    "CATENATE", "UNSELECT", "CHILDREN", "NAMESPACE", "UIDPLUS", "LIST-EXTENDED", "I18NLEVEL=1",
    "CONDSTORE", "QRESYNC", "ESEARCH", "ESORT", "SEARCHRES", "WITHIN", "CONTEXT=SEARCH",
    "LIST-STATUS", "BINARY", "MOVE", "SPECIAL-USE", "LITERAL+",
]  # fmt: skip
APPEND_CHUNK = 500  # messages per MULTIAPPEND command
USERS = 100  # passwd-file users user1..user100
OAUTH2_SECRET = b"claimdesk-test-hs256-key-not-a-secret"


def dovecot_binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.path.exists(p)), None
    )


def unavailable() -> str | None:
    """Why a Dovecot cannot be started here, or None."""
    if dovecot_binary() is None:
        return "the dovecot binary is not installed (apt-get install dovecot-imapd)"
    if os.geteuid() == 0:
        for user in ("dovecot", "dovenull"):
            try:
                pwd.getpwnam(user)
            except KeyError:
                return f"system user {user!r} is missing (created by the dovecot-core package)"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Dovecot:
    def __init__(
        self, *, capabilities_without: Iterable[str] = (), tls: bool = False, oauth2: bool = False
    ) -> None:
        binary = dovecot_binary()
        if binary is None:
            raise RuntimeError("dovecot is not installed")
        self.binary = binary
        # Not under pytest's tmp_path: that is 0700 root-owned and the mail processes run as
        # the `dovecot` user when we are root.
        self.root = Path(tempfile.mkdtemp(prefix="claimdesk-dovecot-"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.tls = tls
        self.oauth2 = oauth2
        self.hidden = {c.upper() for c in capabilities_without}
        self._count = 0
        self._process: subprocess.Popen[bytes] | None = None
        if os.geteuid() == 0:
            mail_user, login_user = pwd.getpwnam("dovecot"), pwd.getpwnam("dovenull")
        else:
            mail_user = login_user = pwd.getpwuid(os.geteuid())
        self._mail_user, self._login_user = mail_user, login_user
        self.mail_dir = self.root / "mail"
        self.mail_dir.mkdir()
        os.chown(self.mail_dir, mail_user.pw_uid, mail_user.pw_gid)
        if tls:
            self._make_certificate()
        if oauth2:
            self._make_oauth2_key()
        # Written once: Dovecot re-reads a changed passwd-file only when its mtime changes,
        # and two changes within a second would go unseen.
        (self.root / "passwd").write_text(
            "".join(f"user{n}:{{PLAIN}}{PASSWORD}::::::\n" for n in range(1, USERS + 1))
        )
        self._write_config()

    # -- configuration ----------------------------------------------------------------------

    @property
    def cert(self) -> Path:
        return self.root / "cert.pem"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        return ssl.create_default_context(cafile=str(self.cert))

    def _make_certificate(self) -> None:
        if shutil.which("openssl") is None:
            raise RuntimeError("openssl is not installed")
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", str(self.root / "key.pem"), "-out", str(self.cert),
                "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def _make_oauth2_key(self) -> None:
        # Local JWT validation (Dovecot >= 2.3.11): the HS256 key for tokens without `azp`
        # and `kid` lives at <prefix>/default/HS256/default, base64-encoded.
        key_dir = self.root / "keys" / "default" / "HS256"
        key_dir.mkdir(parents=True)
        (key_dir / "default").write_text(base64.b64encode(OAUTH2_SECRET).decode())
        for path in (self.root / "keys", key_dir.parent, key_dir):
            path.chmod(0o755)
        (self.root / "oauth2.conf.ext").write_text(
            "introspection_mode = local\n"
            f"local_validation_key_dict = fs:posix:prefix={self.root}/keys/\n"
            "username_attribute = sub\n"
        )

    def oauth2_token(self, user: str, *, secret: bytes = OAUTH2_SECRET) -> str:
        """An HS256 JWT access token for `user`, valid for ten minutes (needs oauth2=True)."""
        now = int(time.time())
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {"sub": user, "iat": now - 5, "nbf": now - 5, "exp": now + 600}
        payload = _b64url(json.dumps(claims).encode())
        signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(signature)}"

    def _write_config(self) -> None:
        root = self.root
        caps = [c for c in CAPABILITIES if c.upper() not in self.hidden]
        lines = [
            "protocols = imap",
            "listen = 127.0.0.1",
            f"base_dir = {root}/run",
            f"state_dir = {root}/state",
            f"log_path = {root}/dovecot.log",
            f"default_internal_user = {self._mail_user.pw_name}",
            f"default_internal_group = {_group(self._mail_user)}",
            f"default_login_user = {self._login_user.pw_name}",
            "first_valid_uid = 1",
            "first_valid_gid = 1",
            "disable_plaintext_auth = no",
            f"auth_mechanisms = plain login{' xoauth2' if self.oauth2 else ''}",
            "auth_failure_delay = 0",
            f"mail_location = maildir:{root}/mail/%u",
            "mail_fsync = never",
            f"imap_capability = {' '.join(caps)}",
            *(
                [
                    "passdb {",
                    "  driver = oauth2",
                    "  mechanisms = xoauth2",
                    f"  args = {root}/oauth2.conf.ext",
                    "}",
                ]
                if self.oauth2
                else []
            ),
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN {root}/passwd",
            *(["  mechanisms = plain login"] if self.oauth2 else []),
            "}",
            "userdb {",
            "  driver = passwd-file",
            f"  args = {root}/passwd",
            f"  default_fields = uid={self._mail_user.pw_uid} gid={self._mail_user.pw_gid} "
            f"home={root}/mail/%u",
            "}",
            "service imap-login {",
            "  chroot =",
            "  inet_listener imap {",
            "    address = 127.0.0.1",
            f"    port = {self.port}",
            "  }",
            "  inet_listener imaps {",
            "    address = 127.0.0.1",
            f"    port = {self.tls_port or 0}",
            "  }",
            "}",
            "service anvil {",
            "  chroot =",
            # No auth penalty: one test's wrong password must not delay every later login
            # from 127.0.0.1 by seconds.
            "  unix_listener anvil-auth-penalty {",
            "    mode = 0",
            "  }",
            "}",
        ]
        if self.tls:
            lines += ["ssl = yes", f"ssl_cert = <{root}/cert.pem", f"ssl_key = <{root}/key.pem"]
        else:
            lines.append("ssl = no")
        (root / "dovecot.conf").write_text("\n".join(lines) + "\n")

    def add_user(self) -> str:
        """An unused user: an empty mailbox of its own, password PASSWORD."""
        if self._count == USERS:
            raise RuntimeError(f"all {USERS} users of this Dovecot are taken")
        self._count += 1
        return f"user{self._count}"

    # -- process ----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> Dovecot:
        if self.running:
            return self
        log = open(self.root / "stdout.log", "ab")  # noqa: SIM115 - lives as long as the child
        self._process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends every session too
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"dovecot exited at start:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"dovecot did not answer on port {self.port}:\n{self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """The server goes away with every open session (the master alone would leave running
        imap processes serving their clients): SIGKILL to the whole process group."""
        if self._process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout)
        self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for name in ("stdout.log", "dovecot.log"):
            path = self.root / name
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- mail -------------------------------------------------------------------------------

    def client(self, user: str) -> IMAPClient:
        client = IMAPClient("127.0.0.1", self.port, ssl=False, timeout=30)
        client.login(user, PASSWORD)
        return client

    def append(
        self, user: str, folder: str, messages: Iterable[bytes], flags: Iterable[bytes] = ()
    ) -> None:
        """APPEND (MULTIAPPEND in chunks) to `folder`, creating it when needed."""
        flags = tuple(flags)
        client = self.client(user)
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            chunk: list[dict[str, object]] = []
            for data in messages:
                chunk.append({"msg": data, "flags": flags} if flags else {"msg": data})
                if len(chunk) == APPEND_CHUNK:
                    client.multiappend(folder, chunk)
                    chunk = []
            if chunk:
                client.multiappend(folder, chunk)
        finally:
            client.logout()

    def uids(self, user: str, folder: str, *criteria: str) -> list[int]:
        """UIDs in `folder` matching a SEARCH (ALL when no criteria); [] for no such folder."""
        client = self.client(user)
        try:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            return sorted(client.search(list(criteria) or ["ALL"]))
        finally:
            client.logout()

    def uidvalidity(self, user: str, folder: str) -> int:
        client = self.client(user)
        try:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])
        finally:
            client.logout()

    def message_files(self, user: str, folder: str) -> list[Path]:
        """The Maildir files of `folder`, oldest first (Dovecot names them by time)."""
        base = self.mail_dir / user / ("" if folder == "INBOX" else f".{folder}")
        return sorted([*base.glob("cur/*"), *base.glob("new/*")], key=lambda p: p.name)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _group(user: pwd.struct_passwd) -> str:
    import grp

    return grp.getgrgid(user.pw_gid).gr_name


# -- fixtures ---------------------------------------------------------------------------------


def _require() -> None:
    reason = unavailable()
    if reason:
        service_missing("dovecot", reason)


# Named apart from the fixture names, so a test module can import them without shadowing:
#     from tests.dovecot import dovecot_fixture, make_dovecot_fixture


@pytest.fixture(scope="module", name="dovecot")
def dovecot_fixture() -> Iterator[Dovecot]:
    """One Dovecot for the module; each test adds its own user (its own mailbox)."""
    _require()
    server = Dovecot().start()
    yield server
    server.close()


@pytest.fixture(name="make_dovecot")
def make_dovecot_fixture() -> Iterator[Callable[..., Dovecot]]:
    """Dovecots of a test's own (variants, or a test that stops and starts the server)."""
    _require()
    made: list[Dovecot] = []

    def factory(**kw: object) -> Dovecot:
        server = Dovecot(**kw)  # type: ignore[arg-type]
        made.append(server)
        return server.start()

    yield factory
    for server in made:
        server.close()
