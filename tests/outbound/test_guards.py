"""Loop and abuse protection through process(): the message is stored either way, the
reply is skipped with its reason recorded; the per-sender limit counts the last 24 hours."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from config.wiring import Services
from intake.types import NeedsInfo, Stored
from tests.mail import claim
from tests.outbound.sink import Sink
from tests.outbound.support import drain, events, kinds, outbox, receive


def skipped_reason(services: Services, ref: str | None) -> str:
    [event] = [e for e in events(services, ref) if e.kind == "reply_skipped"]
    return str(event.detail["reason"])


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Auto-Submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ({"Precedence": "bulk"}, "Precedence: bulk"),
        ({"List-Id": "<buyers.example.org>"}, "List-Id present"),
        ({"X-Auto-Response-Suppress": "OOF, AutoReply"}, "X-Auto-Response-Suppress"),
    ],
)
def test_automatic_mail_is_stored_but_not_answered(
    desk: Services, headers: dict[str, str], reason: str
) -> None:
    result = receive(desk, claim(order=None, extra_headers=headers))
    assert isinstance(result, NeedsInfo) and result.created  # the ticket exists all the same
    assert outbox(desk) == []
    assert reason in skipped_reason(desk, result.ticket)


def test_null_envelope_sender_is_not_answered(desk: Services) -> None:
    result = receive(desk, claim(), envelope_from="")
    assert isinstance(result, Stored)
    assert outbox(desk) == [] and skipped_reason(desk, result.ticket) == "null sender"


def test_mail_from_our_own_address_is_not_answered(desk: Services) -> None:
    result = receive(desk, claim(sender="Claims Desk <claims@desk.example>"))
    assert outbox(desk) == []
    assert skipped_reason(desk, result.ticket) == "own address claims@desk.example"


def test_per_sender_limit_over_24_hours(
    make_services: Callable[..., Services], db_url: str, sink: Sink, clock
) -> None:
    services = make_services(db_url, relay={**sink.relay_settings(), "max_auto_replies_per_day": 2})
    refs = [receive(services, claim(subject=f"Claim {n}")).ticket for n in range(3)]
    assert len(set(refs)) == 3  # three tickets, each stored
    assert [r.kind for r in outbox(services)] == ["ack", "ack"]
    assert skipped_reason(services, refs[2]) == "rate limit: 2 auto-replies in 24 h (max 2)"
    other = receive(services, claim(sender="someone.else@example.org", subject="Mine"))
    assert "reply_queued" in kinds(services, other.ticket)  # the limit is per sender
    clock.advance(timedelta(hours=23, minutes=59))
    late = receive(services, claim(subject="Claim 3"))
    assert "rate limit" in skipped_reason(services, late.ticket)
    clock.advance(timedelta(minutes=1))
    fresh = receive(services, claim(subject="Claim 4"))
    assert "reply_queued" in kinds(services, fresh.ticket)
    assert drain(services).sent == 4
    assert [m.rcpt_tos for m in sink.wait_for(4)].count(("buyer@example.org",)) == 3


def test_without_a_relay_replies_wait_in_the_outbox(
    make_services: Callable[..., Services], db_url: str, tmp_path: Path
) -> None:
    services = make_services(db_url)
    result = receive(services, claim(order=None))
    assert drain(services).attempted == 0
    [row] = outbox(services)
    assert row.status == "pending" and row.attempts == 0
    config = tmp_path / "claimdesk.toml"
    config.write_text(f'[database]\nurl = "{db_url}"\n[desk]\nspool_dir = "{tmp_path / "spool"}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMDESK_")}
    listed = subprocess.run(
        [sys.executable, "-m", "desk.cli", "--config", str(config), "outbox", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    [item] = json.loads(listed.stdout)
    assert item["status"] == "pending" and item["kind"] == "ack"
    assert item["ticket"] == result.ticket and item["recipient"] == "buyer@example.org"
    assert item["message_id"].endswith("@desk.example") and item["sent_at"] is None
    sent = subprocess.run(
        [sys.executable, "-m", "desk.cli", "--config", str(config), "outbox", "send"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert sent.returncode == 1 and "no relay.host configured" in sent.stderr
