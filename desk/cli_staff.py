"""Staff commands of the CLI: reply, extend, close, reopen, assign, report sla."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import click

from desk.actions import ActionRefused, Done, assign, close, extend, reopen, reply
from scheduler.jobs import write_report
from scheduler.sla import end_of_day


def _done(result: Done) -> None:
    click.echo(f"{result.ref}: {result.summary}")


def _refused(exc: ActionRefused) -> None:
    click.echo(f"claimdesk: {exc}", err=True)
    raise SystemExit(1)


def _date(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date of the form YYYY-MM-DD") from None


def register(cli: click.Group, pass_ctx: click.decorators.FC) -> None:  # type: ignore[name-defined]
    """Add the staff commands to the `claimdesk` group."""

    @cli.command("reply")
    @click.argument("ref")
    @click.option("--body-file", type=click.File("r", encoding="utf-8"), required=True,
                  help="The answer's text ('-' for stdin).")  # fmt: skip
    @pass_ctx
    def reply_command(obj, ref: str, body_file) -> None:  # type: ignore[no-untyped-def]
        """Send a staff answer to the buyer; the first answer stops the SLA clock."""
        try:
            _done(reply(obj.services, ref, body_file.read()))
        except ActionRefused as exc:
            _refused(exc)

    @cli.command("extend")
    @click.argument("ref")
    @click.option("--until", "until", required=True, callback=_date, help="YYYY-MM-DD (desk time).")
    @click.option("--reason", required=True, help="Why: the buyer reads this.")
    @pass_ctx
    def extend_command(obj, ref: str, until: date, reason: str) -> None:  # type: ignore[no-untyped-def]
        """Set a new, later deadline (before the current one passes); the buyer is told."""
        try:
            _done(extend(obj.services, ref, until, reason))
        except ActionRefused as exc:
            _refused(exc)

    for name, action, doc in (
        ("close", close, "Close a ticket."),
        ("reopen", reopen, "Reopen a ticket (the SLA clock is not restarted)."),
    ):

        @cli.command(name, help=doc)
        @click.argument("ref")
        @pass_ctx
        def simple(obj, ref: str, action=action) -> None:  # type: ignore[no-untyped-def]
            try:
                _done(action(obj.services, ref))
            except ActionRefused as exc:
                _refused(exc)

    @cli.command("assign")
    @click.argument("ref")
    @click.option("--queue", required=True)
    @pass_ctx
    def assign_command(obj, ref: str, queue: str) -> None:  # type: ignore[no-untyped-def]
        """Move a ticket to another queue."""
        if queue not in obj.settings.queues:
            raise click.UsageError(
                f"unknown queue {queue!r}; known: {', '.join(obj.settings.queues)}"
            )
        try:
            _done(assign(obj.services, ref, queue))
        except ActionRefused as exc:
            _refused(exc)

    @cli.group("report")
    def report() -> None:
        """Reports."""

    @report.command("sla")
    @click.option("--format", "fmt", type=click.Choice(["html", "csv", "json"]), default="html",
                  show_default=True)  # fmt: skip
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Write to this file instead of stdout.")  # fmt: skip
    @click.option("--as-of", "as_of", callback=_date, default=None,
                  help="Figures as they stood at the end of this day (desk time).")  # fmt: skip
    @pass_ctx
    def report_sla(obj, fmt: str, out: Path | None, as_of: date | None) -> None:  # type: ignore[no-untyped-def]
        """The SLA report: per queue figures and the breached and at-risk tickets."""
        services = obj.services
        when: datetime = end_of_day(as_of, obj.settings.desk.tz) if as_of else services.clock.now()
        text = write_report(services, when, fmt)
        if out is None:
            click.echo(text, nl=False)
        else:
            out.write_text(text, encoding="utf-8")
            click.echo(f"report written to {out}", err=True)
