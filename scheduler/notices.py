"""Mail from the scheduler to the desk's own people: SLA warnings and the SLA report.

These are not replies to a buyer, so they are composed here, addressed to the queue's
`staff_address` or `reports.recipients`, and put in the outbox in the job's transaction
(sent by the mailer like every other mail; nothing sends from a job).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from config.settings import Settings
from outbound.compose import ReplyTarget, compose, new_message_id
from storage import outbox_repo
from storage.models import ticket_ref

TITLES = {
    "due_soon": "due soon",
    "breached": "BREACHED: the 30-day reply deadline has passed",
}


class Notices:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.domain = settings.desk.from_address.rpartition("@")[2] or "claimdesk.invalid"

    def _enqueue(
        self,
        conn: Connection,
        kind: str,
        to: str,
        subject: str,
        text: str,
        now: datetime,
        html: str | None = None,
    ) -> None:
        composed = compose(
            target=ReplyTarget(address=to, subject=subject),
            subject=subject,
            text=text,
            html=html,
            message_id=new_message_id("desk", kind, self.domain),
            sender=self.settings.desk.from_address,
            sender_name=self.settings.outbound.from_name,
            now=now,
            auto_submitted="auto-generated",
            extra_headers=(("X-Claimdesk-Kind", kind),),
        )
        outbox_repo.insert_outbox(
            conn,
            {
                "ticket_id": None,
                "kind": kind,
                "status": "pending",
                "recipient": composed.recipient,
                "message_id": composed.message_id,
                "in_reply_to": None,
                "subject": composed.subject,
                "body_text": composed.text,
                "body_html": composed.html,
                "raw": composed.raw,
                "created_at": now,
                "next_attempt_at": now,
                "attempts": 0,
            },
        )

    def sla_transition(
        self, conn: Connection, queue: str, kind: str, rows: Sequence[Any], now: datetime
    ) -> None:
        """One mail to the queue's staff listing the tickets that just crossed into `kind`
        (the sweep moves each ticket across once, so each is named once)."""
        staff = self.settings.queues[queue].staff_address
        if not rows or not staff:
            return
        tz = self.settings.desk.tz
        lines = [
            f"  {ticket_ref(r.id)}  due {r.due_at.astimezone(tz):%Y-%m-%d %H:%M %Z}  {r.sender}"
            for r in sorted(rows, key=lambda r: r.due_at)
        ]
        subject = f"[claimdesk] {queue}: {len(rows)} ticket(s) {TITLES[kind].split(':')[0]}"
        text = (
            f"Queue {queue}: {len(rows)} ticket(s) {TITLES[kind]}.\n\n"
            + "\n".join(lines)
            + "\n\nAnswer them (claimdesk reply REF --body-file F) or, before the deadline, "
            "extend with a new realistic date (claimdesk extend REF --until DATE --reason R).\n"
        )
        self._enqueue(conn, f"sla_{kind}", staff, subject, text, now)

    def report(self, conn: Connection, html: str, stem: str, now: datetime) -> None:
        """The HTML report to each of reports.recipients."""
        for recipient in self.settings.reports.recipients:
            text = (
                f"The claims desk SLA report {stem} is attached as HTML; the same report is "
                f"in {self.settings.reports.out_dir}/{stem}.html, .csv and .json.\n"
            )
            self._enqueue(
                conn, "sla_report", recipient, f"[claimdesk] SLA report {stem}", text, now, html
            )
