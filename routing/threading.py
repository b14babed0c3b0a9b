"""Which earlier conversation a message belongs to: the pure half of threading.

Two signals, as mail clients give them: our ref in the subject (`[CD-000123]`, kept by every
"Re:"), and In-Reply-To / References naming a message we stored or sent. Storage looks the
keys up; this module only reads them off the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from intake.types import ParsedMessage

# Bracketed, as we write it; tolerate "CD 000123" / "cd-000123" that some clients produce.
_REF = re.compile(r"\[\s*CD[-\s]?(\d{6,})\s*\]", re.IGNORECASE)


@dataclass(frozen=True)
class ThreadKeys:
    refs: tuple[str, ...]
    message_ids: tuple[str, ...]


def refs_in_subject(subject: str) -> tuple[str, ...]:
    """Ticket refs in a subject, normalised to `CD-000123`, in order, without repeats."""
    seen: dict[str, None] = {}
    for match in _REF.finditer(subject):
        seen[f"CD-{match.group(1)}"] = None
    return tuple(seen)


def thread_keys(parsed: ParsedMessage) -> ThreadKeys:
    """The keys to look up, oldest reference first, In-Reply-To last (it is the closest)."""
    ids: dict[str, None] = {}
    for message_id in (*parsed.references, *parsed.in_reply_to):
        if message_id and message_id != parsed.message_id:
            ids.pop(message_id, None)
            ids[message_id] = None
    return ThreadKeys(refs=refs_in_subject(parsed.subject), message_ids=tuple(ids))
