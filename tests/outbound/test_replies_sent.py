"""Every reply kind, as the buyer receives it from a real relay (an aiosmtpd sink on
127.0.0.1): headers, threading, text, HTML, every shipped language, the combined case."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from config.wiring import Services
from intake.types import NeedsInfo, Stored
from outbound.compose import ReplyTarget
from outbound.enqueue import enqueue_reply, templates_for
from storage.models import ticket_id_from_ref
from tests.conftest import T0
from tests.mail import ORDER, TRACKING, claim
from tests.outbound.sink import Received, Sink
from tests.outbound.support import drain, events, kinds, outbox, receive

DESK_DOMAIN = "desk.example"
TEXT_HINTS = {
    "order_number": "Order number: the long number (usually 16 digits)",
    "tracking_number": "Tracking number: in the order's shipping details",
    "product_url": "Product link: the link to the item's own page",
    "store_url": "Store link: the link to the seller's store page",
    "photo": "Photo: at least one photo of the item or the parcel",
}
EVIDENCE_RULE = "Evidence: attach up to 5 files, each up to 5 MB"
BAD_CHECK_DIGIT = "check digit does not match: please check for a typo"

# A claim in each language we ship a language request for, and a phrase of that request.
CLAIMS = {
    "ru": (
        "Здравствуйте! Я заказал беспроводные наушники два месяца назад, но посылка так и не "
        "пришла. Продавец просит подождать, а трек не обновляется уже несколько недель. "
        "Прошу вернуть деньги.",
        "Наша служба рассматривает",
    ),
    "uk": (
        "Добрий день! Я замовив бездротові навушники два місяці тому, але посилка так і не "
        "прийшла. Продавець просить чекати, а трекінг не оновлюється вже кілька тижнів. "
        "Прошу повернути гроші.",
        "Наша служба розглядає",
    ),
    "es": (
        "Hola, pedí unos auriculares inalámbricos hace dos meses y el paquete nunca llegó. "
        "El vendedor me dice que espere, pero el seguimiento no se ha movido en semanas. "
        "Quiero que me devuelvan el dinero.",
        "Nuestro equipo solo",
    ),
    "pt": (
        "Olá, comprei fones de ouvido sem fio há dois meses e o pacote nunca chegou. O "
        "vendedor continua dizendo para esperar, mas o rastreamento não muda há semanas. "
        "Quero o reembolso do meu dinheiro.",
        "Nossa equipe só pode analisar",
    ),
    "fr": (
        "Bonjour, j'ai commandé des écouteurs sans fil il y a deux mois et le colis n'est "
        "jamais arrivé. Le vendeur me dit d'attendre, mais le suivi ne bouge plus depuis des "
        "semaines. Je voudrais être remboursé.",
        "Notre équipe ne peut",
    ),
    "de": (
        "Hallo, ich habe vor zwei Monaten kabellose Kopfhörer bestellt und das Paket ist nie "
        "angekommen. Der Verkäufer sagt, ich soll warten, aber die Sendungsverfolgung hat "
        "sich seit Wochen nicht bewegt. Ich möchte mein Geld zurück.",
        "Unser Team kann",
    ),
    "pl": (
        "Dzień dobry, dwa miesiące temu zamówiłem bezprzewodowe słuchawki, ale paczka nigdy "
        "nie dotarła. Sprzedawca każe mi czekać, a śledzenie przesyłki nie zmienia się od "
        "tygodni. Proszę o zwrot pieniędzy.",
        "Nasz zespół",
    ),
    "tr": (
        "Merhaba, iki ay önce kablosuz kulaklık sipariş ettim ama paket hiç gelmedi. Satıcı "
        "beklememi söylüyor ama kargo takibi haftalardır değişmedi. Paramın iade edilmesini "
        "istiyorum, lütfen yardımcı olun.",
        "Ekibimiz yalnızca",
    ),
    "it": (
        "Buongiorno, ho ordinato delle cuffie wireless due mesi fa ma il pacco non è mai "
        "arrivato. Il venditore continua a dirmi di aspettare, ma il tracciamento non si "
        "muove da settimane. Vorrei un rimborso completo.",
        "Il nostro team può",
    ),
    "zh": (
        "您好，我两个月前订购了一副无线耳机，但是包裹一直没有送到。卖家一直让我等待，"
        "可是物流信息已经好几个星期没有更新了。我希望能全额退款，谢谢。",
        "我们的团队只能处理",
    ),
}


def only_mail(sink: Sink, services: Services) -> Received:
    counts = drain(services)
    assert counts.sent == 1 and not counts.relay_error
    [mail] = sink.wait_for(1)
    return mail


def assert_threaded_reply(
    mail: Received, *, to: str, buyer_id: str, ref: str, auto: str = "auto-replied"
) -> None:
    msg = mail.message
    assert mail.rcpt_tos == (to,)
    assert mail.mail_from == "claims@desk.example"  # bounces come back to the desk
    assert msg["From"].addresses[0].addr_spec == "claims@desk.example"
    assert msg["Message-ID"].endswith(f"@{DESK_DOMAIN}>")
    assert msg["In-Reply-To"] == f"<{buyer_id}>"
    assert msg["References"].split()[-1] == f"<{buyer_id}>"
    assert msg["Auto-Submitted"] == auto  # RFC 3834 5
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Subject"].endswith(f" [{ref}]") and msg["Subject"].count("[CD-") == 1


def test_acknowledgement_of_a_complete_claim(
    make_services: Callable[..., Services], db_url: str, sink: Sink
) -> None:
    services = make_services(
        db_url, relay=sink.relay_settings(), desk={"timezone": "Europe/Berlin"}
    )
    result = receive(
        services,
        claim(message_id="<claim-1@example.org>", subject="Re: RE: Parcel never arrived"),
    )
    assert isinstance(result, Stored) and result.ticket == "CD-000001"
    mail = only_mail(sink, services)
    assert_threaded_reply(
        mail, to="buyer@example.org", buyer_id="claim-1@example.org", ref="CD-000001"
    )
    assert mail.message["Subject"] == "Re: Parcel never arrived [CD-000001]"
    assert mail.message["To"].addresses[0].display_name == "Buyer One"
    text = mail.text()
    assert "opened ticket\n[CD-000001] in our disputes queue" in text
    # Received 2026-03-02 10:30 in Berlin (09:30 UTC): due 30 calendar days later, 10:30 on
    # the desk's wall clock although summer time has begun (08:30 UTC).
    assert "We will answer by 2026-04-01 10:30 (Europe/Berlin) at the latest." in text
    assert "What happens next" in text
    assert "English" not in text and EVIDENCE_RULE not in text
    html = mail.html()
    assert html is not None and "<strong>[CD-000001]</strong>" in html
    [row] = outbox(services)
    assert row.status == "sent" and row.kind == "ack" and row.sent_at == T0
    assert mail.data == row.raw  # the exact bytes stored are the bytes sent
    assert f"<{row.message_id}>" == mail.message["Message-ID"]
    assert kinds(services, result.ticket)[-2:] == ["reply_queued", "reply_sent"]


def test_combined_request_in_one_mail(desk: Services, sink: Sink) -> None:
    """Russian text, two fields missing and a mistyped tracking number: ONE acknowledgement
    that asks for everything, the English request also in Russian."""
    body = CLAIMS["ru"][0]
    result = receive(
        desk,
        claim(body=body, order=None, tracking="RR123456784CN", message_id="<ru-1@example.org>"),
    )
    assert isinstance(result, NeedsInfo) and not result.language_ok
    mail = only_mail(sink, desk)
    assert_threaded_reply(
        mail, to="buyer@example.org", buyer_id="ru-1@example.org", ref=result.ticket
    )
    text = mail.text()
    assert "We can only handle claims written in English." in text
    assert "Наша служба рассматривает" in text and "сведения, перечисленные ниже" in text
    assert text.index("English") < text.index("Русский") < text.index("Information missing")
    assert "Information missing for a disputes claim:" in text
    assert TEXT_HINTS["order_number"] in text and TEXT_HINTS["tracking_number"] in text
    assert TEXT_HINTS["product_url"] not in text  # the product link was given
    assert f"Tracking number RR123456784CN: {BAD_CHECK_DIGIT}" in text
    assert EVIDENCE_RULE in text
    assert "Your ticket stays open and the deadline for\n  our answer does not change." in text
    html = mail.html()
    assert html is not None and 'lang="ru"' in html and "Наша служба" in html
    [row] = outbox(desk)
    assert row.kind == "ack"
    [queued] = [e for e in events(desk, result.ticket) if e.kind == "reply_queued"]
    assert queued.detail["includes"] == [
        "language_request",
        "missing_fields",
        "invalid_tracking_numbers",
    ]


def test_every_shipped_language_gets_its_own_request(desk: Services, sink: Sink) -> None:
    shipped = templates_for(desk.settings).languages()
    assert set(shipped) == set(CLAIMS)
    for index, (code, (body, phrase)) in enumerate(CLAIMS.items()):
        result = receive(
            desk, claim(body=body, sender=f"buyer-{code}@example.org", message_id=f"<{code}@x.org>")
        )
        assert isinstance(result, NeedsInfo) and not result.language_ok, code
        assert drain(desk).sent == 1
        mail = sink.wait_for(index + 1)[index]
        assert mail.rcpt_tos == (f"buyer-{code}@example.org",)
        text = mail.text()
        assert "We can only handle claims written in English." in text, code
        assert phrase in text, code
        assert result.ticket in text.split("English", 1)[1], code  # the ref, in their words
        assert "Information missing" not in text, code  # nothing else was missing
        html = mail.html()
        assert html is not None and phrase in html, code


def test_language_without_a_template_gets_english_only(desk: Services, sink: Sink) -> None:
    body = (
        "Hei, tilasin langattomat kuulokkeet kaksi kuukautta sitten, mutta paketti ei ole "
        "koskaan saapunut. Myyjä käskee odottaa, mutta seuranta ei ole päivittynyt viikkoihin. "
        "Haluan rahani takaisin."
    )
    result = receive(desk, claim(body=body))
    assert isinstance(result, NeedsInfo) and not result.language_ok
    text = only_mail(sink, desk).text()
    assert "We can only handle claims written in English." in text
    assert "Information missing" not in text


def test_follow_up_still_missing_something_gets_a_request(desk: Services, sink: Sink) -> None:
    first = receive(desk, claim(order=None, tracking=None, message_id="<f1@example.org>"))
    assert isinstance(first, NeedsInfo)
    drain(desk)
    ack = sink.wait_for(1)[0]
    reply = claim(
        subject=ack.message["Subject"],
        body=f"Here is my order number: {ORDER}",
        order=None,
        tracking=None,
        product=None,
        store=None,
        message_id="<f2@example.org>",
        in_reply_to=ack.message["Message-ID"],
        references=f"<f1@example.org> {ack.message['Message-ID']}",
    )
    second = receive(desk, reply)
    assert isinstance(second, NeedsInfo) and second.ticket == first.ticket
    assert second.missing_fields == ("tracking_number",)
    drain(desk)
    request = sink.wait_for(2)[1]
    assert_threaded_reply(
        request, to="buyer@example.org", buyer_id="f2@example.org", ref=first.ticket
    )
    assert request.message["Subject"] == f"Re: Parcel never arrived [{first.ticket}]"
    refs = request.message["References"].split()
    assert refs == ["<f1@example.org>", ack.message["Message-ID"], "<f2@example.org>"]
    text = request.text()
    assert "we\nstill need the following" in text
    assert TEXT_HINTS["tracking_number"] in text and TEXT_HINTS["order_number"] not in text
    assert [r.kind for r in outbox(desk)] == ["ack", "request"]


def test_follow_up_that_changes_nothing_gets_no_mail(desk: Services, sink: Sink) -> None:
    first = receive(desk, claim(order=None, message_id="<n1@example.org>"))
    nothing_new = claim(
        body="Any news? I am still waiting for an answer about my parcel, please hurry.",
        subject=f"Re: Parcel never arrived [{first.ticket}]",
        order=None,
        tracking=None,
        product=None,
        store=None,
    )
    second = receive(desk, nothing_new)
    assert second.ticket == first.ticket
    assert len(outbox(desk)) == 1
    assert "reply_skipped" not in kinds(desk, first.ticket)  # not due, so nothing skipped


def test_completing_the_claim_gets_no_further_mail(desk: Services, sink: Sink) -> None:
    first = receive(desk, claim(tracking=None, message_id="<c1@example.org>"))
    done = claim(
        body=f"The tracking number is {TRACKING}.",
        subject=f"Re: Parcel never arrived [{first.ticket}]",
        order=None,
        tracking=None,
        product=None,
        store=None,
    )
    assert isinstance(receive(desk, done), Stored)
    assert [r.kind for r in outbox(desk)] == ["ack"]


def test_duplicates_never_get_a_reply(desk: Services, sink: Sink) -> None:
    data = claim(order=None)
    receive(desk, data)
    receive(desk, data)
    assert len(outbox(desk)) == 1


def test_reopened_ticket_is_acknowledged_again(desk: Services, sink: Sink, clock) -> None:
    from storage import repo

    first = receive(desk, claim(message_id="<r1@example.org>"))
    with desk.engine.begin() as conn:
        repo.update_ticket(conn, ticket_id_from_ref(first.ticket), {"status": "closed"})  # type: ignore[arg-type]
    clock.advance(timedelta(days=40))
    again = receive(desk, claim(message_id="<r2@example.org>", in_reply_to="<r1@example.org>"))
    assert isinstance(again, Stored) and again.reopened
    assert [r.kind for r in outbox(desk)] == ["ack", "ack"]


def test_buyer_html_is_escaped_in_our_html(desk: Services, sink: Sink) -> None:
    receive(
        desk,
        claim(
            subject='<script>alert("x")</script> & <b>bold</b>',
            sender='"<img src=x onerror=alert(1)>" <buyer@example.org>',
        ),
    )
    mail = only_mail(sink, desk)
    html = mail.html()
    assert html is not None
    assert "<script>" not in html and "<img" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert '<script>alert("x")</script>' in mail.text()  # plain text is shown as text


def test_extension_notice_and_staff_answer_use_the_same_machinery(
    desk: Services, sink: Sink
) -> None:
    result = receive(desk, claim(message_id="<e1@example.org>"))
    ticket_id = ticket_id_from_ref(result.ticket)  # type: ignore[arg-type]
    assert ticket_id is not None
    drain(desk)
    new_due = T0 + timedelta(days=45)
    with desk.engine.begin() as conn:
        enqueue_reply(
            conn,
            desk.settings,
            ticket_id,
            "extension_notice",
            now=T0,
            details={
                "new_due": new_due,
                "previous_due": T0 + timedelta(days=30),
                "reason": "The carrier's investigation takes\r\nBcc: longer",
            },
        )
        enqueue_reply(
            conn,
            desk.settings,
            ticket_id,
            "staff_answer",
            now=T0,
            details={"body": "We refunded the order.\n\n<b>Regards</b>, the desk"},
            actor="agent:anna",
        )
    assert drain(desk).sent == 2
    _, notice, answer = sink.wait_for(3)
    assert_threaded_reply(
        notice,
        to="buyer@example.org",
        buyer_id="e1@example.org",
        ref=result.ticket,
        auto="auto-generated",
    )
    text = notice.text()
    assert "Reason: The carrier's investigation takes Bcc: longer" in text
    assert (
        "We will now answer by 2026-04-16 09:30 (UTC) at the latest (instead of 2026-04-01 09:30 (UTC))."
        in text
    )
    assert answer.message["Auto-Submitted"] is None  # a person wrote it
    assert answer.message["X-Auto-Response-Suppress"] == "All"
    assert answer.message["In-Reply-To"] == "<e1@example.org>"
    assert answer.text().startswith("We refunded the order.\n\n<b>Regards</b>, the desk\n")
    html = answer.html()
    assert html is not None and "&lt;b&gt;Regards&lt;/b&gt;" in html
    queued = [e for e in events(desk, result.ticket) if e.kind == "reply_queued"]
    assert [e.detail["kind"] for e in queued] == ["ack", "extension_notice", "staff_answer"]
    assert queued[-1].actor == "agent:anna"


def test_notice_to_someone_else_with_its_own_subject(desk: Services, sink: Sink) -> None:
    result = receive(desk, claim())
    ticket_id = ticket_id_from_ref(result.ticket)  # type: ignore[arg-type]
    assert ticket_id is not None
    with desk.engine.begin() as conn:
        enqueue_reply(
            conn,
            desk.settings,
            ticket_id,
            "staff_answer",
            now=T0,
            details={"body": "Please look at this one."},
            target=ReplyTarget(address="staff@desk.example", subject="ignored"),
            subject=f"[{result.ticket}] due soon",
        )
    drain(desk)
    notice = sink.wait_for(2)[1]
    assert notice.rcpt_tos == ("staff@desk.example",)
    assert notice.message["Subject"] == f"[{result.ticket}] due soon"
    assert notice.message["In-Reply-To"] is None


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Parcel never arrived", "Re: Parcel never arrived [CD-000001]"),
        ("Re: Parcel never arrived [CD-000001]", "Re: Parcel never arrived [CD-000001]"),
        ("RE: Re[2]: AW: Parcel [cd-000001] never arrived", "Re: Parcel never arrived [CD-000001]"),
        ("", "Re: Your claim [CD-000001]"),
    ],
)
def test_subject_of_the_acknowledgement(
    make_services: Callable[..., Services], sqlite_url: str, sink: Sink, subject: str, expected: str
) -> None:
    services = make_services(sqlite_url, relay=sink.relay_settings())
    receive(services, claim(subject=subject))
    assert only_mail(sink, services).message["Subject"] == expected


def test_templates_dir_overrides_one_file(
    make_services: Callable[..., Services], db_url: str, sink: Sink, tmp_path
) -> None:
    custom = tmp_path / "templates"
    custom.mkdir()
    (custom / "ack.txt.j2").write_text("Dear customer, {{ ticket.ref }} is ours now.\n")
    services = make_services(
        db_url, relay=sink.relay_settings(), outbound={"templates_dir": str(custom)}
    )
    result = receive(services, claim())
    mail = only_mail(sink, services)
    assert mail.text() == f"Dear customer, {result.ticket} is ours now.\n"
    assert mail.html() is not None  # ack.html.j2 still comes from the built-in set


def test_a_broken_template_never_costs_the_ticket(
    make_services: Callable[..., Services], db_url: str, sink: Sink, tmp_path
) -> None:
    custom = tmp_path / "templates"
    custom.mkdir()
    (custom / "ack.txt.j2").write_text("{{ ticket.due_at + 1 }}\n")  # fails at render time
    services = make_services(
        db_url, relay=sink.relay_settings(), outbound={"templates_dir": str(custom)}
    )
    result = receive(services, claim())
    assert isinstance(result, Stored) and result.created
    assert outbox(services) == []
    [skip] = [e for e in events(services, result.ticket) if e.kind == "reply_skipped"]
    assert skip.detail["reason"].startswith("compose failed: template ack.txt.j2: TypeError")


def test_a_template_with_a_syntax_error_is_refused_at_load(tmp_path) -> None:
    from outbound.templates import TemplateProblem, Templates

    (tmp_path / "ack.txt.j2").write_text("{% if %}\n")
    with pytest.raises(TemplateProblem, match=r"ack\.txt\.j2"):
        Templates(str(tmp_path))
