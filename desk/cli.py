"""The `claimdesk` command (contract: ARCHITECTURE.md).

Exit codes: 0 ok, 1 operation failed, 2 bad usage or invalid config.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import click

from config.settings import ConfigError, Settings, load_settings
from config.wiring import Services, build_services
from desk.cli_staff import register as register_staff_commands
from desk.sources import Source, expand
from desk.views import event_json, message_json, ticket_json
from intake.process import NotKept, prepare, process, process_batch
from intake.types import Disposition, RawMessage
from routing.router import build_rules
from storage import repo
from storage.models import ticket_id_from_ref
from storage.schema import upgrade

INGEST_BATCH = 200


class Context:
    """Settings are loaded when the command starts; services only when it needs them."""

    def __init__(self, config_path: str | None) -> None:
        try:
            self.settings: Settings = load_settings(config_path)
            build_rules(self.settings)  # keyword lists are checked here, before any work
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from exc
        except ValueError as exc:
            raise click.UsageError(f"invalid configuration: {exc}") from exc
        self._services: Services | None = None

    @property
    def services(self) -> Services:
        if self._services is None:
            self._services = build_services(self.settings)
        return self._services


pass_ctx = click.make_pass_decorator(Context)


def _fail(message: str) -> None:
    click.echo(f"claimdesk: {message}", err=True)
    raise SystemExit(1)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Config file (default: $CLAIMDESK_CONFIG, else built-in defaults).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log each message's disposition.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, verbose: bool) -> None:
    """claimdesk: email intake and the 30-day reply rule for a marketplace claims desk."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    ctx.obj = Context(config_path)


# -- ingest -------------------------------------------------------------------------------


def _batches(sources: Sequence[Source], size: int) -> Iterator[Sequence[Source]]:
    for start in range(0, len(sources), size):
        yield sources[start : start + size]


def _ingest_batch(
    services: Services, batch: Sequence[Source], replies: bool = True
) -> list[tuple[str, Disposition]]:
    """One transaction for the batch (process_batch: each message in its own savepoint, all
    tried again alone if the commit fails). Raises NotKept for a message kept nowhere, after
    the rest of the batch was stored."""
    raws = [RawMessage(data=s.read(), source=s.name, auto_reply=replies) for s in batch]
    prepared = prepare(raws, services)
    results = process_batch(prepared, services)
    for result in results:
        if isinstance(result, NotKept):
            raise result
    return [
        (item.raw.source, result)
        for item, result in zip(prepared, results, strict=True)
        if not isinstance(result, NotKept)
    ]


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message.")
@click.option(
    "--no-replies", is_flag=True, help="Queue no auto-replies (importing an old archive)."
)
@pass_ctx
def ingest(obj: Context, paths: tuple[str, ...], as_json: bool, no_replies: bool) -> None:
    """Ingest .eml files, mbox files, Maildir folders, or - (stdin)."""
    for path in paths:
        if path != "-" and not os.path.exists(path):
            raise click.UsageError(f"no such file or folder: {path}")
    sources = expand(list(paths))
    services = obj.services
    counts: dict[str, int] = {}
    show_bar = sys.stderr.isatty() and not as_json
    with click.progressbar(
        length=len(sources), label="ingesting", file=sys.stderr, hidden=not show_bar
    ) as bar:
        for batch in _batches(sources, INGEST_BATCH):
            try:
                results = _ingest_batch(services, batch, replies=not no_replies)
            except NotKept as exc:
                _fail(f"could not keep a message anywhere: {exc}")
            for name, disposition in results:
                counts[disposition.kind] = counts.get(disposition.kind, 0) + 1
                if as_json:
                    click.echo(
                        json.dumps(
                            {
                                "source": name,
                                "disposition": disposition.kind,
                                "ticket": disposition.ticket,
                            }
                        )
                    )
            bar.update(len(batch))
    if not as_json:
        summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing"
        click.echo(f"{len(sources)} message(s): {summary}")


# -- fetch --------------------------------------------------------------------------------


class _FetchBar:
    """One click progress bar per mailbox, drawn only when stderr is a terminal."""

    def __init__(self) -> None:
        self._bar: Any = None

    def found(self, mailbox: str, count: int) -> None:
        self.close()
        if not count:
            return
        self._bar = click.progressbar(
            length=count,
            label=f"fetching {mailbox}",
            file=sys.stderr,
            hidden=not sys.stderr.isatty(),
        )
        self._bar.__enter__()

    def processed(self, mailbox: str, disposition: Disposition) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None


