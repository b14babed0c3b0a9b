"""Two mailer PROCESSES (`claimdesk outbox send`) drain one outbox of 200 rows at the same
time, on SQLite and on PostgreSQL: the relay receives every row exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from config.wiring import Services
from outbound.compose import ReplyTarget
from outbound.enqueue import enqueue_reply
from tests.conftest import T0
from tests.mail import claim
from tests.outbound.sink import Sink
from tests.outbound.support import outbox, receive

ROWS = 200
TICKETS = 20


def test_two_processes_send_every_row_once(
    make_services: Callable[..., Services], db_url: str, sink: Sink, tmp_path: Path
) -> None:
    services = make_services(db_url)  # no relay here: rows wait until the workers run
    refs = [
        receive(services, claim(sender=f"buyer{n}@example.org", subject=f"Claim {n}")).ticket
        for n in range(TICKETS)
    ]
    with services.engine.begin() as conn:
        for n in range(ROWS - TICKETS):
            ticket_id = 1 + n % TICKETS
            enqueue_reply(
                conn,
                services.settings,
                ticket_id,
                "staff_answer",
                now=T0,
                details={"body": f"Answer number {n}."},
                target=ReplyTarget(address=f"buyer{ticket_id - 1}@example.org", subject="x"),
            )
    assert len(refs) == TICKETS and len(outbox(services)) == ROWS
    sink.handler.delay = 0.01  # a relay that takes its time: the workers overlap
    config = tmp_path / "workers.toml"
    config.write_text(
        f'[database]\nurl = "{db_url}"\n'
        f'[desk]\nspool_dir = "{tmp_path / "spool"}"\n'
        f'[relay]\nhost = "127.0.0.1"\nport = {sink.port}\nstarttls = false\n'
        "[outbound]\nbatch_size = 5\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMDESK_")}
    command = [sys.executable, "-m", "desk.cli", "--config", str(config), "outbox", "send"]
    workers = [
        subprocess.Popen(
            [*command, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for _ in range(2)
    ]
    results = [w.communicate(timeout=300) for w in workers]
    for worker, (_, err) in zip(workers, results, strict=True):
        assert worker.returncode == 0, err.decode()
    counts = [json.loads(out) for out, _ in results]
    assert sum(c["sent"] for c in counts) == ROWS
    assert all(c["failed"] == 0 and c["retried"] == 0 for c in counts)

    received = sink.wait_for(ROWS)
    ids = Counter(m.message["Message-ID"].strip("<>") for m in received)
    assert len(received) == ROWS and max(ids.values()) == 1  # nothing twice
    rows = outbox(services)
    assert set(ids) == {r.message_id for r in rows}  # nothing missing
    assert all(r.status == "sent" and r.attempts == 1 for r in rows)
    by_worker = Counter(r.locked_by for r in rows)
    assert len(by_worker) == 2, by_worker  # both processes really took part
