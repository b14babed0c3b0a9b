"""The `claimdesk` command as a user runs it: a real process, real files, the JSON contract."""

from __future__ import annotations

import json
import mailbox
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mail import claim

CLAIMDESK = [sys.executable, "-m", "desk.cli"]
TICKET_FIELDS = {
    "ref",
    "queue",
    "status",
    "subject",
    "sender",
    "language",
    "language_ok",
    "order_numbers",
    "tracking_numbers",
    "invalid_tracking_numbers",
    "product_urls",
    "store_urls",
    "missing_fields",
    "attachments",
    "route_rule",
    "received_at",
    "due_at",
    "answered_at",
    "sla",
}


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "claimdesk.toml"
    path.write_text(f'[database]\nurl = "{db_url}"\n[desk]\nspool_dir = "{tmp_path / "spool"}"\n')
    return path


def cd(config: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMDESK_")}
    return subprocess.run(
        [*CLAIMDESK, "--config", str(config), *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_ingest_folder_then_list_tickets_json(config: Path, tmp_path: Path) -> None:
    mail = tmp_path / "mail"
    mail.mkdir()
    (mail / "1.eml").write_bytes(claim(message_id="<one@example.org>"))
    (mail / "2.eml").write_bytes(
        claim(message_id="<two@example.org>", order=None, to="disputes@desk.example")
    )
    (mail / "3.eml").write_bytes(b"\x00\x01 garbage")
    result = cd(config, "ingest", "--json", str(mail))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(x["disposition"], x["ticket"]) for x in lines] == [
        ("stored", "CD-000001"),
        ("needs_info", "CD-000002"),
        ("quarantined", None),
    ]
    assert lines[0]["source"].endswith("1.eml")
    listed = cd(config, "tickets", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    tickets = json.loads(listed.stdout)
    assert [set(t) for t in tickets] == [TICKET_FIELDS, TICKET_FIELDS]
    assert tickets[1]["missing_fields"] == ["order_number"]
    assert tickets[1]["status"] == "waiting"
    assert tickets[0]["due_at"].endswith("+00:00")
    again = cd(config, "ingest", "--json", str(mail / "1.eml"))
    assert json.loads(again.stdout)["disposition"] == "duplicate"


def test_ingest_mbox_maildir_and_stdin(config: Path, tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "box.mbox")
    box.add(claim(message_id="<m1@example.org>"))
    box.add(claim(message_id="<m2@example.org>"))
    box.flush()
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    maildir.add(claim(message_id="<d1@example.org>"))
    result = cd(config, "ingest", "--json", str(tmp_path / "box.mbox"), str(tmp_path / "Maildir"))
    assert result.returncode == 0, result.stderr
    kinds = [json.loads(line)["disposition"] for line in result.stdout.splitlines()]
    assert kinds == ["stored", "stored", "stored"]
    piped = cd(config, "ingest", "--json", "-", stdin=claim(message_id="<s1@example.org>"))
    assert json.loads(piped.stdout) == {
        "source": "stdin",
        "disposition": "stored",
        "ticket": "CD-000004",
    }


def test_show_json_has_messages_and_events(config: Path, tmp_path: Path) -> None:
    (tmp_path / "a.eml").write_bytes(claim())
    cd(config, "ingest", str(tmp_path / "a.eml"))
    shown = cd(config, "tickets", "show", "CD-000001", "--json")
    assert shown.returncode == 0, shown.stderr
    item = json.loads(shown.stdout)
    assert set(item) >= TICKET_FIELDS
    assert len(item["messages"]) == 1 and item["messages"][0]["direction"] == "in"
    assert [e["kind"] for e in item["events"]] == ["created", "routed", "reply_queued"]
    human = cd(config, "tickets", "show", "CD-000001")
    assert "route_reason" in human.stdout
    missing = cd(config, "tickets", "show", "CD-999999")
    assert missing.returncode == 1 and "no ticket" in missing.stderr


def test_quarantine_list_show_release(config: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.eml").write_bytes(b"\xff\xfe\x00")
    cd(config, "ingest", str(tmp_path / "bad.eml"))
    listed = json.loads(cd(config, "quarantine", "list", "--json").stdout)
    assert len(listed) == 1 and listed[0]["stage"] == "parse"
    entry = listed[0]["id"]
    raw = subprocess.run(
        [*CLAIMDESK, "--config", str(config), "quarantine", "show", entry, "--raw"],
        capture_output=True,
        check=True,
    )
    assert raw.stdout == b"\xff\xfe\x00"
    # Still unparseable: release fails (exit 1) and the entry stays, exactly once.
    released = cd(config, "quarantine", "release", entry)
    assert released.returncode == 1
    assert [e["id"] for e in json.loads(cd(config, "quarantine", "list", "--json").stdout)] == [
        entry
    ]


def test_invalid_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[smtp]\nport = "x"\n')
    result = cd(path, "tickets", "list")
    assert result.returncode == 2
    assert "smtp.port" in result.stderr


def test_missing_path_is_a_usage_error(config: Path) -> None:
    result = cd(config, "ingest", "/nonexistent/mail.eml")
    assert result.returncode == 2 and "no such file" in result.stderr


def test_db_upgrade(config: Path) -> None:
    result = cd(config, "db", "upgrade")
    assert result.returncode == 0 and "revision" in result.stdout


def test_unusable_keyword_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[queues.general]\naddresses = ["s@desk.example"]\nfallback = true\n'
        '[queues.disputes]\naddresses = ["d@desk.example"]\nkeywords = ["123"]\n'
        '[routing]\norder = ["disputes", "general"]\n'
    )
    result = cd(path, "tickets", "list")
    assert result.returncode == 2
    assert "queues.disputes.keywords" in result.stderr


def test_ingest_no_replies_queues_nothing(config: Path, tmp_path: Path) -> None:
    (tmp_path / "old.eml").write_bytes(claim(order=None))
    assert cd(config, "ingest", "--no-replies", str(tmp_path / "old.eml")).returncode == 0
    assert json.loads(cd(config, "outbox", "list", "--json").stdout) == []
    events = json.loads(cd(config, "tickets", "show", "CD-000001", "--json").stdout)["events"]
    skipped = [e for e in events if e["kind"] == "reply_skipped"]
    assert skipped and skipped[0]["detail"]["reason"] == "replies off for this import"


def test_staff_commands_and_report(config: Path, tmp_path: Path) -> None:
    (tmp_path / "a.eml").write_bytes(claim())
    cd(config, "ingest", str(tmp_path / "a.eml"))
    body = tmp_path / "answer.txt"
    body.write_text("We have refunded your order in full.")
    later = cd(config, "extend", "CD-000001", "--until", "2099-01-31", "--reason", "carrier")
    assert later.returncode == 0, later.stderr
    assert "2099-01-31" in later.stdout
    earlier = cd(config, "extend", "CD-000001", "--until", "2000-01-01", "--reason", "x")
    assert earlier.returncode == 1 and "later" in earlier.stderr
    answered = cd(config, "reply", "CD-000001", "--body-file", str(body))
    assert answered.returncode == 0 and "met" in answered.stdout
    ticket = json.loads(cd(config, "tickets", "show", "CD-000001", "--json").stdout)
    assert ticket["status"] == "answered" and ticket["sla"] == "met"
    assert cd(config, "assign", "CD-000001", "--queue", "nowhere").returncode == 2
    assert cd(config, "assign", "CD-000001", "--queue", "general").returncode == 0
    assert cd(config, "close", "CD-000001").returncode == 0
    assert cd(config, "reopen", "CD-000001").returncode == 0
    report = cd(config, "report", "sla", "--format", "json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["total"]["answered"] == 1
    out = tmp_path / "r.csv"
    assert cd(config, "report", "sla", "--format", "csv", "--out", str(out)).returncode == 0
    assert out.read_text().startswith("kind,queue,")
    bad = cd(config, "report", "sla", "--as-of", "yesterday")
    assert bad.returncode == 2
    outbox = json.loads(cd(config, "outbox", "list", "--json").stdout)
    assert {row["kind"] for row in outbox} >= {"ack", "extension_notice", "staff_answer"}
