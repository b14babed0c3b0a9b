"""Nothing is ever lost: every message, however broken, ends stored or quarantined with its
exact bytes, and no byte string makes process() raise."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from config.wiring import Services
from intake.process import process
from intake.types import Quarantined, RawMessage
from storage.models import MESSAGE, TICKET
from tests.paths import SHARED_SAMPLES

MALFORMED = [
    b"",
    b"\r\n\r\n",
    b"Subject: only a subject\r\n\r\nbody",
    b"From: \r\nTo: disputes@desk.example\r\n\r\nno sender",
    b'From: buyer@example.org\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\n',
    b"From: buyer@example.org\r\nContent-Type: text/plain; charset=no-such-charset\r\n\r\n\xff\xfe",
    b"From: =?utf-8?B?broken?= <b@example.org>\r\nSubject: =?koi8-r?Q?=F0=D2=C9?=\r\n\r\nx",
    b"From: buyer@example.org\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!",
    b"\x00" * 100,
    b"From buyer@example.org Mon Jan  1 00:00:00 2026\nFrom: b@example.org\n\nmbox line",
    (b"From: b@example.org\r\nContent-Type: message/rfc822\r\n\r\n" * 40),
    b"From: b@example.org\r\n" + b"X-Long: " + b"a" * 200_000 + b"\r\n\r\nlong header",
]


def _sample_files() -> list[Path]:
    found = []
    for folder in ("flanker", "cpython-email"):
        found += sorted(
            p for p in (SHARED_SAMPLES / folder).rglob("*") if p.is_file() and p.suffix != ".md"
        )
    return found


def _kept(services: Services, data: bytes, result: object) -> bool:
    """The exact bytes are in the spool (quarantined) or in the database (stored/duplicate)."""
    if isinstance(result, Quarantined):
        return services.spool.raw(result.quarantine_id) == data
    with services.engine.connect() as conn:
        rows = conn.execute(select(MESSAGE.c.raw).where(MESSAGE.c.raw == data)).all()
    return len(rows) == 1


def test_a_mailbox_of_malformed_and_sample_messages_is_all_kept(services: Services) -> None:
    messages = MALFORMED + [p.read_bytes() for p in _sample_files()]
    assert len(messages) > 90
    kinds: dict[str, int] = {}
    for index, data in enumerate(messages):
        result = process(RawMessage(data=data, source=f"sample:{index}"), services)
        kinds[result.kind] = kinds.get(result.kind, 0) + 1
        if result.kind != "duplicate":
            assert _kept(services, data, result), f"message {index} not kept: {result}"
    assert kinds.get("quarantined", 0) >= 5  # the garbage above
    assert kinds.get("stored", 0) + kinds.get("needs_info", 0) >= 70


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=4000))
def test_arbitrary_bytes_never_raise_out_of_process(sqlite_services: Services, data: bytes) -> None:
    result = process(RawMessage(data=data, source="hypothesis"), sqlite_services)
    assert result.kind in ("stored", "needs_info", "duplicate", "quarantined")


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    index=st.integers(min_value=0, max_value=80),
    cut=st.integers(min_value=0, max_value=5000),
    noise=st.binary(min_size=1, max_size=40),
)
def test_mutated_samples_never_raise(
    sqlite_services: Services, index: int, cut: int, noise: bytes
) -> None:
    files = _sample_files()
    data = files[index % len(files)].read_bytes()
    cut = min(cut, len(data))
    mutated = data[:cut] + noise + data[cut + len(noise) :]
    result = process(RawMessage(data=mutated, source="hypothesis"), sqlite_services)
    assert result.kind in ("stored", "needs_info", "duplicate", "quarantined")


@pytest.mark.parametrize(
    ("body", "subject", "verdict", "language"),
    [
        ("Thanks, got it.", "Re: parcel", "unknown", "unknown"),
        (
            "Hello, my parcel never arrived and the seller stopped answering. I want a refund "
            "for this order, please help me.\n\n-- \nС уважением, Иван Петров\nООО «Ромашка», "
            "отдел закупок, г. Москва, ул. Ленина, д. 1, офис 2. Это письмо и любые вложения "
            "конфиденциальны и предназначены только для адресата.",
            "Parcel not received",
            "accepted",
            "en",
        ),
        (
            "Здравствуйте! Посылка так и не пришла, продавец не отвечает на сообщения уже "
            "три недели. Прошу вернуть деньги за заказ.",
            "Parcel not received - refund please",
            "not_accepted",
            "ru",
        ),
        (
            "I asked the seller and this is what he answered. The parcel is still not here and "
            "I want my money back, please.\n\n"
            "On Mon, 2 Mar 2026 at 10:00, Seller <seller@store.example> wrote:\n"
            "> Здравствуйте, ваш заказ отправлен, трек-номер будет обновлён через неделю.\n"
            "> Пожалуйста, подождите ещё немного и не открывайте спор, мы всё решим.\n",
            "Re: my order",
            "accepted",
            "en",
        ),
    ],
    ids=[
        "short-english",
        "english-with-russian-signature",
        "russian-with-english-subject",
        "mixed-quotes",
    ],
)
def test_language_cases_through_the_pipeline(
    sqlite_services: Services, body: str, subject: str, verdict: str, language: str
) -> None:
    from tests.mail import claim

    # Without the field lines, whose labels are English words too.
    data = claim(body=body, subject=subject, order=None, tracking=None, product=None, store=None)
    result = process(RawMessage(data=data, source="t"), sqlite_services)
    with sqlite_services.engine.connect() as conn:
        checks = conn.execute(select(MESSAGE.c.checks)).scalar_one()
    assert checks["language"]["verdict"] == verdict
    assert checks["language"]["code"] == language
    assert result.kind == "needs_info"  # disputes need an order number: always asked here
    with sqlite_services.engine.connect() as conn:
        ok = conn.execute(select(TICKET.c.language_ok)).scalar_one()
    assert ok == (verdict != "not_accepted")
