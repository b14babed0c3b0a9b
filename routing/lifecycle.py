"""How a buyer's message moves a ticket's status (pure).

    new      -> no staff action yet, nothing missing
    waiting  -> we asked the buyer for English text or missing fields
    open     -> the buyer answered our request, or staff are working on it
    answered -> a staff answer was sent (the SLA clock stopped)
    closed   -> done

A buyer writing again on an answered or closed ticket reopens it with a fresh 30-day clock:
it is a new claim as far as the reply rule is concerned.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = ("new", "waiting", "open", "answered", "closed")


@dataclass(frozen=True)
class Transition:
    status: str
    reopened: bool = False
    restart_clock: bool = False


def on_buyer_message(current: str | None, needs_info: bool) -> Transition:
    """The status after a buyer's message; `current` is None for a new ticket."""
    if current is None:
        return Transition("waiting" if needs_info else "new", restart_clock=True)
    if current in ("answered", "closed"):
        return Transition("waiting" if needs_info else "open", reopened=True, restart_clock=True)
    if current == "waiting":
        return Transition("waiting" if needs_info else "open")
    return Transition(current)
