"""The router: recipients, mailbox hint, keyword rules in many languages, fallback."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from config.settings import Settings, build_settings
from intake.types import ParsedMessage, Quote, RouteDecision
from routing.router import Router
from routing.rules import KeywordRule, fold

SETTINGS = build_settings({}, env={})
ROUTER = Router(SETTINGS)
SUPPORT = "support@desk.example"


def parsed(
    subject: str = "",
    text: str = "",
    to: tuple[str, ...] = (SUPPORT,),
    cc: tuple[str, ...] = (),
) -> ParsedMessage:
    """A parsed message from a buyer, with `text` as both the body and the own text."""
    return ParsedMessage(
        message_id="<buyer-1@mail.example>",
        message_id_generated=False,
        subject=subject,
        from_address="buyer@mail.example",
        from_name="A Buyer",
        to=to,
        cc=cc,
        date=None,
        in_reply_to=(),
        references=(),
        text=text,
        own_text=text,
        quotes=(),
        field_texts=(text,),
        links=(),
        attachments=(),
        headers=(("Subject", subject),),
        content_type="text/plain",
    )


def route_general(subject: str, text: str = "", router: Router = ROUTER) -> RouteDecision:
    """Route a message sent to the general (fallback) address, so content decides."""
    return router.route([SUPPORT], parsed(subject, text))


def router_with(**document: Any) -> Router:
    settings: Settings = build_settings(document, env={})
    return Router(settings)


# -- the rule table ------------------------------------------------------------------------


def test_the_rule_table_follows_the_configured_order() -> None:
    assert [rule.name for rule in ROUTER.rules] == [
        "recipient",
        "mailbox_hint",
        "keywords:security",
        "keywords:complaints",
        "keywords:disputes",
        "fallback",
    ]
    assert all(rule.description for rule in ROUTER.rules)


def test_a_reordered_config_reorders_the_keyword_rules() -> None:
    router = router_with(routing={"order": ["disputes", "complaints", "security", "general"]})
    assert [rule.name for rule in router.rules][2:5] == [
        "keywords:disputes",
        "keywords:complaints",
        "keywords:security",
    ]
    text = "I got a fake email about my order and the product itself is fake too."
    assert route_general("Help", text, router).queue == "disputes"
    assert route_general("Help", text).queue == "security"


def test_a_queue_without_keywords_has_no_keyword_rule() -> None:
    router = router_with(
        routing={"order": ["vip", "general"]},
        queues={
            "vip": {"addresses": ["vip@desk.example"]},
            "general": {"addresses": [SUPPORT], "fallback": True},
        },
    )
    assert [rule.name for rule in router.rules] == ["recipient", "mailbox_hint", "fallback"]


def test_queues_missing_from_routing_order_follow_the_ordered_ones() -> None:
    router = router_with(
        routing={"order": ["claims", "general"]},
        queues={
            "extra": {"addresses": ["extra@desk.example"], "keywords": ["parcel"]},
            "claims": {"addresses": ["claims-q@desk.example"], "keywords": ["refund"]},
            "general": {"addresses": [SUPPORT], "fallback": True},
        },
    )
    assert [rule.name for rule in router.rules][2:4] == ["keywords:claims", "keywords:extra"]
    decision = route_general("Parcel refund", "", router)
    assert (decision.queue, decision.rule) == ("claims", "keywords:claims")
    decision = router.route(["extra@desk.example", "claims-q@desk.example"], parsed())
    assert (decision.queue, decision.rule) == ("claims", "recipient_precedence")


@pytest.mark.parametrize("keyword", ["", "   ", "*", "!!!", "*refund"])
def test_an_unusable_keyword_is_refused_naming_the_key(keyword: str) -> None:
    with pytest.raises(ValueError, match=r"queues\.disputes\.keywords"):
        router_with(
            queues={
                "disputes": {"addresses": ["disputes@desk.example"], "keywords": [keyword]},
                "general": {"addresses": [SUPPORT], "fallback": True},
            },
            routing={"order": ["disputes", "general"]},
        )


# -- recipients ----------------------------------------------------------------------------


@pytest.mark.parametrize("queue", ["disputes", "complaints", "security"])
def test_mail_to_a_queue_address_goes_to_that_queue(queue: str) -> None:
    address = f"{queue}@desk.example"
    decision = ROUTER.route([address], parsed("Hello", "Nothing specific here.", to=(address,)))
    assert decision == RouteDecision(queue, "recipient", f"addressed to {address}")


def test_recipient_addresses_are_compared_without_case_or_display_name() -> None:
    decision = ROUTER.route(["Claims Desk <Complaints@Desk.Example>"], parsed())
    assert (decision.queue, decision.rule) == ("complaints", "recipient")
    assert ROUTER.route(["<SECURITY@desk.example>"], parsed()).queue == "security"


def test_several_desk_queues_addressed_the_earliest_in_routing_order_wins() -> None:
    envelope = ["disputes@desk.example", "complaints@desk.example", "security@desk.example"]
    decision = ROUTER.route(envelope, parsed("Refund please", "The parcel never arrived."))
    assert decision.queue == "security"
    assert decision.rule == "recipient_precedence"
    assert "security@desk.example" in decision.reason
    assert "disputes@desk.example" in decision.reason
    assert "complaints@desk.example" in decision.reason

    decision = ROUTER.route(envelope[:2], parsed())
    assert (decision.queue, decision.rule) == ("complaints", "recipient_precedence")


def test_the_same_queue_addressed_twice_is_no_competition() -> None:
    router = router_with(
        queues={
            "disputes": {"addresses": ["disputes@desk.example", "refunds@desk.example"]},
            "general": {"addresses": [SUPPORT], "fallback": True},
        },
        routing={"order": ["disputes", "general"]},
    )
    decision = router.route(["refunds@desk.example", "disputes@desk.example"], parsed())
    assert decision == RouteDecision("disputes", "recipient", "addressed to refunds@desk.example")


def test_the_fallback_address_does_not_decide_content_does() -> None:
    decision = ROUTER.route([SUPPORT], parsed("Parcel never arrived", "Please help."))
    assert decision.rule == "keywords:disputes"
    decision = ROUTER.route([SUPPORT], parsed("Question", "Do you ship to Iceland?"))
    assert decision == RouteDecision("general", "fallback", "no rule matched")


def test_a_specific_address_beside_the_fallback_address_decides_alone() -> None:
    decision = ROUTER.route([SUPPORT, "disputes@desk.example"], parsed("My password was stolen"))
    assert decision == RouteDecision("disputes", "recipient", "addressed to disputes@desk.example")


def test_without_an_envelope_the_to_and_cc_headers_stand_in() -> None:
    message = parsed(
        "Hello", "See below.", to=("friend@mail.example",), cc=("complaints@desk.example",)
    )
    decision = ROUTER.route([], message)
    assert decision == RouteDecision(
        "complaints", "recipient", "addressed to complaints@desk.example"
    )


def test_the_envelope_outranks_the_headers() -> None:
    # A Bcc or an alias: the envelope says where the mail was really delivered.
    message = parsed("Hello", "Do you ship to Iceland?", to=("security@desk.example",))
    assert ROUTER.route([SUPPORT], message).rule == "fallback"


def test_our_own_from_address_is_not_a_queue_address() -> None:
    assert ROUTER.route(["claims@desk.example"], parsed("Hi", "A question.")).rule == "fallback"


# -- mailbox hint --------------------------------------------------------------------------


def test_the_mailbox_hint_decides_when_no_desk_address_did() -> None:
    message = parsed("Hello", "The parcel never arrived.", to=("me@mail.example",))
    decision = ROUTER.route([], message, queue_hint="complaints")
    assert (decision.queue, decision.rule) == ("complaints", "mailbox_hint")
    assert "complaints" in decision.reason


def test_a_desk_address_outranks_the_mailbox_hint() -> None:
    decision = ROUTER.route(["disputes@desk.example"], parsed(), queue_hint="security")
    assert (decision.queue, decision.rule) == ("disputes", "recipient")


def test_a_fallback_queue_hint_leaves_the_decision_to_content() -> None:
    message = parsed("Hello", "The parcel never arrived.", to=("me@mail.example",))
    assert ROUTER.route([], message, queue_hint="general").rule == "keywords:disputes"
    empty = parsed("Hello", "A question about shipping.", to=("me@mail.example",))
    assert ROUTER.route([], empty, queue_hint="general").rule == "fallback"


def test_an_unknown_queue_hint_is_ignored() -> None:
    message = parsed("Hello", "A question about shipping.", to=("me@mail.example",))
    assert ROUTER.route([], message, queue_hint="nonexistent").rule == "fallback"
    assert ROUTER.route([], message, queue_hint="").rule == "fallback"


# -- keywords in many languages --------------------------------------------------------------

KEYWORD_CASES = [
    # English
    (
        "disputes",
        "Order 8123456789012345 - parcel never arrived",
        "Hello, I ordered a phone case two months ago. Tracking RR123456785CN has said "
        "'in transit' since March. Please help.",
    ),
    (
        "complaints",
        "Seller wants money by bank transfer",
        "The seller of store 912345 wrote that I should pay outside AliExpress to get a "
        "discount, by bank transfer to his own account.",
    ),
    (
        "security",
        "Strange login",
        "I got an email about a login from Brazil and now I cannot sign in. I think my "
        "account was hacked.",
    ),
    # Russian
    (
        "disputes",
        "Посылка",
        "Здравствуйте! Заказ 8123456789012345 так и не пришёл, трек не обновляется больше "
        "месяца. Прошу разобраться.",
    ),
    (
        "complaints",
        "Продавец",
        "Продавец угрожает мне и пишет гадости в чате после того, как я оставил честный отзыв.",
    ),
    (
        "security",
        "Помогите",
        "Мой аккаунт взломали, кто-то оформил заказы на мою карту и поменял адрес доставки.",
    ),
    # Ukrainian
    (
        "disputes",
        "Замовлення 8123456789012345",
        "Доброго дня! Отримала навушники, але коробка пошкоджена, а один навушник взагалі "
        "не працює.",
    ),
    (
        "complaints",
        "Продавець",
        "Продавець погрожує мені після того, як я залишила негативний відгук про товар.",
    ),
    (
        "security",
        "Акаунт",
        "Хтось увійшов у мій акаунт і змінив адресу доставки, я цього не робила.",
    ),
    # Spanish
    (
        "disputes",
        "Pedido 8123456789012345",
        "Hola, hice un pedido hace 60 días y todavía no me ha llegado. ¿Qué puedo hacer?",
    ),
    (
        "complaints",
        "Vendedor",
        "El vendedor me escribió que para recibir el producto tengo que pagar fuera de la "
        "plataforma con una transferencia.",
    ),
    (
        "security",
        "Ayuda urgente",
        "Creo que mi cuenta fue hackeada: no puedo entrar y alguien cambió mi contraseña.",
    ),
    # Portuguese
    (
        "disputes",
        "Relógio",
        "Olá, recebi o relógio mas ele chegou quebrado e a pulseira está rasgada.",
    ),
    (
        "complaints",
        "Denúncia",
        "Sou representante da marca e esta loja vende produtos que violam os nossos direitos "
        "autorais e a nossa propriedade intelectual.",
    ),
    (
        "security",
        "Aviso estranho",
        "Recebi um aviso de login suspeito e depois disso não consigo mais acessar a conta.",
    ),
    # French
    (
        "disputes",
        "Commande 8123456789012345",
        "Bonjour, je n'ai toujours pas reçu mon colis commandé il y a deux mois.",
    ),
    (
        "complaints",
        "Vendeur",
        "Le vendeur me menace depuis que j'ai laissé un avis négatif sur son produit.",
    ),
    (
        "security",
        "Mon compte",
        "Mon compte a été piraté, quelqu'un a changé mon mot de passe cette nuit.",
    ),
    # German
    (
        "disputes",
        "Bestellung 8123456789012345",
        "Hallo, meine Bestellung ist nach 45 Tagen immer noch nicht angekommen.",
    ),
    (
        "complaints",
        "Verkäufer",
        "Der Verkäufer hat mich gebeten, außerhalb der Plattform per Überweisung zu zahlen.",
    ),
    (
        "security",
        "Konto",
        "Mein Konto wurde gehackt, ich komme nicht mehr hinein.",
    ),
    # Polish
    (
        "disputes",
        "Zamówienie 8123456789012345",
        "Dzień dobry, paczka nie dotarła, mimo że minęło już 50 dni od zamówienia.",
    ),
    (
        "complaints",
        "Sprzedawca",
        "Sprzedawca grozi mi i wyzywa mnie w wiadomościach, bo wystawiłem niską ocenę.",
    ),
    (
        "security",
        "Konto",
        "Moje konto zostało zhakowane, ktoś zmienił dane i złożył zamówienia.",
    ),
    # Turkish (the subject in capitals: dotless ı and İ fold like ı and i)
    (
        "disputes",
        "SİPARİŞ ULAŞMADI",
        "Merhaba, siparişim 40 gün oldu, kargo takip sayfası hiç güncellenmiyor.",
    ),
    (
        "complaints",
        "Satıcı",
        "Satıcı mesajlarda bana hakaret etti, kötü yorum yaptım diye.",
    ),
    (
        "security",
        "HESABIM ÇALINDI",
        "Biri hesabıma girdi ve bilgilerimi değiştirdi, lütfen yardım edin.",
    ),
    # Italian
    (
        "disputes",
        "Ordine 8123456789012345",
        "Buongiorno, il pacco non è mai arrivato e il tracciamento è fermo da settimane.",
    ),
    (
        "complaints",
        "Venditore",
        "Il venditore mi ha chiesto di pagare fuori dalla piattaforma per avere uno sconto.",
    ),
    (
        "security",
        "Account",
        "Il mio account è stato hackerato e ci sono ordini che non ho fatto io.",
    ),
    # Chinese (simplified and traditional)
    (
        "disputes",
        "订单 8123456789012345",
        "你好，我的包裹已经两个月了还没有收到，请帮我处理。",
    ),
    (
        "complaints",
        "卖家",
        "卖家让我在平台外付款，说这样可以便宜一些。",
    ),
    (
        "security",
        "账号",
        "我的账号被盗了，有人用我的账号下了好几个订单。",
    ),
    (
        "security",
        "帳號",
        "我的帳號被盜了，請幫我凍結帳號。",
    ),
    (
        "disputes",
        "訂單",
        "收到的商品是假貨，和圖片完全不一樣。",
    ),
]


@pytest.mark.parametrize(
    ("queue", "subject", "text"),
    KEYWORD_CASES,
    ids=[f"{queue}-{i}" for i, (queue, _, _) in enumerate(KEYWORD_CASES)],
)
def test_keywords_route_mail_to_the_general_address(queue: str, subject: str, text: str) -> None:
    decision = route_general(subject, text)
    assert decision.queue == queue
    assert decision.rule == f"keywords:{queue}"


def test_the_reason_names_the_phrase_and_where_it_was_found() -> None:
    decision = route_general("Refund request", "Hello there.")
    assert decision.reason == 'keyword "refund*" in the subject'
    decision = route_general("Hello", "My parcel never arrived, sadly.")
    assert decision.reason == 'keyword "never arrived" in the text'
    decision = route_general("Hello", "Hi, I want my money back for this item.")
    assert decision.reason == 'keyword "money back" in the text'


@pytest.mark.parametrize(
    ("text", "queue"),
    [
        ("I was REFUNDED only half.", "disputes"),  # case, and * for the rest of the word
        ("It arrived with the wrong colour.", "disputes"),  # * inside a word: colo*r
        ("Please turn off two factor login for me.", "security"),  # space for hyphen
        ("I didn’t receive the parcel.", "disputes"),  # typographic apostrophe
        ("The parcel never\n  arrived.", "disputes"),  # a line break inside a phrase
        ("ＲＥＦＵＮＤ please", "disputes"),  # full-width letters
        ("No me llego el paquete, quiero la devolucion del dinero.", "disputes"),  # no accents
        ("посылка не пришел", "disputes"),  # е written for ё
        ("nie otrzymalem przesylki", "disputes"),  # Polish without ł, ę
        ("Hesabim calindi!", "security"),  # Turkish typed without its letters
    ],
)
def test_keywords_ignore_case_accents_and_spacing(text: str, queue: str) -> None:
    assert route_general("Hello", text).queue == queue


@pytest.mark.parametrize(
    "text",
    [
        "I ordered scampi, email me when it ships.",  # "scam email*"
        "The rotor of my drone is noisy, is that normal?",  # "roto"
        "Merhaba, spor ayakkabı numarası kaç?",  # Polish "spór" folds to "spor"
        "Здравствуйте, какой размер у спортивного костюма?",  # "спор"
        "Kind regards, Kirill",  # Turkish "kırıl-" must not become "kiril"
        "我买的钓鱼竿很好用，谢谢。",  # 钓鱼 (phishing) inside 钓鱼竿 (fishing rod)
        "Are you hiring for the hackathon?",  # "hacker*"
        "I live in Fakenham, do you ship to Norfolk?",  # "fake"
        "How do I change the e-mail address of my account?",  # "account" alone is not security
        "Where can I see the status of my order?",
    ],
)
def test_near_misses_stay_in_the_general_queue(text: str) -> None:
    assert route_general("Question", text) == RouteDecision(
        "general", "fallback", "no rule matched"
    )


@pytest.mark.parametrize(
    ("text", "queue"),
    [
        ("The shoes are fake.", "disputes"),
        ("I received a fake email pretending to be AliExpress.", "security"),
        ("A phishing message asked for my card, and the item was fake.", "security"),
        ("The seller threatened me after I said the bag is a fake.", "complaints"),
        ("The seller asked me to confirm receipt before the parcel arrived.", "complaints"),
        ("I did not confirm receipt because the parcel never arrived.", "disputes"),
        ("The seller sells counterfeit goods that infringe our trademark.", "complaints"),
        ("I have not received the verification code for my login.", "security"),
    ],
)
def test_overlapping_phrases_follow_the_routing_order(text: str, queue: str) -> None:
    assert route_general("Help", text).queue == queue


def test_no_keyword_falls_back_to_the_general_queue() -> None:
    decision = route_general("Question about shipping", "Do you ship to Iceland? Thanks!")
    assert decision == RouteDecision("general", "fallback", "no rule matched")
    assert route_general("", "").rule == "fallback"


def test_quoted_text_is_not_read() -> None:
    # Our own auto-reply quoted back is full of keywords; only the own text counts.
    message = replace(
        parsed("Re: your message", "Thank you, will do."),
        text="Thank you, will do.\n> Please send the refund claim details.",
        quotes=(Quote("Please send the refund claim details."),),
    )
    assert ROUTER.route([SUPPORT], message).rule == "fallback"


def test_folding_is_the_same_for_phrases_and_text() -> None:
    assert fold("Не пришёл") == fold("не пришел")
    assert fold("DEVOLUCIÓN") == "devolucion"
    assert fold("HESABIM ÇALINDI") == fold("hesabım çalındı")
    assert fold("Straße") == "strasse"
    assert fold("ＲＲ１２３") == "rr123"


def keyword_rules() -> list[KeywordRule]:
    return [rule for rule in ROUTER.rules if isinstance(rule, KeywordRule)]


@pytest.mark.parametrize("rule", keyword_rules(), ids=lambda r: r.name)
def test_the_phrase_named_is_the_first_that_matches(rule: KeywordRule) -> None:
    """The matched text is named after the first phrase (longest first) that matches it
    whole, whichever first character it has (the lookup is indexed by that character)."""
    for phrase in rule._phrases:
        for filler in ("", "ed", "x"):
            matched = fold(phrase.text).replace("*", filler)
            expected = next(
                (p.text for p in rule._phrases if re.fullmatch(p.source(), matched)), None
            )
            if expected is not None:
                assert rule._phrase_of(matched) == expected
    odd = KeywordRule("q", ["refund*", "refund", "-*x"])
    assert [odd._phrase_of(m) for m in ("refund", "refunds", "abcx")] == ["refund*"] * 2 + ["-*x"]
