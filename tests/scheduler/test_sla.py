"""The pure SLA rules: calendar days on the desk's wall clock, states, extensions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.sla import check_extension, due_at, end_of_day, first_answer, sla_state

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("start", "tz", "days", "expected"),
    [
        # Spring forward inside the 30 days: same wall time, one hour less in UTC.
        (datetime(2026, 3, 10, 9, 0, tzinfo=UTC), BERLIN, 30, datetime(2026, 4, 9, 8, 0, tzinfo=UTC)),
        # Fall back inside the 30 days: same wall time, one hour more in UTC.
        (datetime(2026, 10, 10, 9, 0, tzinfo=UTC), BERLIN, 30, datetime(2026, 11, 9, 10, 0, tzinfo=UTC)),
        (datetime(2026, 3, 1, 12, 0, tzinfo=UTC), NEW_YORK, 30, datetime(2026, 3, 31, 11, 0, tzinfo=UTC)),
        # Month ends: 31 Jan + 30 days is 2 March (2 Feb..); leap year 2028: 1 March.
        (datetime(2026, 1, 31, 12, 0, tzinfo=UTC), UTC, 30, datetime(2026, 3, 2, 12, 0, tzinfo=UTC)),
        (datetime(2028, 1, 31, 12, 0, tzinfo=UTC), UTC, 30, datetime(2028, 3, 1, 12, 0, tzinfo=UTC)),
        (datetime(2026, 12, 15, 23, 30, tzinfo=UTC), UTC, 30, datetime(2027, 1, 14, 23, 30, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_due_at_counts_calendar_days_on_the_wall_clock(start, tz, days, expected) -> None:
    assert due_at(start, days, tz) == expected
    assert due_at(start, days, tz).astimezone(tz).time() == start.astimezone(tz).time()


def test_a_wall_time_that_does_not_exist_moves_past_the_gap() -> None:
    # 02:30 local on 29 March 2026 does not exist in Berlin (clocks jump 02:00 -> 03:00).
    start = datetime(2026, 2, 27, 2, 30, tzinfo=BERLIN).astimezone(UTC)
    due = due_at(start, 30, BERLIN)
    assert due.astimezone(BERLIN).date() == date(2026, 3, 29)


def test_end_of_day_is_in_desk_time() -> None:
    assert end_of_day(date(2026, 7, 1), BERLIN) == datetime(2026, 7, 1, 21, 59, 59, tzinfo=UTC)


def test_states_at_their_boundaries() -> None:
    due = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)

    def state(now: datetime, answered: datetime | None = None) -> str:
        return sla_state(due=due, answered_at=answered, now=now, warn_before_days=5)

    assert state(due - timedelta(days=5, seconds=1)) == "on_track"
    assert state(due - timedelta(days=5)) == "due_soon"
    assert state(due) == "due_soon"
    assert state(due + timedelta(seconds=1)) == "breached"
    assert state(due + timedelta(days=9), answered=due) == "met"
    assert state(due + timedelta(days=9), answered=due + timedelta(seconds=1)) == "met_late"


def test_extension_rules() -> None:
    due = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    later = due + timedelta(days=10)
    ok = {"due": due, "new_due": later, "reason": "waiting for the carrier", "answered": False}
    assert check_extension(now=due - timedelta(days=1), **ok) is None
    assert check_extension(now=due, **ok) is None
    assert "passed" in check_extension(now=due + timedelta(seconds=1), **ok).reason
    assert "later" in check_extension(now=due, **{**ok, "new_due": due}).reason
    assert "reason" in check_extension(now=due, **{**ok, "reason": "  "}).reason
    assert "answered" in check_extension(now=due, **{**ok, "answered": True}).reason


def test_only_the_first_answer_stops_the_clock() -> None:
    due = datetime(2026, 5, 1, tzinfo=UTC)
    assert first_answer(answered_at=None, at=due, due=due) == (due, "met")
    late = due + timedelta(hours=1)
    assert first_answer(answered_at=None, at=late, due=due) == (late, "met_late")
    assert first_answer(answered_at=due, at=late, due=due) is None
