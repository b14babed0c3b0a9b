"""`claimdesk fetch` as a user runs it: a real process, a real Dovecot, the exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.dovecot import PASSWORD, Dovecot, dovecot_fixture  # noqa: F401
from tests.mail import claim

PASSWORD_ENV = "CLAIMDESK_TEST_IMAP_PASSWORD"


def toml_value(value: Any) -> str:
    return json.dumps(value)  # str, int and bool are spelled the same in TOML


def write_config(tmp_path: Path, *mailboxes: dict[str, Any]) -> Path:
    lines = [
        "[database]",
        f"url = {toml_value('sqlite:///' + str(tmp_path / 'cd.db'))}",
        "[desk]",
        f"spool_dir = {toml_value(str(tmp_path / 'spool'))}",
    ]
    for mailbox in mailboxes:
        lines.append("[[mailboxes]]")
        lines += [f"{key} = {toml_value(value)}" for key, value in mailbox.items()]
    path = tmp_path / "claimdesk.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def mailbox(server: Dovecot, user: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": user,
        "host": "127.0.0.1",
        "port": server.port,
        "tls": "none",
        "username": user,
        "password_env": PASSWORD_ENV,
        **overrides,
    }


def cd(config: Path, *args: str, **secrets: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMDESK_")}
    env.update({PASSWORD_ENV: PASSWORD, **secrets})
    return subprocess.run(
        [sys.executable, "-m", "desk.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_fetch_imports_two_mailboxes_each_with_its_own_queue_and_after_action(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    sales, security = dovecot.add_user(), dovecot.add_user()
    dovecot.append(sales, "INBOX", [claim(message_id=f"<s{i}@b.example>") for i in range(3)])
    dovecot.append(security, "INBOX", [claim(to="support@desk.example")])
    config = write_config(
        tmp_path,
        mailbox(dovecot, sales, name="sales"),
        mailbox(dovecot, security, name="security", queue="security", after="move:Done"),
    )
    result = cd(config, "fetch")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "mailbox sales (INBOX): 3 message(s): 3 stored",
        "mailbox security (INBOX): 1 message(s): 1 stored",
    ]
    assert dovecot.uids(sales, "INBOX", "UNSEEN") == []
    assert dovecot.uids(security, "INBOX") == [] and dovecot.uids(security, "Done") == [1]

    listed = cd(config, "tickets", "list", "--json")
    queues = sorted(t["queue"] for t in json.loads(listed.stdout))
    assert queues == ["disputes", "disputes", "disputes", "security"]

    again = cd(config, "fetch", "--mailbox", "sales")
    assert again.returncode == 0
    assert again.stdout == "mailbox sales (INBOX): 0 message(s): nothing new\n"
    unknown = cd(config, "fetch", "--mailbox", "nope")
    assert unknown.returncode == 2 and "unknown mailbox 'nope'" in unknown.stderr


def test_fetch_exits_1_naming_each_failure_and_still_imports_the_good_mailbox(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    good, other = dovecot.add_user(), dovecot.add_user()
    dovecot.append(good, "INBOX", [claim()])
    config = write_config(
        tmp_path,
        mailbox(dovecot, other, name="locked", password_env="CLAIMDESK_TEST_WRONG"),
        mailbox(dovecot, good, name="nofolder", folder="Nope"),
        mailbox(dovecot, good, name="good"),
        mailbox(dovecot, good, name="down", port=1),  # nothing listens there
    )
    result = cd(config, "fetch", CLAIMDESK_TEST_WRONG="not-" + PASSWORD)
    assert result.returncode == 1
    assert result.stdout == "mailbox good (INBOX): 1 message(s): 1 stored\n"
    errors = result.stderr.splitlines()
    assert len(errors) == 3, result.stderr
    assert f"login as '{other}' at 127.0.0.1:{dovecot.port} (password) failed: " in errors[0]
    assert "[AUTHENTICATIONFAILED]" in errors[0]
    assert "folder 'Nope' cannot be selected" in errors[1]
    assert "cannot connect to 127.0.0.1:1" in errors[2]


def test_fetch_without_mailboxes_is_a_usage_error(tmp_path: Path) -> None:
    result = cd(write_config(tmp_path), "fetch")
    assert result.returncode == 2 and "no [[mailboxes]]" in result.stderr
