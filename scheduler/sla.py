"""The 30-day reply rule as pure functions of times (no I/O, no "now" of its own).

- The clock starts at receipt (`clock_started_at`), or again when a buyer writes on an
  answered or closed ticket.
- The first staff answer (not an auto-reply) stops it: `met` if on or before the deadline,
  `met_late` after. Buyer follow-ups do not reset it.
- Before the deadline the desk may extend it once or more, each time to a later date and
  with a reason (the buyer is told); after the deadline it may not: the breach stands.

Deadlines are counted in calendar days on the desk's wall clock: a claim received at 10:00
desk time is due at 10:00 desk time N days later, also when a DST change lies in between
(naive wall-clock arithmetic, then localised; a time that does not exist on the new day
moves forward past the gap, as zoneinfo resolves fold=0).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

SlaState = Literal["on_track", "due_soon", "breached", "met", "met_late"]
RUNNING_STATUSES = ("new", "waiting", "open")
WARNING_STATES: tuple[SlaState, ...] = ("due_soon", "breached")


_UTC_ZONES = frozenset({"UTC", "Etc/UTC"})


def due_at(clock_started_at: datetime, days: int, tz: ZoneInfo) -> datetime:
    """The deadline (UTC) `days` calendar days after `clock_started_at` in the desk's zone."""
    if tz is UTC or getattr(tz, "key", None) in _UTC_ZONES:  # no DST: days are 24 hours
        return clock_started_at.astimezone(UTC) + timedelta(days=days)
    local = clock_started_at.astimezone(tz)
    wall = (local.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=tz)
    return wall.astimezone(UTC)


def end_of_day(day: date, tz: ZoneInfo) -> datetime:
    """The last second of `day` in the desk's zone, in UTC: what "until 2026-04-30" means."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=tz).astimezone(UTC)


def sla_state(
    *,
    due: datetime,
    answered_at: datetime | None,
    now: datetime,
    warn_before_days: int,
) -> SlaState:
    """Where a ticket's clock stands at `now`."""
    if answered_at is not None:
        return "met" if answered_at <= due else "met_late"
    if now > due:
        return "breached"
    if now >= due - timedelta(days=warn_before_days):
        return "due_soon"
    return "on_track"


@dataclass(frozen=True)
class ExtensionRefused:
    reason: str


def check_extension(
    *, now: datetime, due: datetime, new_due: datetime, reason: str, answered: bool
) -> ExtensionRefused | None:
    """None when the extension is allowed; else why not (the rule, in words for the CLI)."""
    if answered:
        return ExtensionRefused("the ticket was already answered: its clock has stopped")
    if now > due:
        return ExtensionRefused(
            f"the deadline {due.isoformat()} has passed: an extension must be given before it"
        )
    if new_due <= due:
        return ExtensionRefused(f"the new date must be later than the current {due.isoformat()}")
    if not reason.strip():
        return ExtensionRefused("a reason is required (the buyer is told why)")
    return None


def first_answer(
    *, answered_at: datetime | None, at: datetime, due: datetime
) -> tuple[datetime, SlaState] | None:
    """A staff answer at `at`: the new (answered_at, state) if it stops the clock, else None
    (the clock already stopped at an earlier answer)."""
    if answered_at is not None:
        return None
    return at, ("met" if at <= due else "met_late")
