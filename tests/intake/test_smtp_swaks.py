"""swaks, an SMTP client that is not ours, against the running edge (CI installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import service_missing
from tests.intake import smtp_support
from tests.intake.smtp_support import Running, Serve, make_certificate
from tests.mail import claim

serve = smtp_support.serve  # the fixture: claimdesk's SMTP edge in this process


@pytest.fixture
def swaks() -> str:
    found = shutil.which("swaks")
    if found is None:
        service_missing("swaks", "not installed (apt-get install swaks)")
    assert found is not None
    return found


def run_swaks(swaks: str, running: Running, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [swaks, "--server", f"127.0.0.1:{running.port}", "--from", "buyer@example.org",
         "--helo", "swaks.example", "--timeout", "20", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip


def message_file(tmp_path: Path, **kwargs: object) -> str:
    path = tmp_path / "claim.eml"
    path.write_bytes(claim(**kwargs))  # type: ignore[arg-type]
    return str(path)


def test_swaks_plain_delivery(swaks: str, serve: Serve, tmp_path: Path) -> None:
    running = serve()
    result = run_swaks(swaks, running, "--to", "disputes@desk.example", "--data",
                       message_file(tmp_path))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<-  250 2.0.0 Ok: CD-000001 stored" in result.stdout
    [row] = running.messages()
    assert row.source.split()[1:] == ["helo=swaks.example", "with=ESMTP"]
    # What swaks sent (CRLF lines, plus an empty line of its own before the dot) is stored.
    sent = (tmp_path / "claim.eml").read_bytes().replace(b"\n", b"\r\n") + b"\r\n"
    assert row.raw == sent


def test_swaks_starttls_pipelined_two_desk_recipients(
    swaks: str, serve: Serve, tmp_path: Path
) -> None:
    cert, key = make_certificate(tmp_path)
    running = serve(tls_cert=str(cert), tls_key=str(key))
    result = run_swaks(
        swaks, running, "--tls", "--tls-verify", "--tls-ca-path", str(cert), "--pipeline",
        "--to", "disputes@desk.example,security@desk.example", "--data", message_file(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.0.0 Ok: CD-000001 stored" in result.stdout
    assert running.count_tickets() == 1
    assert running.messages()[0].source.endswith("with=ESMTPS")


def test_swaks_lmtp_gets_one_reply_per_recipient(swaks: str, serve: Serve, tmp_path: Path) -> None:
    running = serve(lmtp=True)
    result = run_swaks(
        swaks, running, "--protocol", "LMTP", "--to",
        "disputes@desk.example,security@desk.example", "--data", message_file(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250 2.0.0 <disputes@desk.example> Ok: CD-000001 stored" in result.stdout
    assert "250 2.0.0 <security@desk.example> Ok: CD-000001 stored" in result.stdout


def test_swaks_relay_attempt_is_refused(swaks: str, serve: Serve, tmp_path: Path) -> None:
    running = serve()
    result = run_swaks(swaks, running, "--to", "someone@elsewhere.example", "--data",
                       message_file(tmp_path))  # fmt: skip
    assert result.returncode != 0
    assert "<** 550 5.1.1 <someone@elsewhere.example>" in result.stdout
    assert running.messages() == []