@cli.command()
@click.option("--mailbox", "names", multiple=True, help="Only this mailbox (repeatable).")
@pass_ctx
def fetch(obj: Context, names: tuple[str, ...]) -> None:
    """One IMAP pass now over the configured mailboxes; exit 1 if any of them failed."""
    from intake.imap_poller import fetch_once
    from intake.imap_session import ImapFault

    configured = {mb.name: mb for mb in obj.settings.mailboxes}
    if not configured:
        raise click.UsageError("no [[mailboxes]] in the configuration")
    for name in names:
        if name not in configured:
            raise click.UsageError(f"unknown mailbox {name!r}; known: {', '.join(configured)}")
    failed = False
    for mailbox in [configured[n] for n in names] if names else configured.values():
        bar = _FetchBar()
        try:
            report = fetch_once(obj.services, mailbox, progress=bar)
        except ImapFault as exc:
            click.echo(f"claimdesk: {exc}", err=True)
            failed = True
            continue
        finally:
            bar.close()
        click.echo(report.summary())
        failed = failed or bool(report.undelivered)
    if failed:
        raise SystemExit(1)


# -- tickets ------------------------------------------------------------------------------


@cli.group()
def tickets() -> None:
    """List and show tickets."""


@tickets.command("list")
@click.option("--queue", default=None)
@click.option("--status", default=None)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def tickets_list(obj: Context, queue: str | None, status: str | None, as_json: bool) -> None:
    services = obj.services
    if queue and queue not in obj.settings.queues:
        raise click.UsageError(f"unknown queue {queue!r}; known: {', '.join(obj.settings.queues)}")
    now = services.clock.now()
    with services.engine.connect() as conn:
        rows = repo.list_tickets(conn, queue=queue, status=status)
    items = [ticket_json(r, obj.settings, now) for r in rows]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=1))
        return
    tz = obj.settings.desk.tz
    for row, item in zip(rows, items, strict=True):
        due = row.due_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        missing = ",".join(item["missing_fields"]) or "-"
        click.echo(
            f"{item['ref']}  {item['queue']:<10} {item['status']:<8} due {due} "
            f"{item['sla']:<8} {item['sender']:<28} missing={missing}  "
            f"rule={item['route_rule']}  {item['subject'][:50]}"
        )
    click.echo(f"{len(items)} ticket(s)", err=True)


def _ticket_row(conn: Any, ref: str) -> Any:
    ticket_id = ticket_id_from_ref(ref)
    row = repo.get_ticket(conn, ticket_id) if ticket_id else None
    if row is None:
        _fail(f"no ticket {ref}")
    return row


@tickets.command("show")
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def tickets_show(obj: Context, ref: str, as_json: bool) -> None:
    services = obj.services
    with services.engine.connect() as conn:
        row = _ticket_row(conn, ref)
        messages = repo.ticket_messages(conn, row.id)
        attachments = repo.message_attachments(conn, [m.id for m in messages])
        events = repo.ticket_events(conn, row.id)
    item = ticket_json(row, obj.settings, services.clock.now())
    item["messages"] = [
        message_json(m, [a for a in attachments if a.message_pk == m.id]) for m in messages
    ]
    item["events"] = [event_json(e) for e in events]
    if as_json:
        click.echo(json.dumps(item, ensure_ascii=False, indent=1))
        return
    tz = obj.settings.desk.tz
    times = ("received_at", "due_at", "answered_at")
    for key, value in item.items():
        if key not in (*times, "messages", "events"):
            click.echo(f"{key:>25}: {value}")
    for key in times:
        value = getattr(row, key)
        shown = value.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if value else "-"
        click.echo(f"{key:>25}: {shown}")
    click.echo(f"{'route_reason':>25}: {row.route_reason}")
    for message in item["messages"]:
        click.echo(
            f"\n--- {message['direction']} {message['received_at']} {message['sender']} "
            f"<{message['message_id']}>"
        )
        click.echo(message["text"].strip()[:2000])
    click.echo("\nevents:")
    for event in item["events"]:
        click.echo(
            f"  {event['at']} {event['kind']} {json.dumps(event['detail'], ensure_ascii=False)}"
        )


# -- quarantine ---------------------------------------------------------------------------


@cli.group()
def quarantine() -> None:
    """The kept-aside mail: list, show, release."""


@quarantine.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def quarantine_list(obj: Context, as_json: bool) -> None:
    from dataclasses import asdict

    entries = obj.services.spool.list()
    if as_json:
        click.echo(json.dumps([asdict(e) for e in entries], ensure_ascii=False, indent=1))
        return
    for e in entries:
        click.echo(f"{e.id}  {e.stage:<6} {e.size:>8} B  {e.source}  {e.reason[:80]}")
    click.echo(f"{len(entries)} quarantined message(s)", err=True)


