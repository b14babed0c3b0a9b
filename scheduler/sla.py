"""The 30-day reply rule as pure functions of times (no I/O, no "now" of its own).

Deadlines are counted in calendar days on the desk's wall clock: a claim received at 10:00
desk time is due at 10:00 desk time N days later, also when a DST change lies in between
(aware `datetime + timedelta` in Python is wall-clock arithmetic within one tzinfo).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

SlaState = Literal["on_track", "due_soon", "breached", "met", "met_late"]


def due_at(clock_started_at: datetime, days: int, tz: ZoneInfo) -> datetime:
    """The deadline (UTC) `days` calendar days after `clock_started_at` in the desk's zone."""
    local = clock_started_at.astimezone(tz)
    wall = (local.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=tz)
    return wall.astimezone(UTC)


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
