"""IMAP import rate: claimdesk's whole pass next to a bare IMAPClient fetch of the same folder.

    .venv/bin/python -m bench.imap [--count 10000] [--batch-size 200] [--after seen]
                                   [--database-url URL]

A temporary Dovecot (tests/dovecot.py) gets `--count` distinct ~3 KB claims (bench.corpus),
APPENDed to one folder. Then, in this order, on the same folder:
1. bare: `UID SEARCH ALL` and `UID FETCH BODY.PEEK[]` in batches, bytes only (the ceiling);
2. claimdesk: one pass of the IMAP poller: fetch, process() each message, cursor, after action;
3. the same pass again (nothing new: the cost of a poll that finds nothing).
The pass reports the time spent inside process(); the rest is the IMAP edge (fetch, cursor,
after action), so the split comes from one run rather than from two runs on a busy machine.
django-helpdesk's `get_email` is timed on the same mailbox when it is importable (it is not a
claimdesk dependency: install it in a side environment to compare).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from imapclient import IMAPClient
from sqlalchemy import func, select

from bench.corpus import generate
from config.settings import build_settings
from config.wiring import Services, build_services
from intake.imap_poller import fetch_once
from storage.models import MESSAGE, TICKET
from tests.dovecot import PASSWORD, Dovecot, unavailable

FOLDER = "Claims"
PASSWORD_ENV = "CLAIMDESK_BENCH_IMAP_PASSWORD"
TARGET = 250.0  # messages/s: the target for the whole pass


def bare_fetch(server: Dovecot, user: str, batch: int) -> tuple[int, int, float]:
    """(messages, bytes, seconds) of a plain batched UID FETCH BODY.PEEK[] of the folder."""
    started = time.perf_counter()
    client = IMAPClient("127.0.0.1", server.port, ssl=False)
    client.login(user, PASSWORD)
    client.select_folder(FOLDER, readonly=True)
    uids = sorted(client.search(["ALL"]))
    size = 0
    for start in range(0, len(uids), batch):
        for data in client.fetch(uids[start : start + batch], [b"BODY.PEEK[]"]).values():
            size += len(data[b"BODY[]"])
    client.logout()
    return len(uids), size, time.perf_counter() - started


def services_for(url: str, spool: Path, mailboxes: list[dict[str, object]]) -> Services:
    document = {"database": {"url": url}, "desk": {"spool_dir": str(spool)}, "mailboxes": mailboxes}
    return build_services(build_settings(document, env={}))


def counts(services: Services) -> tuple[int, int, int]:
    with services.engine.connect() as conn:
        tickets = conn.execute(select(func.count()).select_from(TICKET)).scalar_one()
        messages = conn.execute(select(func.count()).select_from(MESSAGE)).scalar_one()
        unique = select(func.count(func.distinct(MESSAGE.c.message_id)))
        distinct = conn.execute(unique).scalar_one()
    return int(tickets), int(messages), int(distinct)


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>9,.0f} msg/s  ({count:,} in {seconds:.2f} s)"


def helpdesk_line() -> str:
    if importlib.util.find_spec("helpdesk") is None:
        return (
            "django-helpdesk:     not found (not a claimdesk dependency; install it in a side "
            "environment to time its get_email on the same mailbox)"
        )
    # Timing it needs a configured Django project around it; not wired into this script yet.
    return "django-helpdesk:     importable, but timing it needs a Django project: not run"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--after", default="seen", help='"seen" or "move:FOLDER"')
    parser.add_argument("--database-url", default="", help="default: SQLite in a temp dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    reason = unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    version = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout
    work = Path(tempfile.mkdtemp(prefix="claimdesk-bench-imap-"))
    url = args.database_url or f"sqlite:///{work / 'bench.db'}"
    server = Dovecot().start()
    try:
        user = server.add_user()
        print(f"corpus: {args.count:,} messages from bench.corpus.generate ...", flush=True)
        messages = list(generate(args.count))
        started = time.perf_counter()
        server.append(user, FOLDER, messages)
        appended = time.perf_counter() - started
        average = sum(map(len, messages)) / len(messages)
        print(f"APPEND: {len(messages):,} x {average:,.0f} B in {appended:.1f} s", flush=True)

        bare_count, bare_bytes, bare_seconds = bare_fetch(server, user, args.batch_size)
        mailbox = {
            "name": "bench",
            "host": "127.0.0.1",
            "port": server.port,
            "tls": "none",
            "username": user,
            "password_env": PASSWORD_ENV,
            "folder": FOLDER,
            "after": args.after,
            "batch_size": args.batch_size,
        }
        services = services_for(url, work / "spool", [mailbox])
        env = {PASSWORD_ENV: PASSWORD}
        started = time.perf_counter()
        report = fetch_once(services, services.settings.mailboxes[0], env=env)
        pass_seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = fetch_once(services, services.settings.mailboxes[0], env=env)
        idle_seconds = time.perf_counter() - started
        tickets, stored, distinct = counts(services)

        claimdesk_rate = report.imported / pass_seconds
        edge_seconds = pass_seconds - report.process_seconds
        print()
        print(f"dovecot {version.strip()}, python {sys.version.split()[0]}, database "
              f"{url.split(':', 1)[0]}, batch {args.batch_size}, after {args.after}")  # fmt: skip
        print(f"bare IMAPClient:     {rate(bare_count, bare_seconds)}, "
              f"{bare_bytes / bare_seconds / 2**20:.1f} MiB/s")  # fmt: skip
        print(f"claimdesk pass:      {rate(report.imported, pass_seconds)}  "
              f"{dict(report.dispositions)}")  # fmt: skip
        print(f"ratio bare/claimdesk: {bare_count / bare_seconds / claimdesk_rate:,.1f}x")
        print(f"  inside process():  {report.process_seconds:.2f} s "
              f"({report.process_seconds / pass_seconds:.0%}, "
              f"{report.process_seconds / report.imported * 1000:.2f} ms/message: "
              f"{report.imported / report.process_seconds:,.0f} msg/s at most)")  # fmt: skip
        print(f"  IMAP edge:         {edge_seconds:.2f} s "
              f"({edge_seconds / pass_seconds:.0%}, {edge_seconds / report.imported * 1000:.2f}"
              " ms/message: fetch, cursor, commit, after action)")  # fmt: skip
        print(f"second pass:         {again.found} new, {idle_seconds * 1000:.0f} ms")
        print(helpdesk_line())
        duplicated = stored - distinct
        ok = tickets == args.count and stored == args.count and duplicated == 0
        print(f"exactly once:        {tickets:,} tickets, {stored:,} messages, "
              f"{duplicated} duplicated -> {'OK' if ok else 'FAILED'}")  # fmt: skip
        verdict = "meets" if claimdesk_rate >= TARGET else "BELOW"
        print(f"target:              >= {TARGET:.0f} msg/s: {verdict} ({claimdesk_rate:,.0f})")
        return 0 if ok else 1
    finally:
        server.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
