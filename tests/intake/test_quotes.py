"""split_reply: own text vs quotes and signatures, in several languages, and its speed.

The github/email_reply_parser samples come with `expected.json` (transcribed from the Ruby
tests): `visible_text` must equal our own text exactly; fragment patterns are checked
against our own text, quotes or (for signatures) their absence from the own text.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intake import quote_markers as qm
from intake import quotes
from intake.quotes import MAX_LINES, split_reply
from intake.types import Quote
from tests.paths import SHARED_SAMPLES

SAMPLES = SHARED_SAMPLES / "email_reply_parser"
EMAILS = SAMPLES / "emails"
EXPECTED: dict[str, dict] = {
    name: facts
    for name, facts in json.loads((SAMPLES / "expected.json").read_text("utf-8")).items()
    if not name.startswith("_")
}
TRAP_SECONDS = 2.0  # generous: both traps take milliseconds; the Ruby suite demands < 1 s

OWN = "My own text, order 8123456789012345."


def reply_sample(name: str) -> str:
    return (EMAILS / name).read_text("utf-8")


def quote_haystack(quotes: tuple[Quote, ...]) -> list[str]:
    return [f"{q.attribution}\n{q.text}" if q.attribution else q.text for q in quotes]


@pytest.mark.parametrize(
    "name", sorted(n for n, facts in EXPECTED.items() if "visible_text" in facts)
)
def test_visible_text_matches_reply_parser(name: str) -> None:
    own, _ = split_reply(reply_sample(name))
    assert own == EXPECTED[name]["visible_text"]


def _pattern_cases() -> list[tuple[str, int, str]]:
    cases = []
    for name, facts in EXPECTED.items():
        for index, patterns in facts.get("fragment_patterns", {}).items():
            for pattern in patterns if isinstance(patterns, list) else [patterns]:
                cases.append((name, int(index), pattern))
    return sorted(cases)


@pytest.mark.parametrize(("name", "index", "pattern"), _pattern_cases())
def test_fragment_patterns_land_where_expected(name: str, index: int, pattern: str) -> None:
    facts = EXPECTED[name]
    own, quotes = split_reply(reply_sample(name))
    quoted = facts.get("quoted", [i > 0 for i in range(index + 1)])[index]
    signature = facts.get("signature", [False] * (index + 1))[index]
    if quoted:
        if pattern.startswith("^>"):
            # Quote.text drops the ">" markers; the quoted line itself must be in a quote.
            pattern = "^" + pattern[2:].lstrip()
        assert any(re.search(pattern, hay, re.MULTILINE) for hay in quote_haystack(quotes))
    elif signature:
        assert not re.search(pattern, own, re.MULTILINE)
    else:
        assert re.search(pattern, own, re.MULTILINE)


@pytest.mark.parametrize(
    ("name", "index"),
    sorted(
        (name, int(index))
        for name, facts in EXPECTED.items()
        for index in facts.get("fragment_exact", {})
    ),
)
def test_fragment_exact(name: str, index: int) -> None:
    facts = EXPECTED[name]
    expected = facts["fragment_exact"][str(index)]
    own, _ = split_reply(reply_sample(name))
    if index == 0:
        assert own.startswith(expected.rstrip())
    elif facts.get("hidden", [True] * (index + 1))[index] and expected.strip():
        assert expected.strip() not in own


def test_email_1_8_keeps_inline_replies_between_quotes() -> None:
    own, quotes = split_reply(reply_sample("email_1_8.txt"))
    assert own == "I will reply under this one\n\n\nand under this."
    assert quotes[0].attribution.startswith("On Tue, Apr 29, 2014 at 4:22 PM")
    assert quotes[1] == Quote("okay?")
    assert "Hey there, this is my signature" not in own


@pytest.mark.parametrize("name", ["email_long_quote.txt", "pathological.txt"])
def test_performance_traps_return_quickly(name: str) -> None:
    text = reply_sample(name)
    started = time.perf_counter()
    own, quotes = split_reply(text)
    elapsed = time.perf_counter() - started
    assert quotes
    assert own
    assert elapsed < TRAP_SECONDS, f"{name} took {elapsed:.3f} s"


@pytest.mark.parametrize(
    "text",
    [
        ">" * 1_000_000,
        "On " * 300_000 + "wrote:",
        "On Mon, X wrote\n" * 50_000,
        "-a\n" * 50_000,
        "From: x\n" * 50_000,
        ("=" * 40 + "\n") * 50_000,
        "x\n" * (MAX_LINES * 5),
    ],
    ids=["gt-line", "on-line", "attribution-like", "signoffs", "from-lines", "rules", "many"],
)
def test_hostile_input_is_linear(text: str) -> None:
    started = time.perf_counter()
    split_reply(text)
    assert time.perf_counter() - started < TRAP_SECONDS


def test_lines_beyond_the_cap_are_kept_as_a_quote() -> None:
    text = "\n".join(f"line {i}" for i in range(MAX_LINES + 3))
    own, quotes = split_reply(text)
    assert own.endswith(f"line {MAX_LINES - 1}")
    assert quotes[-1].text == "\n".join(f"line {i}" for i in range(MAX_LINES, MAX_LINES + 3))


ATTRIBUTED = [
    "On Mon, Mar 3, 2025 at 10:00 AM Seller <seller@shop.example> wrote:\n> old",
    "On Mon, Mar 3, 2025 at 10:00 AM Seller\n<seller@shop.example> wrote:\n\n> old",
    "On Mon, Mar 3, 2025 at 10:00 AM, Seller\n<seller@shop.example>\nwrote:\n> old",
    "Seller <seller@shop.example> wrote:\n> old",
    "Le lun. 3 mars 2025 à 10:00, Vendeur <v@shop.fr> a écrit :\n> old",
    "Am 03.03.2025 um 10:00 schrieb Verkäufer <v@shop.de>:\n> old",
    "Am Mo., 3. März 2025 um 10:00 Uhr schrieb Max Mustermann:\n\n> old",
    "El lun, 3 mar 2025 a las 10:00, Vendedor (<v@shop.es>) escribió:\n> old",
    "Em seg., 3 de mar. de 2025 às 10:00, Vendedor <v@shop.br> escreveu:\n> old",
    "W dniu 3.03.2025 o 10:00, Sprzedawca pisze:\n> old",
    "W dniu 3.03.2025 10:00, Sprzedawca <s@shop.pl> napisał(a):\n> old",
    "3 Mar 2025 Pzt, 10:00 tarihinde Satıcı <s@shop.tr> şunu yazdı:\n> old",
    "03.03.2025 10:00, Продавец пишет:\n> old",
    "Продавец написал(а):\n> old",
    "пн, 3 мар. 2025 г. в 10:00, Продавец <s@shop.ru>:\n> old",
    "卖家 <s@shop.cn> 于2025年3月3日周一 上午10:00写道：\n> old",
    "Il giorno lun 3 mar 2025 alle ore 10:00 Venditore <v@shop.it> ha scritto:\n> old",
    "Op ma 3 mrt 2025 om 10:00 schreef Verkoper <v@shop.nl>:\n> old",
    "Den 3 mars 2025 kl. 10:00 skrev Säljare <s@shop.se>:\n> old",
]


@pytest.mark.parametrize("quoted", ATTRIBUTED)
def test_attribution_lines_in_many_languages(quoted: str) -> None:
    own, quotes = split_reply(f"{OWN}\n\n{quoted}\n")
    assert own == OWN
    assert len(quotes) == 1
    assert quotes[0].text == "old"
    first_line = quoted.split("\n", 1)[0]
    assert quotes[0].attribution.startswith(first_line)


TOP_POSTED = [
    "From: Seller <s@shop.example>\nSent: Monday, March 3, 2025 10:00 AM\nTo: Buyer\n"
    "Subject: Re: order\n\nold",
    "От: Продавец <s@shop.ru>\nОтправлено: 3 марта 2025 г. 10:00\nКому: buyer@example.ru\n"
    "Тема: Re: заказ\n\nold",
    "Von: Verkäufer <v@shop.de>\nGesendet: Montag, 3. März 2025 10:00\nAn: Käufer\n"
    "Betreff: AW: Bestellung\n\nold",
    "De : Vendeur <v@shop.fr>\nEnvoyé : lundi 3 mars 2025 10:00\nÀ : Acheteur\n"
    "Objet : RE: commande\n\nold",
    "De: Vendedor <v@shop.es>\nEnviado: lunes, 3 de marzo de 2025 10:00\nPara: Comprador\n"
    "Asunto: RE: pedido\n\nold",
    "*From:* Seller [mailto:s@shop.example]\n*Sent:* Monday\n*To:* Buyer\n\nold",
    "________________________________\nFrom: Seller <s@shop.example>\nSent: Monday\n\nold",
    "-----Original Message-----\nFrom: Seller\nSent: Monday\n\nold",
    "-----Ursprüngliche Nachricht-----\nVon: Verkäufer\nGesendet: Montag\n\nold",
    "---------- Forwarded message ---------\nFrom: Seller <s@shop.example>\n"
    "Date: Mon, Mar 3, 2025 at 10:00 AM\nSubject: Your order\nTo: <buyer@example.com>\n\nold",
    "Begin forwarded message:\n\nFrom: Seller <s@shop.example>\nSubject: Your order\n"
    "Date: 3 March 2025 at 10:00:00 GMT\nTo: buyer@example.com\n\nold",
    "-------- Пересылаемое сообщение --------\nold",
    "-----原始邮件-----\n发件人: 卖家\n发送时间: 2025年3月3日\n\nold",
    "On Mon, Mar 3, 2025 at 10:00 AM, Seller wrote:\n\nold",
]


@pytest.mark.parametrize("quoted", TOP_POSTED)
def test_separators_and_header_blocks_quote_the_rest(quoted: str) -> None:
    own, quotes = split_reply(f"{OWN}\n\n{quoted}\n")
    assert own == OWN
    assert len(quotes) == 1
    assert quotes[0].text == "old"
    assert quotes[0].attribution


def test_header_block_is_the_attribution_and_rest_is_the_quote() -> None:
    own, quotes = split_reply(f"{OWN}\n\n{TOP_POSTED[0]}\n> nested\n")
    assert own == OWN
    assert quotes[0].attribution.splitlines() == [
        "From: Seller <s@shop.example>",
        "Sent: Monday, March 3, 2025 10:00 AM",
        "To: Buyer",
        "Subject: Re: order",
    ]
    assert quotes[0].text == "old\n> nested"


@pytest.mark.parametrize(
    "signature",
    [
        "-- \nIvan Petrov\nACME Ltd.",
        "--\nIvan Petrov",
        "Sent from my iPhone",
        "Sent from my Samsung Galaxy smartphone.",
        "Sent from Mail for Windows",
        "Sent from Yahoo Mail on Android",
        "Get Outlook for iOS",
        "Отправлено с iPhone",
        "Отправлено из мобильной Почты Mail.ru",
        "Envoyé de mon iPhone",
        "Von meinem iPhone gesendet",
        "Gesendet von Mail für Windows",
        "Enviado desde mi iPhone",
        "Enviado do meu iPhone",
        "Inviato da iPhone",
        "Wysłane z iPhone'a",
        "iPhone'umdan gönderildi",
        "发自我的iPhone",
        "iPhoneから送信",
    ],
)
def test_signatures_are_dropped(signature: str) -> None:
    own, quotes = split_reply(f"{OWN}\n\n{signature}\n")
    assert own == OWN
    assert quotes == ()


@pytest.mark.parametrize(
    "text",
    [
        "Sent from Shenzhen warehouse on 1 March",
        "Sent from my desk, is much easier then my mobile phone.",
        "Here is what I wrote:\nmy order is broken",
        "From: my home in Kazan\nTo: the claims desk\nmy order never came",
        "The tracking page says -- delivered",
        "I wrote to the seller 3 times and they said:\nwait",
        "On 5 March I wrote to the seller and he said:\nwait more",
        "On Monday I ordered a phone.\nThe seller wrote nothing.",
        "Items:\n-phone\n-case\n" + "\n".join(f"detail {i}" for i in range(12)),
        "----- Order details -----\nphone, case",
    ],
)
def test_own_text_that_only_looks_like_markers_is_kept(text: str) -> None:
    assert split_reply(text) == (text, ())


def test_bottom_posted_reply_keeps_the_reply() -> None:
    attribution = "On Mon, 3 Mar 2025, Desk <d@desk.example> wrote:"
    own, quotes = split_reply(f"{attribution}\n> Send photos.\n> Thanks\n\nHere they are.")
    assert own == "Here they are."
    assert quotes == (Quote("Send photos.\nThanks", attribution),)


def test_bare_quote_without_attribution() -> None:
    own, quotes = split_reply("> > nested\n> level one\n\nreply")
    assert own == "reply"
    assert quotes == (Quote("nested\nlevel one"),)


def test_signature_before_the_quote_still_yields_the_quote() -> None:
    text = f"{OWN}\n-- \nIvan\n\nOn Mon, 3 Mar 2025, Desk <d@desk.example> wrote:\n> old\n"
    own, quotes = split_reply(text)
    assert own == OWN
    assert [q.text for q in quotes] == ["old"]


def test_crlf_and_cr_line_endings() -> None:
    own, quotes = split_reply(f"{OWN}\r\n\r\nSent from my iPhone\r\n> old\r")
    assert own == OWN
    assert quotes == (Quote("old"),)


def test_empty_text() -> None:
    assert split_reply("") == ("", ())
    assert split_reply("\n\n  \n") == ("", ())


MARKER_LINES = st.sampled_from(
    [
        "",
        "> quoted",
        ">",
        "-- ",
        "--",
        "-Ivan",
        "____",
        "Sent from my iPhone",
        "On Mon, 3 Mar 2025, X <x@y.example> wrote:",
        "On Mon, 3 Mar 2025, X",
        "<x@y.example> wrote:",
        "wrote:",
        "From: X <x@y.example>",
        "Sent: Monday",
        "От: X",
        "-----Original Message-----",
        "Begin forwarded message:",
        "=====",
        "Заказ 8123456789012345",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(MARKER_LINES, st.text(max_size=40)), max_size=40))
def test_own_text_only_ever_holds_input_lines(lines: list[str]) -> None:
    text = "\n".join(lines)
    own, quotes = split_reply(text)
    source = {line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")}
    assert all(line in source for line in own.split("\n") if line)
    assert all(isinstance(q, Quote) for q in quotes)


# --- the markers' cheap pre-tests decide as the full checks do ------------------------------


def full_separator_phrase(stripped: str) -> bool:
    """`is_separator_phrase` without its first/last character pre-test."""
    if not stripped or len(stripped) > 120:
        return False
    text = stripped.lower().replace("：", ":").replace("\u00a0", " ")
    dashed = bool(re.match(r"[-=_*~–—]{2,}", text))
    core = re.sub(r"[-=_*~–—]{2,}", " ", text).strip().rstrip(":").strip()
    if core in qm.SEPARATOR_PHRASES:
        return dashed or text.rstrip().endswith(":") or core.startswith("begin")
    return False


def full_header_label(stripped: str) -> str | None:
    """`header_label` without its colon pre-test."""
    if not stripped or len(stripped) > qm.MAX_MARKER_LINE:
        return None
    text = stripped.lstrip("*").replace("：", ":")
    colon = text.find(":", 0, 30)
    if colon <= 0:
        return None
    label = text[:colon].strip().strip("*").strip().lower()
    return label if label in qm.HEADER_LABELS else None


def full_mobile_signature(stripped: str) -> bool:
    """`is_mobile_signature` without its first/last character pre-test."""
    if not stripped or len(stripped) > 80 or "," in stripped:
        return False
    text = stripped.lower().rstrip(".! ")
    if len(text.split()) > 10:
        return False
    if text.startswith(qm._SIGNATURE_PREFIXES_OWNED):
        return True
    if text.startswith(qm._SIGNATURE_PREFIXES) or text.endswith(qm._SIGNATURE_SUFFIXES):
        return any(word in text for word in qm._DEVICE_WORDS)
    return False


def full_footer_start(stripped: str) -> bool:
    """`is_footer_start` without its first-character pre-test."""
    if stripped.startswith("__") and not stripped.strip("_"):
        return True
    return 1 < len(stripped) <= 40 and stripped[0] == "-" and stripped[1].isalpha()


MARKER_PIECES = st.sampled_from(
    [
        *"-=_*~–—:：.!? \t\u00a0aoOİıΣσςαμ>,",
        "original message",
        "Forwarded Message",
        "begin forwarded message",
        "ΑΡΧΙΚΌ ΜΉΝΥΜΑ",
        "原始邮件",
        "sent from my ",
        "Von meinem ",
        "iPhone",
        "gönderildi",
        "から送信",
        "From",
        "Sent",
        "От",
        "Ivan",
    ]
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(MARKER_PIECES, min_size=1, max_size=8).map("".join))
def test_marker_pre_tests_decide_as_the_full_checks(text: str) -> None:
    stripped = text.strip()
    assert qm.is_separator_phrase(stripped) == full_separator_phrase(stripped)
    assert qm.header_label(stripped) == full_header_label(stripped)
    assert qm.is_mobile_signature(stripped) == full_mobile_signature(stripped)
    assert qm.is_footer_start(stripped) == full_footer_start(stripped)


@pytest.mark.parametrize("phrase", sorted(qm.SEPARATOR_PHRASES))
def test_every_separator_phrase_passes_the_pre_test(phrase: str) -> None:
    assert qm.is_separator_phrase(f"---------- {phrase.upper()} ----------")
    assert qm.is_separator_phrase(f"{phrase}:")


@pytest.mark.parametrize("line", ["", " ", "\t", " \t ", "\u00a0", "\u3000", "\x0b"])
def test_a_blank_line_is_nothing_the_splitter_looks_for(line: str) -> None:
    # `split_reply` keeps blank lines (outside a signature) without asking these predicates.
    stripped = line.strip()
    assert stripped == ""
    assert not qm.is_quoted(stripped)
    assert quotes._quote_start([stripped, "wrote:", "> x"], 0) is None
    assert not qm.is_footer_start(stripped)
    assert not qm.is_signature_delimiter(line)
    assert not qm.is_mobile_signature(stripped)


# -- the markers' quick rejections against the checks they stand in front of --------------

_MARKER_PIECES = [
    *sorted(qm.SEPARATOR_PHRASES)[:12], "Original Message", "ORIGINAL MESSAGE",
    "Begin forwarded message", "-----", "--", "==", "—", ":", "：", " ", "\u00a0", "İ", "Σ",
    "Sent from my ", "iPhone", "Von meinem ", "gesendet", " gönderildi", "から送信", "发送",
    "Enviado desde mi ", "Samsung", "x", "!", ".", "S", "O", "é",
]  # fmt: skip


@settings(max_examples=800)
@given(st.lists(st.sampled_from(_MARKER_PIECES), min_size=1, max_size=6).map("".join))
def test_marker_quick_rejections_change_nothing(line: str) -> None:
    stripped = line.strip()
    assert qm.is_separator_phrase(stripped) == full_separator_phrase(stripped)
    assert qm.is_mobile_signature(stripped) == full_mobile_signature(stripped)
