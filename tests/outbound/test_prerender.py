"""Replies rendered before the write turn (`intake.process.stage()`, with a placeholder for
the ticket ref) store exactly what rendering in the transaction stores; templates that do
more with the ref than print it are rendered in the transaction, as before."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from config.wiring import Services
from intake.process import Prepared, prepare, process_batch, stage
from intake.types import RawMessage
from outbound.ref_slots import REF_PLACEHOLDER
from outbound.templates import Templates
from storage.models import EVENT, MESSAGE, OUTBOX, TICKET
from tests.mail import claim

RUSSIAN = (
    "Здравствуйте! Я заказал наушники, но посылка так и не пришла. Трек-номер не обновляется "
    "уже три недели, продавец не отвечает на сообщения. Прошу вернуть деньги за заказ."
)
# Uses of the ref whose output a placeholder swapped afterwards would not reproduce.
NOT_PLAIN = [
    "{{ ticket.ref|lower }}",
    "{{ ticket.ref[3:] }}",
    "{% if ticket.ref == 'CD-000001' %}first{% endif %}",
    "{% set r = ticket.ref %}{{ r }}",
    "{% filter upper %}{{ ticket.ref }}{% endfilter %}",
    "{% macro m() %}{{ ticket.ref }}{% endmacro %}{{ m()|upper }}",
    "{% set t %}{% include '_signature.txt.j2' %}{% endset %}{{ t|upper }}",
    "{{ ticket|string }}",
    "{{ ticket.items()|list }}",
    "{{ '%-12s'|format(ticket.ref) }}",
    "{{ ticket.ref|indent(ticket.ref|length) }}",
    "{% for c in ticket.ref %}{{ c }}{% endfor %}",
    "{{ ticket.ref ~ '!' }}",
    "{{ ticket['ref'] }}",
    "{% include 'ack' ~ '.html.j2' %}",
    "{{ requests.language.translation|wordwrap(20) }}",
    "{{ requests.language|string }}",
    "{{ self.footer() }}",
]
PLAIN = [
    "Dear customer, {{ ticket.ref }} is ours now.\n",
    "{% if ticket.ref %}[{{ ticket.ref }}]{% endif %} in {{ ticket.queue }}\n",
    "{% if requests.language %}{{ requests.language.translation|indent(4, first=True) }}"
    "{% endif %} [{{ ticket.ref }}]\n",
]


def override(tmp_path: Path, ack_txt: str) -> Path:
    custom = tmp_path / "templates"
    custom.mkdir(exist_ok=True)
    (custom / "ack.txt.j2").write_text(ack_txt)
    return custom


def test_the_built_in_replies_print_the_ref_plainly() -> None:
    templates = Templates()
    for language in [None, *templates.languages()]:
        assert templates.ref_is_plain(templates.reply_templates("ack", language)), language
        assert templates.ref_is_plain(templates.reply_templates("request", language)), language


@pytest.mark.parametrize("source", NOT_PLAIN)
def test_any_other_use_of_the_ref_is_not_plain(tmp_path: Path, source: str) -> None:
    templates = Templates(str(override(tmp_path, source)))
    assert not templates.ref_is_plain(templates.reply_templates("ack", "ru"))


@pytest.mark.parametrize("source", PLAIN)
def test_printing_it_is(tmp_path: Path, source: str) -> None:
    templates = Templates(str(override(tmp_path, source)))
    assert templates.ref_is_plain(templates.reply_templates("ack", "ru"))


def test_a_translation_that_filters_the_ref_is_not_plain(tmp_path: Path) -> None:
    custom = tmp_path / "templates"
    (custom / "language").mkdir(parents=True)
    (custom / "language" / "ru.txt.j2").write_text("Обращение {{ ticket.ref|lower }}\n")
    templates = Templates(str(custom))
    assert not templates.ref_is_plain(templates.reply_templates("ack", "ru"))
    assert templates.ref_is_plain(templates.reply_templates("ack", "de"))


# -- end to end: staged and not staged leave the same rows ---------------------------------


def messages() -> list[RawMessage]:
    """New tickets (complete, missing fields, Russian, odd names and subjects), a reply
    that joins one, duplicates, automatic mail, and one sender over the rate limit."""
    first = claim(message_id="<first@example.org>")
    mails = [
        first,
        claim(order=None, tracking=None, message_id="<second@example.org>"),
        claim(body=RUSSIAN, message_id="<third@example.org>", sender="Иван <ivan@example.org>"),
        claim(
            subject=f"About [CD-000001] {REF_PLACEHOLDER}",
            sender='"{{ ticket.ref }}" <other@example.org>',
            message_id="<fourth@example.org>",
        ),
        claim(
            body=RUSSIAN,
            subject="Re: Parcel never arrived",
            in_reply_to="first@example.org",
            message_id="<reply@example.org>",
        ),
        first,
        claim(message_id=None),
        claim(message_id=None),
    ]
    mails += [claim(sender="busy@example.org", message_id=f"<busy{i}@x>") for i in range(7)]
    raws = [
        RawMessage(data=m, source="test", envelope_to=("disputes@desk.example",)) for m in mails
    ]
    raws.append(replace(raws[0], data=claim(message_id="<quiet@x>"), auto_reply=False))
    return raws


RANDOM = re.compile(r"(\.(?:ack|request)\.)[0-9a-f]{16}@")


def rows(services: Services) -> dict[str, list[dict[str, Any]]]:
    found = {}
    with services.engine.connect() as conn:
        for table in (TICKET, MESSAGE, EVENT, OUTBOX):
            found[table.name] = [
                {k: RANDOM.sub(r"\1<random>@", repr(v)) for k, v in row._mapping.items()}
                for row in conn.execute(select(table).order_by(table.c.id))
            ]
    return found


def store_all(services: Services, *, staged: bool) -> list[Any]:
    """Each message in its own batch of one, the clock moved a minute between them."""
    results = []
    for raw in messages():
        now = services.clock.now()
        item = Prepared(raw, services.analyser(raw), now)  # type: ignore[misc]
        if staged:
            item = stage(item, services)
        results += process_batch([item], services)
        services.clock.advance(timedelta(minutes=1))  # type: ignore[attr-defined]
    return results


def two_desks(
    make_services: Callable[..., Services], tmp_path: Path, **tables: Any
) -> tuple[Services, Services]:
    return (
        make_services(f"sqlite:///{tmp_path / 'staged.db'}", **tables),
        make_services(f"sqlite:///{tmp_path / 'plain.db'}", **tables),
    )


def test_staged_messages_are_stored_as_unstaged_ones(
    make_services: Callable[..., Services], tmp_path: Path
) -> None:
    staged, plain = two_desks(make_services, tmp_path)
    got = store_all(staged, staged=True)
    clock = staged.clock
    clock.advance(-timedelta(minutes=len(got)))  # type: ignore[attr-defined]
    assert got == store_all(plain, staged=False)
    assert rows(staged) == rows(plain)
    outbox = rows(staged)["outbox"]
    assert {r["kind"] for r in outbox} == {"'ack'", "'request'"}
    # Each names its own ticket (the placeholder is left only where a buyer wrote it).
    assert all(f"[CD-{int(r['ticket_id']):06d}]" in r["body_text"] for r in outbox)


@pytest.mark.parametrize("source", [*PLAIN, NOT_PLAIN[0], NOT_PLAIN[2], NOT_PLAIN[9]])
def test_overridden_templates_give_the_same_rows(
    make_services: Callable[..., Services], tmp_path: Path, source: str
) -> None:
    custom = override(tmp_path, source)
    staged, plain = two_desks(make_services, tmp_path, outbound={"templates_dir": str(custom)})
    store_all(staged, staged=True)
    staged.clock.advance(-timedelta(minutes=len(messages())))  # type: ignore[attr-defined]
    store_all(plain, staged=False)
    assert rows(staged) == rows(plain)


def test_stage_prerenders_the_ack_only_when_the_ref_is_plain(
    make_services: Callable[..., Services], tmp_path: Path
) -> None:
    raw = messages()[0]
    builtin = make_services(f"sqlite:///{tmp_path / 'a.db'}")
    [item] = prepare([raw], builtin)
    assert item.staged is not None and item.staged.reply.ack is not None
    assert REF_PLACEHOLDER in item.staged.reply.ack.mail.text
    custom = override(tmp_path, NOT_PLAIN[0])
    lowered = make_services(
        f"sqlite:///{tmp_path / 'b.db'}", outbound={"templates_dir": str(custom)}
    )
    [item] = prepare([raw], lowered)
    assert item.staged is not None and item.staged.reply.ack is None
    [result] = process_batch([item], lowered)
    [row] = rows(lowered)["outbox"]
    assert result.ticket == "CD-000001" and row["body_text"] == repr("cd-000001")


def test_rows_staged_for_another_time_are_not_used(services: Services) -> None:
    raw = messages()[0]
    now = services.clock.now()
    early = stage(Prepared(raw, services.analyser(raw), now - timedelta(hours=1)), services)  # type: ignore[misc]
    [result] = process_batch([replace(early, now=now)], services)
    with services.engine.connect() as conn:
        ticket = conn.execute(select(TICKET)).one()
        message = conn.execute(select(MESSAGE.c.received_at)).one()
    assert result.ticket == "CD-000001"
    assert ticket.received_at == now and message.received_at == now


def test_nothing_to_stage_for_a_failure_or_a_bounce(services: Services) -> None:
    broken = RawMessage(data=b"no headers at all", source="test")
    item = stage(Prepared(broken, services.analyser(broken), services.clock.now()), services)  # type: ignore[misc]
    assert item.staged is None
