"""Routing rules: each one small class with a `name`, a `description` and `decide()`.

A rule looks at a `RoutingInput` and either returns a `RouteDecision` or None (not mine). The
router asks the rules in the order of its table; the first decision wins. Nothing here does I/O.

Keyword phrases (`queues.X.keywords`) match case-, accent- and width-insensitively: both the
phrase and the text are folded the same way (`fold`). A phrase in a spaced script (Latin,
Cyrillic, ...) matches whole words only ("scam" never matches "scampi"); spaces and hyphens
inside it match any run of spaces or hyphens; a `*` stands for any letters within one word
("refund*" matches "refunds", "refunded"). A phrase holding Chinese, Japanese, Korean or Thai
characters matches anywhere, since those scripts do not separate words with spaces.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

from intake.types import RouteDecision

_COMBINING = re.compile(r"[\u0300-\u036f]")
# Letters with no decomposition that buyers still type without their mark (Turkish dotless i,
# Polish ł), and typographic apostrophes that mail clients put in place of "'".
_UNDECOMPOSED = (("ı", "i"), ("ł", "l"), ("ø", "o"), ("đ", "d"), ("ħ", "h"), ("’", "'"), ("ʼ", "'"))
_UNSPACED_SCRIPT = re.compile(
    r"[\u0e00-\u0eff\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    r"\uac00-\ud7af\uf900-\ufaff]"
)
_SEPARATOR = re.compile(r"[\s\-]+")
_SEPARATOR_SOURCE = r"[\s\-]+"
_WILDCARD_SOURCE = r"\w*"
_WORD_START = r"(?<!\w)"
_WORD_END = r"(?!\w)"

_Atom = str  # one literal character, or _SEPARATOR_SOURCE, or _WILDCARD_SOURCE
_PATTERN_ATOMS = frozenset({_SEPARATOR_SOURCE, _WILDCARD_SOURCE})


def fold(text: str) -> str:
    """`text` case-folded, compatibility-decomposed (full-width letters become ASCII) and
    stripped of accents, so "Не пришёл" and "не пришел" compare equal, as do "Devolución"
    and "devolucion", and "HESABIM ÇALINDI" and "hesabım çalındı"."""
    if text.isascii():
        return text.lower()
    folded = _COMBINING.sub("", unicodedata.normalize("NFKD", text.casefold()))
    for letter, plain in _UNDECOMPOSED:
        if letter in folded:
            folded = folded.replace(letter, plain)
    return folded


@dataclass(frozen=True)
class _Phrase:
    """One keyword phrase, folded and cut into atoms."""

    text: str
    atoms: tuple[_Atom, ...]
    unspaced: bool

    @classmethod
    def parse(cls, phrase: str) -> _Phrase:
        """Raises ValueError for a phrase without letters or starting with `*`."""
        folded = fold(phrase).strip()
        if not re.search(r"[^\W\d_]", folded):
            raise ValueError(f"keyword {phrase!r} has no letters")
        if folded.startswith("*"):
            raise ValueError(f"keyword {phrase!r} starts with *")
        atoms: list[_Atom] = []
        for index, word in enumerate(w for w in _SEPARATOR.split(folded) if w):
            if index:
                atoms.append(_SEPARATOR_SOURCE)
            atoms.extend(_WILDCARD_SOURCE if char == "*" else char for char in word)
        return cls(phrase, tuple(atoms), bool(_UNSPACED_SCRIPT.search(folded)))

    def source(self) -> str:
        """The phrase alone, without word-boundary checks (to name the phrase of a match)."""
        return "".join(
            a if a in (_SEPARATOR_SOURCE, _WILDCARD_SOURCE) else re.escape(a) for a in self.atoms
        )


def _trie_source(phrases: Sequence[_Phrase]) -> str:
    """One expression matching any of `phrases`, shaped as a trie of their atoms so that the
    engine tries one branch per distinct next character, not one per phrase (a flat
    alternation of 400 phrases is ~50 times slower)."""
    trie: dict[_Atom, Any] = {}
    for phrase in phrases:
        node = trie
        for atom in phrase.atoms:
            node = node.setdefault(atom, {})
        node[""] = {}

    def emit(node: dict[_Atom, Any]) -> str:
        branches = [
            (atom if atom in (_SEPARATOR_SOURCE, _WILDCARD_SOURCE) else re.escape(atom))
            + emit(node[atom])
            for atom in sorted(a for a in node if a)
        ]
        if "" in node:
            branches.append("")  # tried after every longer continuation: the longest wins
        if len(branches) == 1:
            return branches[0]
        return "(?:" + "|".join(branches) + ")"

    return emit(trie)


@dataclass(frozen=True)
class RoutingInput:
    """What the rules may look at: lower-cased bare recipient addresses, the mailbox's queue
    hint, the subject and the buyer's own text (never quoted text: our own auto-replies,
    quoted back, are full of keywords)."""

    recipients: tuple[str, ...]
    queue_hint: str | None
    subject: str
    own_text: str

    @cached_property
    def folded_subject(self) -> str:
        return fold(self.subject)

    @cached_property
    def folded(self) -> str:
        """Subject and own text, folded, on separate lines (read by content rules only)."""
        return f"{self.folded_subject}\n{fold(self.own_text)}"

    @cached_property
    def has_unspaced_script(self) -> bool:
        """Whether the folded text holds Chinese, Japanese, Korean or Thai characters."""
        folded = self.folded
        return not folded.isascii() and _UNSPACED_SCRIPT.search(folded) is not None


class Rule(Protocol):
    """A routing rule: a decision, or None to let the next rule in the table decide."""

    name: str
    description: str

    def decide(self, message: RoutingInput) -> RouteDecision | None: ...


class RecipientRule:
    """Mail addressed to a queue's own address goes to that queue."""

    name = "recipient"
    description = (
        "a desk address among the recipients decides; when several queues are addressed the "
        "one earliest in routing.order wins (recipient_precedence); the fallback queue's "
        "address decides nothing"
    )

    def __init__(self, address_queues: Mapping[str, str], precedence: Sequence[str]) -> None:
        """`address_queues`: lower-cased address -> queue (fallback addresses left out);
        `precedence`: every queue, the earliest first."""
        self._address_queues = dict(address_queues)
        self._rank = {queue: rank for rank, queue in enumerate(precedence)}

    def decide(self, message: RoutingInput) -> RouteDecision | None:
        addressed: dict[str, str] = {}
        for address in message.recipients:
            queue = self._address_queues.get(address)
            if queue is not None:
                addressed.setdefault(queue, address)
        if not addressed:
            return None
        queue = min(addressed, key=lambda q: self._rank.get(q, len(self._rank)))
        if len(addressed) == 1:
            return RouteDecision(queue, self.name, f"addressed to {addressed[queue]}")
        others = ", ".join(a for q, a in addressed.items() if q != queue)
        return RouteDecision(
            queue,
            "recipient_precedence",
            f"addressed to {addressed[queue]}, which takes precedence over {others}",
        )


