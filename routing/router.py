"""The router: which queue a message goes to, and the name of the rule that said so.

The rule table is built once from the configuration, in this order:

1. `recipient`: a desk address among the envelope recipients (or, without an envelope, the
   To and Cc headers); several desk queues addressed: the earliest in `routing.order` wins
   (`recipient_precedence`). The fallback queue's address decides nothing: mail to the
   general address is routed by what it says.
2. `mailbox_hint`: the queue of the IMAP mailbox the message was fetched from.
3. `keywords:QUEUE`: one rule per non-fallback queue with keywords, in `routing.order`
   (queues not named there follow in configuration order); the first match wins.
4. `fallback`: the fallback queue.

Pure: no I/O, no clock; `route` is safe to call from several threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import parseaddr

from config.settings import Settings
from intake.types import ParsedMessage, RouteDecision
from routing.rules import (
    FallbackRule,
    KeywordRule,
    MailboxHintRule,
    RecipientRule,
    RoutingInput,
    Rule,
)


def _bare_address(value: str) -> str:
    """`value` as a lower-cased bare address ("Desk <A@B>" -> "a@b")."""
    value = value.strip()
    if "<" in value or " " in value:
        value = parseaddr(value)[1]
    return value.strip("<>").lower()


def build_rules(settings: Settings) -> tuple[Rule, ...]:
    """The ordered rule table for `settings`; raises ValueError for a keyword without letters
    (the message names the key)."""
    fallback = settings.fallback_queue()
    precedence = list(dict.fromkeys([*settings.routing.order, *settings.queues]))
    specific = [q for q in precedence if q != fallback]
    address_queues = {
        address: queue for queue in specific for address in settings.queues[queue].addresses
    }
    rules: list[Rule] = [RecipientRule(address_queues, precedence), MailboxHintRule(specific)]
    for queue in specific:
        keywords = settings.queues[queue].keywords
        if keywords:
            try:
                rules.append(KeywordRule(queue, keywords))
            except ValueError as exc:
                raise ValueError(f"queues.{queue}.keywords: {exc}") from None
    rules.append(FallbackRule(fallback))
    return tuple(rules)


class Router:
    """Decides the queue of a message from the rule table built from `settings`."""

    def __init__(self, settings: Settings) -> None:
        """Builds and compiles the rule table; raises ValueError for an unusable keyword."""
        self.rules = build_rules(settings)

    def route(
        self,
        envelope_to: Sequence[str],
        parsed: ParsedMessage,
        queue_hint: str | None = None,
    ) -> RouteDecision:
        """The decision of the first rule that decides (the fallback rule always does).

        `envelope_to`: SMTP RCPT TO addresses (or the fetching mailbox's address); when empty,
        the message's To and Cc headers stand in. A `queue_hint` naming no configured queue is
        ignored.
        """
        recipients = envelope_to or (*parsed.to, *parsed.cc)
        message = RoutingInput(
            recipients=tuple(_bare_address(r) for r in recipients),
            queue_hint=queue_hint,
            subject=parsed.subject,
            own_text=parsed.own_text,
        )
        for rule in self.rules:
            decision = rule.decide(message)
            if decision is not None:
                return decision
        raise AssertionError("the rule table ends with the fallback rule")  # pragma: no cover