@quarantine.command("show")
@click.argument("entry_id")
@click.option("--raw", is_flag=True, help="Print the exact bytes.")
@pass_ctx
def quarantine_show(obj: Context, entry_id: str, raw: bool) -> None:
    spool = obj.services.spool
    entry = spool.get(entry_id)
    if entry is None:
        _fail(f"no quarantine entry {entry_id}")
    assert entry is not None
    if raw:
        sys.stdout.buffer.write(spool.raw(entry_id))
        return
    for key, value in entry.__dict__.items():
        if key != "traceback":
            click.echo(f"{key:>14}: {value}")
    if entry.traceback:
        click.echo("\n" + entry.traceback)
    preview = spool.raw(entry_id)[:1500].decode("utf-8", "replace")
    click.echo("\n--- first bytes ---\n" + preview)


@quarantine.command("release")
@click.argument("entry_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def quarantine_release(obj: Context, entry_ids: tuple[str, ...], as_json: bool) -> None:
    """Feed entries through process() again; released ones leave the list."""
    services = obj.services
    failed = False
    for entry_id in entry_ids:
        entry = services.spool.get(entry_id)
        if entry is None:
            click.echo(f"claimdesk: no quarantine entry {entry_id}", err=True)
            failed = True
            continue
        raw = RawMessage(
            data=services.spool.raw(entry_id),
            source=f"quarantine:{entry_id} ({entry.source})",
            envelope_from=entry.envelope_from,
            envelope_to=tuple(entry.envelope_to),
            queue_hint=entry.queue_hint,
        )
        try:
            disposition = process(raw, services)
        except NotKept as exc:
            _fail(f"{entry_id}: still cannot be kept: {exc}")
        if disposition.kind == "quarantined":
            # Still not processable: the spool keeps the same bytes once, as this entry.
            failed = True
        else:
            services.spool.mark_released(entry_id)
        if as_json:
            click.echo(
                json.dumps(
                    {"id": entry_id, "disposition": disposition.kind, "ticket": disposition.ticket}
                )
            )
        else:
            click.echo(f"{entry_id}: {disposition.kind} {disposition.ticket or ''}".rstrip())
    if failed:
        raise SystemExit(1)


# -- outbox -------------------------------------------------------------------------------


@cli.group()
def outbox() -> None:
    """Mail the desk sends: waiting, sent, failed."""


@outbox.command("list")
@click.option(
    "--status", type=click.Choice(["pending", "sending", "sent", "failed", "bounced"]), default=None
)
@click.option("--json", "as_json", is_flag=True, help="A JSON array of outbox rows.")
@pass_ctx
def outbox_list(obj: Context, status: str | None, as_json: bool) -> None:
    from outbound.views import outbox_json
    from storage import outbox_repo

    with obj.services.engine.connect() as conn:
        items = [outbox_json(r) for r in outbox_repo.list_rows(conn, status=status)]
    if as_json:
        click.echo(json.dumps(items, ensure_ascii=False, indent=1))
        return
    for item in items:
        click.echo(
            f"{item['id']:>6}  {item['status']:<8} {item['kind']:<16} {item['ticket'] or '-':<10} "
            f"{item['recipient']:<30} attempts={item['attempts']}  {item['subject'][:60]}"
            + (f"  [{item['last_error'][:80]}]" if item["last_error"] else "")
        )
    click.echo(f"{len(items)} outbox row(s)", err=True)


@outbox.command("send")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
@pass_ctx
def outbox_send(obj: Context, as_json: bool) -> None:
    """Send every due row once through [relay]; exit 1 when no relay is configured or the
    relay could not be used (the rows stay pending)."""
    from outbound.mailer import default_worker_id, drain_outbox

    if not obj.settings.relay.host:
        _fail("no relay.host configured: replies stay in the outbox (claimdesk outbox list)")
    counts = drain_outbox(obj.services, default_worker_id())
    if as_json:
        click.echo(
            json.dumps(
                {
                    "sent": counts.sent,
                    "retried": counts.retried,
                    "failed": counts.failed,
                    "relay_error": counts.relay_error or None,
                }
            )
        )
    else:
        click.echo(f"sent {counts.sent}, retry later {counts.retried}, failed {counts.failed}")
    if counts.relay_error:
        _fail(f"relay: {counts.relay_error}")


# -- serve --------------------------------------------------------------------------------


@cli.command()
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Serving processes sharing the SMTP port (the least-loaded accepts next).",
)
@pass_ctx
def serve(obj: Context, workers: int) -> None:
    """Run SMTP/LMTP intake (and every other configured component) until SIGTERM/SIGINT."""
    from desk.serve import run

    raise SystemExit(run(obj.settings, workers=workers))


# -- db -----------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(obj: Context) -> None:
    from storage.engine import make_engine

    revision = upgrade(make_engine(obj.settings.database.url))
    click.echo(f"database at revision {revision}")


register_staff_commands(cli, pass_ctx)


def main() -> None:
    cli(prog_name="claimdesk")


if __name__ == "__main__":
    main()
