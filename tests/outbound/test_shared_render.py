"""`Templates.render_shared()` gives what `render()` gives, for the built-in replies and for
overridden templates that use the buyer's texts in ways a placeholder could not stand for."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from outbound.ref_slots import REF_PLACEHOLDER
from outbound.templates import Templates, Values

SUBJECTS = ["Parcel missing", 'Broken <b>lamp</b> & "cable"', "", "Ürün hasarlı 'x'"]
NAMES = ["", "Anna <Smith>", "Bob & Co", "Zoë"]
# Overrides whose output a placeholder swapped afterwards would not reproduce.
OVERRIDES = [
    "{{ original_subject|upper }} [{{ ticket.ref }}]\n",
    "{% if original_subject == 'Parcel missing' %}known{% endif %} [{{ ticket.ref }}]\n",
    "{% set s = original_subject %}{{ s[:4] }} [{{ ticket.ref }}]\n",
    "{% filter title %}{{ buyer_name }}{% endfilter %} [{{ ticket.ref }}]\n",
    "{{ buyer_name|length }} {{ due }} [{{ ticket.ref }}]\n",
    "{% for c in original_subject %}{{ c }}.{% endfor %} [{{ ticket.ref }}]\n",
    "{{ ticket.subject }} {{ ticket.sender }} [{{ ticket.ref }}]\n",
    "{{ original_subject }} {{ buyer_name }} {{ due }} [{{ ticket.ref }}]\n",
]


def context(subject: str, name: str, queue: str = "not_received") -> dict[str, Any]:
    return {
        "kind": "ack",
        "ticket": Values(
            ref=REF_PLACEHOLDER,
            queue=queue,
            status="new",
            subject=subject,
            sender=f"{len(name)}@example.org",
            received_at=datetime(2026, 3, 1, tzinfo=UTC),
            due_at=datetime(2026, 3, 4, tzinfo=UTC),
        ),
        "due": f"2026-03-0{len(subject) % 9 + 1} 10:00 (UTC)",
        "desk": Values(name="Desk", address="desk@example.org", timezone="UTC"),
        "original_subject": subject,
        "buyer_name": name,
        "evidence": Values(max_files=5, max_mb="10"),
        "details": Values(),
        "requests": Values(
            any=bool(len(name) % 2),
            language=None,
            missing_fields=["order_number"] if len(name) % 2 else [],
            invalid_tracking_numbers=[],
            too_many_files=0,
            oversized_files=["<a>.jpg"] if len(subject) > 20 else [],
        ),
    }


def same_as_render(templates: Templates, kind: str) -> None:
    for queue in ("not_received", "damaged"):
        for subject in SUBJECTS:
            for name in NAMES:
                ctx = context(subject, name, queue)
                assert templates.render_shared(kind, ctx) == templates.render(kind, ctx)


@pytest.mark.parametrize("kind", ["ack", "request"])
def test_built_in_replies(kind: str) -> None:
    same_as_render(Templates(), kind)


@pytest.mark.parametrize("source", OVERRIDES)
def test_overridden_replies(tmp_path: Path, source: str) -> None:
    (tmp_path / "ack.txt.j2").write_text(source, encoding="utf-8")
    (tmp_path / "ack.html.j2").write_text(
        "<p>" + source.replace("\n", "") + "</p>\n", encoding="utf-8"
    )
    same_as_render(Templates(str(tmp_path)), "ack")


def test_a_text_part_that_escapes_is_not_shared(tmp_path: Path) -> None:
    (tmp_path / "ack.txt.j2").write_text(
        "{% autoescape true %}{{ original_subject }}{% endautoescape %}\n", encoding="utf-8"
    )
    same_as_render(Templates(str(tmp_path)), "ack")
