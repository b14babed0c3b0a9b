"""SQL that differs between SQLite and PostgreSQL, in one place (style habit 7)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, cast, func
from sqlalchemy.engine import Dialect


def hours_between(dialect: Dialect, start: Any, end: Any) -> Any:
    """A SQL expression: hours from `start` to `end` (two UTC timestamp columns)."""
    if dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 24.0
    return cast(func.extract("epoch", end - start), Float) / 3600.0
