"""The checks a claim goes through, all collected before any decision (style habit 4).

Language reads only the buyer's own text; fields read everything the message carries
(subject, every text part, HTML hrefs, quoted and forwarded text), except what appears only
inside a quote of the desk's own earlier reply: a buyer who answers our "please send your
order number" mail has not given an order number because our mail quoted an example.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from config.settings import Settings
from intake.fields import FieldExtractor
from intake.language import LanguageChecker
from intake.quotes import split_reply
from intake.types import (
    Attachment,
    CheckReport,
    ClaimFields,
    EvidenceReport,
    ParsedMessage,
    Quote,
)

_DESK_REF = re.compile(r"\[\s*CD-\d{6,}\s*\]", re.IGNORECASE)


class Checker:
    """Runs every check on a parsed message; built once per process (profiles, regexes)."""

    def __init__(self, settings: Settings) -> None:
        self._checks = settings.checks
        self._language = LanguageChecker(settings.checks, settings.desk.accepted_languages)
        self._fields = FieldExtractor(settings.checks)
        addresses = sorted(settings.desk_addresses())
        domains = sorted({a.rpartition("@")[2] for a in addresses})
        self._desk_marks = tuple(addresses) + tuple(f"@{d}" for d in domains)

    def run(self, parsed: ParsedMessage) -> CheckReport:
        return CheckReport(
            language=self._language.check(parsed.own_text),
            fields=self.fields(parsed),
            evidence=evidence_report(
                parsed.attachments, self._checks.max_files, self._checks.max_file_bytes
            ),
        )

    def fields(self, parsed: ParsedMessage) -> ClaimFields:
        if not any(self.is_desk_quote(q) for q in parsed.quotes):
            return self._fields.extract(parsed.field_texts, parsed.links)
        return self._fields.extract(self._without_desk_quotes(parsed.field_texts), parsed.links)

    def is_desk_quote(self, quote: Quote) -> bool:
        """A quote of our own mail: attributed to a desk address, or carrying a ticket ref."""
        attribution = quote.attribution.lower()
        if any(mark in attribution for mark in self._desk_marks):
            return True
        return bool(_DESK_REF.search(quote.text))

    def _without_desk_quotes(self, texts: Iterable[str]) -> list[str]:
        kept: list[str] = []
        for text in texts:
            own, quotes = split_reply(text)
            kept.append(own)
            kept.extend(q.text for q in quotes if not self.is_desk_quote(q))
        return kept


def evidence_report(
    attachments: Sequence[Attachment], max_files: int, max_file_bytes: int
) -> EvidenceReport:
    """The evidence rule as a report: counted and named, never enforced by dropping data."""
    return EvidenceReport(
        files=len(attachments),
        photos=sum(1 for a in attachments if a.is_image),
        too_many_files=len(attachments) > max_files,
        oversized=tuple(a.filename for a in attachments if a.size > max_file_bytes),
    )


def missing_fields(required: Iterable[str], fields: ClaimFields, photos: int) -> tuple[str, ...]:
    """The required fields not provided, sorted (the contract's `missing_fields`)."""
    present = {
        "order_number": bool(fields.order_numbers),
        "tracking_number": bool(fields.tracking_numbers),
        "product_url": bool(fields.product_urls),
        "store_url": bool(fields.store_urls),
        "photo": photos > 0,
    }
    return tuple(sorted(name for name in required if not present[name]))
