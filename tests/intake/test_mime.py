"""parse_message on our own charset/structure samples (tests/data/mail, see its README),
on the flanker and CPython sample sets, on hostile nesting, and on arbitrary bytes."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pathvalidate import sanitize_filename

from intake import mime_headers as hdr
from intake.mime import _PARSER, MAX_CONTAINERS, MAX_DEPTH, MAX_PARTS, _charset, parse_message
from intake.mime_attachments import safe_filename
from intake.mime_charset import codec_for, decode_text
from intake.mime_headers import (
    clean,
    decode_value,
    decode_words,
    message_id,
    message_ids,
    simple_addresses,
    unescape_8bit,
    unfold,
)
from intake.mime_html import _SPACES, _collapse
from intake.types import ParsedMessage, Unparseable
from tests.paths import SHARED_SAMPLES

MAIL = Path(__file__).resolve().parent.parent / "data" / "mail"
SAMPLES = SHARED_SAMPLES
SAMPLE_FILES = sorted(
    [*(SAMPLES / "flanker").rglob("*.eml"), *(SAMPLES / "cpython-email").glob("msg_*.txt")]
)
ENDLESS = SAMPLES / "flanker" / "enclosed-endless.eml"
SLOW_SECONDS = 2.0  # generous bound for refusing hostile input; typical runs take < 0.3 s

PHOTO = bytes(range(256)) * 4  # the attachment bytes tests/data/mail was built with
LOGO = b"\x89PNG\r\n\x1a\n" + b"\x00" * 50
BIN = b"\x00\x01\x02binary\xff"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def parsed(data: bytes) -> ParsedMessage:
    result = parse_message(data)
    assert isinstance(result, ParsedMessage), result
    return result


def mail(name: str) -> ParsedMessage:
    return parsed((MAIL / name).read_bytes())


def sample(relative: str, *, crlf: bool = False) -> ParsedMessage:
    return parsed(read_sample(SAMPLES / relative, crlf=crlf))


def read_sample(path: Path, *, crlf: bool = False) -> bytes:
    data = path.read_bytes()
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") if crlf else data


# --- charsets ------------------------------------------------------------------------------

RU_LINE = "Мой заказ 8123456789012345 до сих пор не пришёл"


@pytest.mark.parametrize(
    ("name", "subject", "from_name", "in_text"),
    [
        ("ru-windows-1251.eml", "Заказ не пришёл", "Иван Петров", RU_LINE),
        ("ru-koi8-r.eml", "Возврат денег", "Мария", RU_LINE),
        ("missing-charset-8bit.eml", "no charset", "Oleg", RU_LINE),
        (
            "zh-gb2312.eml",
            "订单未收到，客户张喆、王堃",
            "张喆",
            "物流单号RR123456785CN。\n请尽快处理",
        ),
        ("zh-gbk.eml", "物流查询", "Wang", "我的订单8123456789012345还没有收到"),
        ("latin-iso-8859-1.eml", "Commande non reçue", "Renée Dupré", "payé 25 € à la réception"),
        ("latin-iso-8859-2.eml", "Zwrot pieniędzy", "Łukasz Żółw", "Zażółć gęślą jaźń"),
        ("latin-iso-8859-15.eml", "Colis à 40 €", "Chloe", "coûte 40 € et mon cœur"),
        (
            "unknown-8bit.eml",
            "Bestellung nicht erhalten – Заказ",
            "Jürgen Müller",
            "Grüße aus München! Заказ не пришёл. 订单未收到。",
        ),
        ("bogus-charset.eml", "Привет and plain", "Bogus Name", "Привет, это UTF-8"),
        ("reply-ru.eml", "Re: Ваша заявка", "Ivan", "Номер заказа 8123456789012345."),
    ],
)
def test_charsets_decode(name: str, subject: str, from_name: str, in_text: str) -> None:
    message = mail(name)
    assert message.subject == subject
    assert message.from_name == from_name
    assert in_text in message.text
    assert message.field_texts[0] == subject
    assert "\ufffd" not in message.text + message.subject + message.from_name


def test_gb2312_label_decodes_gbk_only_characters_split_across_encoded_words() -> None:
    message = mail("zh-gb2312.eml")
    assert "张喆" in message.text  # 喆 is not in GB2312: decoded as the GB18030 superset
    assert message.header("Subject") == "订单未收到，客户张喆、王堃"


def test_iso_8859_1_label_decodes_windows_1252_punctuation() -> None:
    assert "“garantie”." in mail("latin-iso-8859-1.eml").text


def test_raw_utf8_headers_smtputf8() -> None:
    message = mail("unknown-8bit.eml")
    assert message.from_address == "jürgen@bücher.example"
    assert message.header("from") == "Jürgen Müller <jürgen@bücher.example>"


def test_raw_8bit_header_uses_the_body_charset() -> None:
    # koi8-r Subject bytes are not UTF-8; the text part's declared charset decodes them.
    assert mail("reply-ru.eml").header("Subject") == "Re: Ваша заявка"


def test_bogus_and_non_text_charset_names_do_not_crash() -> None:
    message = mail("bogus-charset.eml")
    assert "plain ascii under a codec name" in message.text
    assert "Ещё один кусок в UTF-8." in message.text
    assert codec_for("zlib") is None
    assert codec_for("x-unknown") is None
    assert codec_for("unknown-8bit") is None
    assert codec_for(' "GB2312" ') == "gb18030"
    assert codec_for("\x00bad") is None


@pytest.mark.parametrize(
    ("raw", "charset", "expected"),
    [
        ("Привет".encode("cp1251"), "windows-1251", "Привет"),
        ("Привет".encode("koi8-r"), "KOI8-R", "Привет"),
        ("喆".encode("gbk"), "gb2312", "喆"),
        ("€".encode("iso-8859-15"), "iso-8859-15", "€"),
        (b"\x80", "iso-8859-1", "€"),
        (b"\x81", "iso-8859-1", "\x81"),  # undefined in cp1252: ISO-8859-1 after all
        ("Grüße".encode(), "us-ascii", "Grüße"),  # a lying us-ascii label
        ("Grüße".encode(), "foo", "Grüße"),
        (b"plain", "zlib", "plain"),
    ],
)
def test_decode_text(raw: bytes, charset: str, expected: str) -> None:
    assert decode_text(raw, charset) == expected


def test_decode_text_never_raises_on_undecodable_bytes() -> None:
    text = decode_text(b"\xff\xfe\xfd\x00\x81", "utf-8")
    assert isinstance(text, str)


# --- headers -------------------------------------------------------------------------------


def test_encoded_words_in_subject_and_display_names() -> None:
    message = mail("encoded-words.eml")
    # a snowman split across two words, an RFC 2231 language suffix, an undecodable word
    # kept as written, and an unterminated word left alone
    assert message.subject == "☃ снегзима plain =?utf-8?B?###?= =?utf-8?Q?broken_end"
    assert message.from_name == "Александр Клижентас☯"
    assert message.from_address == "alex@example.com"
    assert message.to == ("support@desk.example", "john.smith@example.com")
    assert message.cc == ("renee@example.fr",)
    assert message.message_id == "spaced-id-0001@example.com"
    assert message.date == datetime(2025, 3, 8, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=?utf-8?q?caf=C3=A9?=", "café"),
        ("=?UTF-8?B?0J/RgNC40LLQtdGC?=", "Привет"),
        ("=?utf-8?B?0J/RgNC40LLQtdGC?=   =?utf-8?B?0J/RgNC40LLQtdGC?=", "ПриветПривет"),
        ("a =?utf-8?q?b?= c", "a b c"),
        ("=?utf-8?B?0J/RgNC40LLQtdGC?=", "Привет"),
        ("=?utf-8?B?0J/RgNC40LLQtdG?=", "Приве\ufffd"),  # truncated base64: still no crash
        ("=?x-unknown?q?abc?=", "abc"),
        ("=?utf-8?Q?=E2=98?= =?utf-8?Q?=83?=", "☃"),
        ("no words here", "no words here"),
    ],
)
def test_decode_words(value: str, expected: str) -> None:
    assert decode_words(value) == expected


def test_headers_keep_order_and_are_decoded() -> None:
    message = mail("ru-windows-1251.eml")
    assert [name for name, _ in message.headers] == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
    ]
    assert message.header("FROM") == "Иван Петров <Ivan.Petrov@Example.RU>"
    assert message.header("X-Missing") is None
    assert message.from_address == "ivan.petrov@example.ru"
    assert message.to == ("disputes@desk.example",)
    assert message.content_type == "text/plain"
    assert message.date == datetime(2025, 3, 3, 10, 15, tzinfo=timezone(timedelta(hours=3)))


def test_folded_header_is_unfolded() -> None:
    message = parsed(b"From: a@b.example\r\nSubject: one\r\n two\r\n\tthree\r\n\r\nbody\r\n")
    assert message.subject == "one two\tthree"


def test_missing_message_id_is_generated_deterministically() -> None:
    data = (MAIL / "no-message-id.eml").read_bytes()
    first = parsed(data)
    digest = sha(data)[:32]
    assert first.message_id == f"generated-{digest}@desk.example"
    assert first.message_id_generated is True
    assert parsed(data).message_id == first.message_id
    changed = data + b"\r\n"
    other = parse_message(changed, desk_domain="claims.example")
    assert isinstance(other, ParsedMessage)
    assert other.message_id == f"generated-{sha(changed)[:32]}@claims.example"


def test_empty_message_id_is_generated() -> None:
    message = parsed(b"From: a@b.example\r\nMessage-ID: <  >\r\n\r\nbody\r\n")
    assert message.message_id_generated
    assert message.message_id.startswith("generated-")


def test_in_reply_to_and_references_tolerate_garbage() -> None:
    message = mail("no-message-id.eml")
    assert message.in_reply_to == ("CD-000042.abc@desk.example",)
    assert message.references == (
        "first@example.com",
        "second@example.com",
        "third@example.com",
        "fourth@example.com",
    )
    assert message.date is None  # "not a date at all"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<a@b> <c@d>", ("a@b", "c@d")),
        ("<a@b>,<c@d>;<a@b>", ("a@b", "c@d")),
        ("a@b c@d", ("a@b", "c@d")),
        ("<a@b> (Your message of Mon, 3 Mar 2025 x@y)", ("a@b",)),
        ("garbage without ids", ()),
        ("<>", ()),
        ("", ()),
    ],
)
def test_message_ids(value: str, expected: tuple[str, ...]) -> None:
    assert message_ids(value) == expected


def test_message_id_without_brackets() -> None:
    assert message_id("  abc@def  ") == "abc@def"
    assert message_id("<abc@def> trailing") == "abc@def"
    assert message_id(None) == ""


def test_sender_falls_back_to_sender_then_reply_to() -> None:
    message = parsed(b"Sender: Robot <Robot@Example.com>\r\nReply-To: r@x.example\r\n\r\nx\r\n")
    assert (message.from_name, message.from_address) == ("Robot", "robot@example.com")
    message = parsed(b"From: MAILER-DAEMON\r\nReply-To: Back <back@x.example>\r\n\r\nx\r\n")
    assert message.from_address == "back@x.example"


def test_no_sender_address_is_the_leads_call() -> None:
    message = parsed(b"From: undisclosed\r\nSubject: hi\r\n\r\nbody\r\n")
    assert message.from_address == ""
    assert message.from_name == ""


# --- bodies --------------------------------------------------------------------------------


def test_html_only_mail_becomes_text_with_links() -> None:
    message = mail("html-only.eml")
    assert message.content_type == "text/html"
    for hidden in ("Title must not appear", "alert", "color: red"):
        assert hidden not in message.text
    assert message.text.startswith("Добрый день!\n\nТовар по ссылке не пришёл")
    assert "Заказ 8123456789012345\nТрек RR123456785CN" in message.text  # <br>
    assert "первое\nвторое" in message.text  # <li>
    assert message.links == (
        "https://shop.example.com/item/12345",
        "https://shop.example.com/store/777",
    )
    assert "Your parcel was shipped" not in message.own_text  # <blockquote> is a quote
    assert message.quotes[0].attribution.startswith("On Mon, 3 Mar 2025 at 10:00, Seller")
    assert message.quotes[0].text == "Your parcel was shipped.\nBest, Seller"
    assert message.field_texts == ("HTML only", message.text)


def test_multipart_alternative_prefers_plain_and_keeps_both_for_fields() -> None:
    message = mail("alternative.eml")
    assert message.text == "Plain version: order 8123456789012345.\n\nSent from my iPhone"
    assert message.own_text == "Plain version: order 8123456789012345."
    assert "HTML version: see item." in message.field_texts
    assert message.links == ("https://shop.example.com/item/999",)
    assert message.from_name == "Buyer, Anna"


def test_attachments_inline_images_names_sizes_and_hashes() -> None:
    message = mail("attachments.eml")
    assert message.text == "Photos attached. Logo below."
    got = [
        (a.filename, a.content_type, a.size, a.inline, a.content_id) for a in message.attachments
    ]
    assert got == [
        ("attachment-1.png", "image/png", len(LOGO), True, "logo-1@example.com"),
        ("passwd", "image/jpeg", 1024, False, None),
        ("заказ 1.pdf", "application/pdf", 116, False, None),
        ("фото 2.png", "image/png", len(LOGO), False, None),
        ("x.exe", "application/octet-stream", len(BIN), False, None),
        ("attachment-6.bin", "application/octet-stream", len(BIN), False, None),
        ("attachment-7.gif", "image/gif", 36, True, "gif-2@example.com"),
        ("order.txt", "text/plain", len("заказ 8123456789012345".encode()), False, None),
    ]
    assert message.attachments[0].sha256 == sha(LOGO)
    assert message.attachments[1].sha256 == sha(PHOTO)
    assert message.attachments[4].sha256 == sha(BIN)
    assert "заказ 8123456789012345" in message.field_texts  # text attachments are read
    assert "заказ" not in message.text


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        ("evil\x00na\x07me\r\n.pdf", "evilname.pdf"),
        ("..", ""),
        (" . ", ""),
        (".htaccess", "htaccess"),
        ("CON", "CON_"),
        ("фото.jpg", "фото.jpg"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_forwarded_message_texts_and_attachments_count() -> None:
    message = mail("forwarded.eml")
    assert message.text == "See the seller's mail below, it never arrived."
    assert message.own_text == message.text
    assert message.field_texts[0] == "Fwd: seller mail"
    assert "Ваш заказ 8123456789012345 отправлен" in message.field_texts  # inner subject
    assert "Трек-номер RR123456785CN." in message.field_texts
    assert "Track here" in message.field_texts
    assert message.links == ("https://track.example.com/RR123456785CN",)
    assert [(a.filename, a.sha256) for a in message.attachments] == [("receipt.jpg", sha(PHOTO))]


def test_reply_own_text_and_quotes() -> None:
    message = mail("reply-ru.eml")
    assert message.own_text == "Номер заказа 8123456789012345."
    assert (
        message.quotes[0].attribution == '11.03.2025, 09:00, "Claims Desk" <support@desk.example>:'
    )
    assert message.quotes[0].text == "Please write in English."
    assert message.in_reply_to == ("CD-000007.x@desk.example",)


# --- the flanker and CPython sample sets ---------------------------------------------------


@pytest.mark.parametrize("crlf", [False, True], ids=["as-stored", "crlf"])
@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: str(p.relative_to(SAMPLES)))
def test_every_sample_parses_without_raising(path: Path, crlf: bool) -> None:
    result = parse_message(read_sample(path, crlf=crlf))
    assert isinstance(result, ParsedMessage | Unparseable)
    if isinstance(result, ParsedMessage):
        assert result.field_texts[0] == result.subject
        assert all(isinstance(t, str) for t in result.field_texts)


@pytest.mark.parametrize("crlf", [False, True], ids=["as-stored", "crlf"])
def test_endless_sample_is_refused_quickly(crlf: bool) -> None:
    data = read_sample(ENDLESS, crlf=crlf)
    started = time.perf_counter()
    result = parse_message(data)
    elapsed = time.perf_counter() - started
    assert result == Unparseable(f"more than {MAX_PARTS} MIME parts")
    assert elapsed < SLOW_SECONDS, f"took {elapsed:.2f} s"


def test_expected_notes_decoded_headers() -> None:
    enclosed = sample("flanker/enclosed.eml", crlf=True)
    assert enclosed.header("To") == '"Александр Клижентас☯" <bob@example.com>'
    assert enclosed.to == ("bob@example.com",)
    assert "Thanks!" in enclosed.field_texts  # the enclosed thanks.eml
    from_encoding = sample("flanker/from-encoding.eml", crlf=True)
    assert (from_encoding.from_name, from_encoding.from_address) == (
        "Ingo Lütkebohle",
        "ingo@blank.pages.de",
    )
    no_ctype = sample("flanker/no-ctype.eml", crlf=True)
    assert (no_ctype.content_type, no_ctype.subject) == ("text/plain", "Testing message parsing")
    apache = sample("flanker/apache-message-news-mime.eml", crlf=True)
    assert apache.subject == "[Fwd: Netscape Enterprise vs. Apache Secure]"


@pytest.mark.parametrize("name", ["enclosed.eml", "enclosed-global.eml", "enclosed-broken.eml"])
def test_expected_notes_enclosed_message_texts(name: str) -> None:
    message = sample(f"flanker/{name}", crlf=True)
    assert message.field_texts[:3] == ("Wow", "Hello\n", "Thanks!")
    assert any(t.startswith("dudes... you're kicking ass.") for t in message.field_texts)
    assert message.text == "Hello\n"  # the enclosed message is not the body


def test_expected_notes_structures() -> None:
    dashed = sample("flanker/dashed-boundaries.eml", crlf=True)
    assert dashed.content_type == "multipart/alternative"
    assert len(dashed.field_texts) == 3  # subject, text/plain, text/html
    assert sample("flanker/8bitmime.eml").content_type == "multipart/alternative"
    delayed = sample("flanker/bounce/delayed.eml", crlf=True)
    assert delayed.subject == "Returned mail: Cannot send message for 5 days"
    assert "Hello, how are you" in delayed.field_texts
    assert sample("flanker/missing-final-boundary.eml", crlf=True).text.strip() == "Some body"
    assert sample("flanker/missing-boundaries.eml").text.strip()
    assert sample("cpython-email/msg_03.txt").content_type == "text/plain"
    assert "--BOUNDARY" in sample("cpython-email/msg_31.txt").text
    assert sample("cpython-email/msg_47.txt").subject == ""
    russian = sample("flanker/russian-attachment-yahoo.eml")
    assert russian.attachments[0].filename.startswith("Картинка с очень, очень длинным")
    iphone = sample("flanker/iphone.eml")
    assert [(a.filename, a.content_type) for a in iphone.attachments] == [
        ("photo.JPG", "image/jpeg")
    ]


@pytest.mark.parametrize(
    ("name", "defects"),
    [
        ("msg_35.txt", {"MissingHeaderBodySeparatorDefect"}),
        ("msg_41.txt", {"NoBoundaryInMultipartDefect", "MultipartInvariantViolationDefect"}),
        ("msg_15.txt", {"StartBoundaryNotFoundDefect"}),
        ("msg_42.txt", {"StartBoundaryNotFoundDefect"}),
    ],
)
def test_expected_notes_defects(name: str, defects: set[str]) -> None:
    assert defects <= set(sample(f"cpython-email/{name}").defects)


def test_no_blank_line_after_headers() -> None:
    message = sample("cpython-email/msg_35.txt")
    assert message.text == "counter to RFC 2822, there's no separating newline here\n"


# --- refusals and limits -------------------------------------------------------------------


def nested_rfc822(depth: int) -> bytes:
    inner = b"Subject: leaf\r\n\r\nleaf body\r\n"
    for level in range(depth):
        inner = b"Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n" % level + inner
    return b"From: a@b.example\r\n" + inner


def nested_multipart(depth: int, body: bytes = b"leaf\r\n") -> bytes:
    inner = b"Content-Type: text/plain\r\n\r\n" + body
    for level in range(depth):
        boundary = b"b%d" % level
        inner = (
            b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n--" + boundary
            + b"\r\n" + inner + b"--" + boundary + b"--\r\n"
        )  # fmt: skip
    return b"From: a@b.example\r\n" + inner


@pytest.mark.parametrize("build", [nested_rfc822, nested_multipart])
def test_nesting_up_to_the_limit_is_parsed(build) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(parse_message(build(MAX_DEPTH)), ParsedMessage)


@pytest.mark.parametrize("build", [nested_rfc822, nested_multipart])
def test_nesting_beyond_the_limit_is_refused(build) -> None:  # type: ignore[no-untyped-def]
    assert parse_message(build(MAX_DEPTH + 1)) == Unparseable(
        f"MIME parts nested deeper than {MAX_DEPTH}"
    )


def test_nesting_beyond_the_stdlib_recursion_limit_is_refused() -> None:
    # Unrefused, the stdlib parser would hit RecursionError here (also caught, as a
    # defence); the container count refuses it before parsing.
    started = time.perf_counter()
    result = parse_message(nested_rfc822(5000))
    assert result == Unparseable(f"more than {MAX_CONTAINERS} multipart/message containers")
    assert time.perf_counter() - started < SLOW_SECONDS


def test_many_containers_are_refused_before_parsing() -> None:
    data = nested_multipart(400, b"a line of body text\r\n" * 50_000)
    started = time.perf_counter()
    result = parse_message(data)
    assert result == Unparseable(f"more than {MAX_CONTAINERS} multipart/message containers")
    assert time.perf_counter() - started < SLOW_SECONDS


def test_too_many_parts_are_refused() -> None:
    parts = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(MAX_PARTS))
    data = (
        b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=p\r\n\r\n"
        + parts
        + b"--p--\r\n"
    )
    assert parse_message(data) == Unparseable(f"more than {MAX_PARTS} MIME parts")


@pytest.mark.parametrize(
    ("data", "text"),
    [
        # found by fuzzing: the stdlib raised inside get_boundary() / get_payload()
        (
            b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary*=\xe9\xe8''abc\r\n"
            b"\r\n--abc\r\nContent-Type: text/plain\r\n\r\nhello\r\n--abc--\r\n",
            "hello",
        ),
        (
            b"From: a@b.example\r\nContent-Type: text/plain; charset*=\xff''x\r\n\r\n"
            b"Gr\xc3\xbc\xc3\x9fe\r\n",
            "Grüße\n",
        ),
        (
            b"From: a@b.example\r\nContent-Type: text/plain; charset*=utf-8''utf-8\r\n\r\n"
            b"Gr\xc3\xbc\xc3\x9fe\r\n",
            "Grüße\n",
        ),
    ],
)
def test_8bit_and_rfc2231_parameters_do_not_lose_the_message(data: bytes, text: str) -> None:
    assert parsed(data).text == text


def test_raw_utf8_attachment_name() -> None:
    data = (
        b'From: a@b.example\r\nContent-Type: application/pdf; name="\xd1\x84\xd0\xbe\xd1\x82'
        b'\xd0\xbe.pdf"\r\n\r\n%PDF\r\n'
    )
    assert [a.filename for a in parsed(data).attachments] == ["фото.pdf"]


@pytest.mark.parametrize("data", [b"", b"\r\n\r\n", b"\x00\x01\x02", b"just some text\n", b" : \n"])
def test_bytes_without_header_fields_are_unparseable(data: bytes) -> None:
    result = parse_message(data)
    assert isinstance(result, Unparseable)
    assert result.reason == "no header fields: not a mail message"


# --- property tests: nothing ever escapes parse_message ------------------------------------

SMALL_SAMPLES = [
    p.read_bytes()
    for p in [*SAMPLE_FILES, *sorted(MAIL.glob("*.eml"))]
    if p.stat().st_size < 20_000
]


def assert_clean(result: ParsedMessage | Unparseable) -> None:
    """Every string is storable: valid UTF-8 (no lone surrogates) and without NUL."""
    assert isinstance(result, ParsedMessage | Unparseable)
    if isinstance(result, Unparseable):
        return
    strings = [
        result.message_id,
        result.subject,
        result.from_address,
        result.from_name,
        result.text,
        result.own_text,
        *result.to,
        *result.cc,
        *result.field_texts,
        *result.links,
        *(a.filename for a in result.attachments),
        *(v for pair in result.headers for v in pair),
        *(q.text + q.attribution for q in result.quotes),
    ]
    for value in strings:
        value.encode("utf-8")
        assert "\x00" not in value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    assert_clean(parse_message(data))


@st.composite
def mutated_samples(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SMALL_SAMPLES)))
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "duplicate"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(
                st.one_of(
                    st.binary(max_size=40),
                    st.sampled_from(
                        [b"\r\n", b"\r\n\r\n", b"--", b"=?", b"?=", b"=?utf-8?b?", b"\xff\xfe",
                         b"Content-Type: multipart/mixed; boundary=x\r\n", b"\r\n--x\r\n",
                         b"Content-Type: message/rfc822\r\n\r\n", b"charset=\"zlib\"", b"<", b">",
                         b"Content-Transfer-Encoding: base64\r\n", b"filename*=utf-8''%ff%00"]
                    ),
                )
            )  # fmt: skip
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 200))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "duplicate":
            end = min(len(data), at + draw(st.integers(1, 500)))
            data[at:at] = data[at:end]
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_samples())
def test_mutated_real_messages_never_raise(data: bytes) -> None:
    assert_clean(parse_message(data))


HEADER_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=80)


@settings(max_examples=200, deadline=None)
@given(
    subject=HEADER_TEXT,
    sender=HEADER_TEXT,
    ctype=st.sampled_from(["text/plain", "text/html", "multipart/mixed", "image/png", "x/y", ""]),
    params=HEADER_TEXT,
    body=st.binary(max_size=500),
)
def test_random_header_values_never_raise(
    subject: str, sender: str, ctype: str, params: str, body: bytes
) -> None:
    data = (
        f"From: {sender}\r\nSubject: {subject}\r\nContent-Type: {ctype}; {params}\r\n"
        f"Message-ID: <{subject}>\r\nReferences: {sender}\r\nDate: {subject}\r\n\r\n"
    ).encode("utf-8", errors="surrogateescape") + body
    assert_clean(parse_message(data))


def test_parse_is_fast_for_a_typical_message() -> None:
    """Prints the figure for the report; asserts only a very loose bound (no flakiness)."""
    data = typical_message()
    assert 2_500 < len(data) < 3_500
    parse_message(data)
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        parse_message(data)
    per_message = (time.perf_counter() - started) / rounds
    print(f"parse_message: {per_message * 1000:.3f} ms per {len(data)}-byte message")
    assert per_message < 0.05


def typical_message() -> bytes:
    """A ~3 KB multipart/alternative reply: plain + HTML, a quote, a signature."""
    plain = (
        "Hello,\n\nMy order 8123456789012345 has not arrived. The tracking number "
        "RR123456785CN has shown no movement for three weeks. The product page is "
        "https://shop.example.com/item/12345 and the store https://shop.example.com/store/777.\n\n"
        "Please help.\n\nBest regards,\nAnna\n\n"
        "On Mon, 3 Mar 2025 at 10:00, Claims Desk <support@desk.example> wrote:\n"
        + "> Thank you for contacting the claims desk. Please send the order number.\n"
        * 9
    )
    html = "<html><body><p>" + plain.replace("\n", "<br>\n") + "</p></body></html>"
    headers = (
        "Received: from mx.example.com (mx.example.com [192.0.2.1]) by desk.example\r\n"
        "\twith ESMTPS id abc123; Mon, 10 Mar 2025 10:00:00 +0000\r\n"
        "From: =?utf-8?q?Anna_M=C3=BCller?= <anna@example.com>\r\n"
        "To: disputes@desk.example\r\nSubject: Re: [CD-000042] Order not received\r\n"
        "Date: Mon, 10 Mar 2025 10:00:00 +0000\r\nMessage-ID: <typical-0001@example.com>\r\n"
        "In-Reply-To: <CD-000042.1@desk.example>\r\n"
        "References: <first@example.com> <CD-000042.1@desk.example>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary="alt"\r\n\r\n'
    )
    body = (
        f"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{plain}\r\n"
        f"--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--alt--\r\n"
    )
    return (headers + body).encode("utf-8")


def test_typical_message_facts() -> None:
    message = parsed(typical_message())
    assert message.own_text.endswith("Best regards,\nAnna")
    assert message.quotes[0].attribution.startswith("On Mon, 3 Mar 2025")
    assert message.from_name == "Anna Müller"
    assert message.references == ("first@example.com", "CD-000042.1@desk.example")
    assert re.search(r"RR123456785CN", message.field_texts[2])


# --- shortcuts agree with the general path -------------------------------------------------

PLAIN_ATOM = st.text(alphabet="abXY09-_+'é", min_size=1, max_size=4)
ODD_ATOM = st.text("a.\u00a0\x00\\ ", max_size=3)  # what makes an address not simple
ADDRESS_ATOMS = st.one_of(PLAIN_ATOM, ODD_ATOM)
ADDRESS_SPACE = st.sampled_from(["", " ", "\t", "  "])


@st.composite
def address_lists(draw: st.DrawFn) -> list[str]:
    """Header values of simple addresses, or of addresses with the characters that make
    them not simple."""
    atoms = ADDRESS_ATOMS if draw(st.booleans()) else PLAIN_ATOM

    def address() -> str:
        local = ".".join(draw(st.lists(atoms, min_size=1, max_size=3)))
        domain = ".".join(draw(st.lists(atoms, min_size=1, max_size=3)))
        return local + draw(st.sampled_from(["@"] * 8 + ["", "@@", " @"])) + domain

    def item() -> str:
        pad = draw(ADDRESS_SPACE)
        if draw(st.booleans()):
            return pad + address() + draw(ADDRESS_SPACE)
        name = draw(ADDRESS_SPACE).join(draw(st.lists(atoms, max_size=3)))
        return f"{pad}{name}{draw(ADDRESS_SPACE)}<{address()}>{draw(ADDRESS_SPACE)}"

    count = draw(st.integers(1, 2))
    return [",".join(item() for _ in range(draw(st.integers(1, 3)))) for _ in range(count)]


@settings(max_examples=500, deadline=None)
@given(st.one_of(address_lists(), st.lists(HEADER_TEXT, min_size=1, max_size=2)))
def test_simple_addresses_are_what_getaddresses_finds(values: list[str]) -> None:
    found = simple_addresses(values)
    if found is not None:
        assert found == getaddresses(values)


def test_simple_addresses_take_the_usual_shapes() -> None:
    assert simple_addresses(["Anna M. <anna@example.com>, b@example.org"]) == [
        ("Anna M.", "anna@example.com"),
        ("", "b@example.org"),
    ]
    assert simple_addresses(['"Quoted" <a@b>']) is None
    assert simple_addresses(["a@b (comment)"]) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([*"ab =?\r\n\x00\t", "=?utf-8?q?x?=", "é"])).map("".join))
def test_plain_header_values_skip_decoding(value: str) -> None:
    general = clean(decode_words(unescape_8bit(unfold(value)))).strip()
    assert decode_value(value) == general


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" a\t\n\r\f\v\u00a0\u200b\x1c\x1f\u2003\x85Ж"))))
def test_html_whitespace_collapse_is_the_regex(text: str) -> None:
    assert _collapse(text) == _SPACES.sub(" ", text).strip()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_safe_filename_is_the_sanitizers(name: str) -> None:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    try:
        expected = sanitize_filename(base, replacement_text="").strip().lstrip(".").strip()
    except Exception:
        expected = ""
    assert safe_filename(name) == expected


def test_cached_charsets_are_what_the_parts_declare() -> None:
    for path in [*SAMPLE_FILES, *sorted(MAIL.glob("*.eml"))]:
        for part in _PARSER.parsestr(path.read_bytes().decode("ascii", "surrogateescape")).walk():
            try:
                expected = part.get_content_charset()
            except Exception:
                expected = None
            assert _charset(part) == expected


@settings(max_examples=500)
@given(
    st.text(st.sampled_from(["a", " ", "\x00", "\n", "é", "\udce9", "\ud800", "漢"]), max_size=12)
)
def test_clean_takes_ascii_text_as_the_general_path_does(text: str) -> None:
    general = text.replace("\x00", "")
    try:
        general.encode("utf-8")
    except UnicodeEncodeError:
        general = general.encode("utf-8", errors="replace").decode("utf-8")
    assert hdr.clean(text) == general


@settings(max_examples=1000)
@given(
    st.sampled_from(["", "Sun, ", "Mon, ", "Xyz, ", "sun, "]),
    st.integers(0, 40),
    st.sampled_from(["Jan", "Feb", "Mar", "Dec", "jan", "May"]),
    st.integers(0, 10000),
    st.integers(0, 99),
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from(["+", "-"]),
    st.integers(0, 9999),
    st.sampled_from(["", " ", " (UTC)"]),
)
def test_usual_dates_are_read_as_the_stdlib_reads_them(
    day_name: str, day: int, month: str, year: int, hh: int, mm: int, ss: int, sign: str,
    zone: int, tail: str,
) -> None:  # fmt: skip
    from email.utils import parsedate_to_datetime

    value = f"{day_name}{day:02d} {month} {year:04d} {hh:02d}:{mm:02d}:{ss:02d} {sign}{zone:04d}"
    value = (value + tail).strip()

    def outcome(parse: Any) -> Any:
        try:
            parsed = parse(value)
        except Exception as exc:
            return type(exc)
        return (parsed, repr(parsed.tzinfo) if parsed else None)

    assert outcome(hdr._datetime) == outcome(parsedate_to_datetime)