class MailboxHintRule:
    """Mail fetched from an IMAP mailbox configured with a queue goes to that queue."""

    name = "mailbox_hint"
    description = "the fetching mailbox's queue decides (a hint of the fallback queue does not)"

    def __init__(self, queues: Sequence[str]) -> None:
        """`queues`: the queues a hint may name (the fallback queue left out)."""
        self._queues = frozenset(queues)

    def decide(self, message: RoutingInput) -> RouteDecision | None:
        hint = message.queue_hint
        if not hint or hint not in self._queues:
            return None
        return RouteDecision(hint, self.name, f"fetched from a mailbox of queue {hint}")


class KeywordRule:
    """Mail whose subject or own text holds one of a queue's keyword phrases goes there."""

    description = "a keyword phrase of the queue in the subject or the buyer's own text"

    def __init__(self, queue: str, phrases: Sequence[str]) -> None:
        """All phrases compile into one expression; raises ValueError for a phrase without
        letters or starting with `*`."""
        self.queue = queue
        self.name = f"keywords:{queue}"
        parsed: dict[tuple[_Atom, ...], _Phrase] = {}
        for text in phrases:
            phrase = _Phrase.parse(text)
            parsed.setdefault(phrase.atoms, phrase)  # the first spelling of a fold names it
        # Longest first: a match is named after the most specific phrase it satisfies.
        self._phrases = sorted(parsed.values(), key=lambda p: (-len(p.atoms), p.text))
        # The phrases that can match a text starting with a given character, in the order
        # above: those starting with it, and those starting with `*` ("-*x").
        whole = [(p.text, re.compile(p.source())) for p in self._phrases]
        firsts = [p.atoms[0] for p in self._phrases]
        self._any_first = [w for w, a in zip(whole, firsts, strict=True) if a in _PATTERN_ATOMS]
        self._by_first = {
            c: [w for w, a in zip(whole, firsts, strict=True) if a == c or a in _PATTERN_ATOMS]
            for c in set(firsts) - _PATTERN_ATOMS
        }
        spaced = [p for p in self._phrases if not p.unspaced]
        unspaced = [p for p in self._phrases if p.unspaced]
        self._words = re.compile(_WORD_START + _trie_source(spaced) + _WORD_END) if spaced else None
        # Substring phrases are searched apart, and only in text that has such script: the
        # word expression then starts with a cheap look-behind that fails inside words.
        self._unspaced = re.compile(_trie_source(unspaced)) if unspaced else None

    def _phrase_of(self, matched: str) -> str:
        for text, whole in self._by_first.get(matched[:1], self._any_first):
            if whole.fullmatch(matched):
                return text
        raise AssertionError(f"no phrase of {self.name} matches {matched!r}")  # pragma: no cover

    def decide(self, message: RoutingInput) -> RouteDecision | None:
        match = self._words.search(message.folded) if self._words else None
        if self._unspaced and message.has_unspaced_script:
            other = self._unspaced.search(message.folded)
            if other and (match is None or other.start() < match.start()):
                match = other
        if match is None:
            return None
        phrase = self._phrase_of(match.group())
        where = "subject" if match.start() < len(message.folded_subject) else "text"
        return RouteDecision(self.queue, self.name, f'keyword "{phrase}" in the {where}')


class FallbackRule:
    """Whatever no other rule claimed goes to the fallback queue."""

    name = "fallback"
    description = "no other rule decided"

    def __init__(self, queue: str) -> None:
        self.queue = queue

    def decide(self, message: RoutingInput) -> RouteDecision:
        return RouteDecision(self.queue, self.name, "no rule matched")
