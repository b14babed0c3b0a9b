"""Writes the sample messages in this folder, byte for byte (run: python make_mail.py).

Kept so the exact bytes (legacy charsets, 8-bit headers, hostile filenames) can be
reproduced and extended; the .eml files are what the tests read. See README.md.
"""

import base64
import quopri
from pathlib import Path

out = Path(__file__).resolve().parent


def b64w(text, charset):  # one encoded word
    return f"=?{charset}?B?{base64.b64encode(text.encode(charset)).decode()}?="


def qw(text, charset):
    q = quopri.encodestring(text.encode(charset), header=True).decode()
    return f"=?{charset}?Q?{q}?="


def b64body(data: bytes) -> bytes:
    return base64.encodebytes(data)  # 76-character lines


CRLF = b"\r\n"


def msg(headers: list[str | bytes], body: bytes) -> bytes:
    hb = [h.encode("ascii") if isinstance(h, str) else h for h in headers]
    return CRLF.join(hb) + CRLF + CRLF + body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


RU_BODY = (
    "Здравствуйте!\n\nМой заказ 8123456789012345 до сих пор не пришёл, хотя прошло уже "
    "больше сорока дней. Трек-номер RR123456785CN не отслеживается.\n"
    "Прошу вернуть деньги.\n\nС уважением,\nИван Петров\n"
)

# 1. windows-1251, 8bit body, encoded-word Subject and display name
(out / "ru-windows-1251.eml").write_bytes(
    msg(
        [
            f"From: {b64w('Иван Петров', 'windows-1251')} <Ivan.Petrov@Example.RU>",
            "To: Disputes <Disputes@Desk.Example>",
            f"Subject: {b64w('Заказ не пришёл', 'windows-1251')}",
            "Date: Mon, 03 Mar 2025 10:15:00 +0300",
            "Message-ID: <ru-1251-0001@example.ru>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=windows-1251",
            "Content-Transfer-Encoding: 8bit",
        ],
        RU_BODY.encode("windows-1251"),
    )
)

# 2. koi8-r, quoted-printable body, Q-encoded subject
(out / "ru-koi8-r.eml").write_bytes(
    msg(
        [
            f"From: {qw('Мария', 'koi8-r')} <maria@example.ru>",
            "To: support@desk.example",
            f"Subject: {qw('Возврат денег', 'koi8-r')}",
            "Date: Tue, 04 Mar 2025 09:00:00 +0300",
            "Message-ID: <ru-koi8-0001@example.ru>",
            "MIME-Version: 1.0",
            'Content-Type: text/plain; charset="koi8-r"',
            "Content-Transfer-Encoding: quoted-printable",
        ],
        quopri.encodestring(RU_BODY.encode("koi8-r")),
    )
)

ZH_BODY = "您好！\n\n我的订单8123456789012345还没有收到，物流单号RR123456785CN。\n请尽快处理，谢谢。\n\n张喆\n"
# 3. gb2312 label, but body and subject hold GBK-only characters (喆, 堃): gb18030 superset
subj = "订单未收到，客户张喆、王堃"
sb = subj.encode("gbk")
half = 8  # split the subject bytes across two encoded words on a character boundary
(out / "zh-gb2312.eml").write_bytes(
    msg(
        [
            "From: =?gb2312?B?"
            + base64.b64encode("张喆".encode("gbk")).decode()
            + "?= <zhang@example.cn>",
            "To: support@desk.example",
            "Subject: =?gb2312?B?"
            + base64.b64encode(sb[:half]).decode()
            + "?=\r\n =?gb2312?B?"
            + base64.b64encode(sb[half:]).decode()
            + "?=",
            "Date: Wed, 05 Mar 2025 08:00:00 +0800",
            "Message-ID: <zh-gb2312-0001@example.cn>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=gb2312",
            "Content-Transfer-Encoding: base64",
        ],
        b64body(ZH_BODY.encode("gbk")),
    )
)

# 4. gbk, 8bit body, raw 8-bit GBK subject would be ambiguous: use encoded word
(out / "zh-gbk.eml").write_bytes(
    msg(
        [
            "From: Wang <wang@example.cn>",
            "To: support@desk.example",
            f"Subject: {b64w('物流查询', 'gbk')}",
            "Date: Wed, 05 Mar 2025 08:30:00 +0800",
            "Message-ID: <zh-gbk-0001@example.cn>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=GBK",
            "Content-Transfer-Encoding: 8bit",
        ],
        ZH_BODY.encode("gbk"),
    )
)

# 5. iso-8859-1 (with windows-1252 bytes 0x80 and 0x93/0x94 as senders really send)
fr_bytes = (
    "Bonjour,\n\nMa commande n'est pas arrivée. J'ai payé 25 ".encode("latin-1")
    + b"\x80"
    + " à la réception ".encode("latin-1")
    + b"\x93garantie\x94.\n"
    + "Danke schön, Grüße.\n".encode("latin-1")
)
(out / "latin-iso-8859-1.eml").write_bytes(
    msg(
        [
            "From: =?iso-8859-1?Q?Ren=E9e_Dupr=E9?= <renee@example.fr>",
            "To: support@desk.example",
            "Subject: =?ISO-8859-1?Q?Commande_non_re=E7ue?=",
            "Date: Thu, 06 Mar 2025 12:00:00 +0100",
            "Message-ID: <fr-0001@example.fr>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=iso-8859-1",
            "Content-Transfer-Encoding: 8bit",
        ],
        fr_bytes,
    )
)

# 6. iso-8859-2
PL = "Dzień dobry,\n\nZamówienie nie dotarło. Zażółć gęślą jaźń. Proszę o zwrot pieniędzy.\n"
(out / "latin-iso-8859-2.eml").write_bytes(
    msg(
        [
            f"From: {qw('Łukasz Żółw', 'iso-8859-2')} <lukasz@example.pl>",
            "To: support@desk.example",
            f"Subject: {qw('Zwrot pieniędzy', 'iso-8859-2')}",
            "Date: Thu, 06 Mar 2025 13:00:00 +0100",
            "Message-ID: <pl-0001@example.pl>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=iso-8859-2",
            "Content-Transfer-Encoding: 8bit",
        ],
        PL.encode("iso-8859-2"),
    )
)

# 7. iso-8859-15 (euro at 0xA4, oe ligature at 0xBD)
EU = "Bonjour,\n\nLe colis coûte 40 € et mon cœur est brisé.\n"
(out / "latin-iso-8859-15.eml").write_bytes(
    msg(
        [
            "From: Chloe <chloe@example.fr>",
            "To: support@desk.example",
            f"Subject: {qw('Colis à 40 €', 'iso-8859-15')}",
            "Date: Thu, 06 Mar 2025 14:00:00 +0100",
            "Message-ID: <fr-0002@example.fr>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=ISO-8859-15",
            "Content-Transfer-Encoding: quoted-printable",
        ],
        quopri.encodestring(EU.encode("iso-8859-15")),
    )
)

# 8. unknown-8bit with UTF-8 bytes; raw 8-bit UTF-8 headers (SMTPUTF8)
U8 = "Grüße aus München! Заказ не пришёл. 订单未收到。\n"
(out / "unknown-8bit.eml").write_bytes(
    msg(
        [
            b"From: " + "Jürgen Müller <jürgen@bücher.example>".encode(),
            b"To: support@desk.example",
            b"Subject: " + "Bestellung nicht erhalten – Заказ".encode(),
            b"Date: Fri, 07 Mar 2025 10:00:00 +0100",
            b"Message-ID: <u8-0001@example.de>",
            b"MIME-Version: 1.0",
            b"Content-Type: text/plain; charset=unknown-8bit",
            b"Content-Transfer-Encoding: 8bit",
        ],
        U8.encode("utf-8"),
    )
)

# 9. no charset at all, 8-bit windows-1251 Russian: only detection can tell
(out / "missing-charset-8bit.eml").write_bytes(
    msg(
        [
            "From: Oleg <oleg@example.ru>",
            "To: support@desk.example",
            "Subject: no charset",
            "Date: Fri, 07 Mar 2025 11:00:00 +0300",
            "Message-ID: <ru-nocharset-0001@example.ru>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain",
            "Content-Transfer-Encoding: 8bit",
        ],
        RU_BODY.encode("windows-1251"),
    )
)

# 10. bogus charsets: unknown name in the body, a non-text codec name, unknown in an encoded word
(out / "bogus-charset.eml").write_bytes(
    msg(
        [
            "From: =?x-unknown?Q?Bogus_Name?= <bogus@example.com>",
            "To: support@desk.example",
            "Subject: =?foo?B?"
            + base64.b64encode("Привет".encode()).decode()
            + "?= and =?zlib?Q?plain?=",
            "Date: Fri, 07 Mar 2025 12:00:00 +0000",
            "Message-ID: <bogus-0001@example.com>",
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="b1"',
        ],
        (
            b'--b1\r\nContent-Type: text/plain; charset="x-unknown"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
            + "Привет, это UTF-8 под чужим именем.\n".encode()
            + b"\r\n--b1\r\nContent-Type: text/plain; charset=zlib\r\n\r\nplain ascii under a codec name\r\n"
            + b'--b1\r\nContent-Type: text/plain; charset="foo"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
            + b64body("Ещё один кусок в UTF-8.\n".encode())
            + b"--b1--\r\n"
        ),
    )
)

# 11. encoded-word torture: split multibyte char across words, RFC 2231 language, broken words
snow = "☃ снег".encode()
(out / "encoded-words.eml").write_bytes(
    msg(
        [
            'From: "=?utf-8?b?0JDQu9C10LrRgdCw0L3QtNGAINCa0LvQuNC20LXQvdGC0LDRgeKYrw==?=" <ALEX@Example.com>',
            'To: =?utf-8?q?Support_Desk?= <support@desk.example>, "Smith, John" <John.Smith@Example.com>',
            "Cc: =?iso-8859-1?q?Ren=E9e?= <renee@example.fr>, undisclosed-recipients:;",
            "Subject: =?UTF-8?B?"
            + base64.b64encode(snow[:2]).decode()
            + "?= =?UTF-8?B?"
            + base64.b64encode(snow[2:]).decode()
            + "?= =?utf-8*ru?Q?=D0=B7=D0=B8=D0=BC=D0=B0?= plain =?utf-8?B?###?= =?utf-8?Q?broken_end",
            "Date: Sat, 08 Mar 2025 10:00:00 -0000",
            "Message-ID:   < spaced-id-0001@example.com >  ",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
        ],
        b"Body.\n",
    )
)

# 12. HTML only; charset only in <meta>; script/style/head dropped; links; Gmail-style quote
HTML = """<!DOCTYPE html><html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">
<title>Title must not appear</title><style>p { color: red; }</style><script>alert('no');</script></head>
<body><p>Добрый день!</p><p>Товар <a href="https://shop.example.com/item/12345">по ссылке</a> не пришёл,
магазин: <a href=" https://shop.example.com/store/777 ">Store</a>.</p>
<div>Заказ 8123456789012345<br>Трек RR123456785CN</div>
<ul><li>первое</li><li>второе</li></ul>
<table><tr><td>ячейка 1</td><td>ячейка 2</td></tr></table>
<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Mon, 3 Mar 2025 at 10:00, Seller &lt;seller@shop.example.com&gt; wrote:<br></div>
<blockquote class="gmail_quote">Your parcel was shipped.<br>Best, Seller</blockquote></div>
</body></html>"""
(out / "html-only.eml").write_bytes(
    msg(
        [
            "From: Buyer <buyer@example.ru>",
            "To: complaints@desk.example",
            "Subject: HTML only",
            "Date: Sat, 08 Mar 2025 11:00:00 +0300",
            "Message-ID: <html-only-0001@example.ru>",
            "MIME-Version: 1.0",
            "Content-Type: text/html",
            "Content-Transfer-Encoding: quoted-printable",
        ],
        quopri.encodestring(HTML.encode("windows-1251")),
    )
)

# 13. multipart/alternative: plain and HTML differ so both can be found in field_texts
(out / "alternative.eml").write_bytes(
    msg(
        [
            'From: "Buyer, Anna" <anna@example.com>',
            "To: disputes@desk.example",
            "Subject: Item not as described",
            "Date: Sun, 09 Mar 2025 10:00:00 +0000",
            "Message-ID: <alt-0001@example.com>",
            "MIME-Version: 1.0",
            'Content-Type: multipart/alternative; boundary="alt"',
        ],
        b"""This is a multi-part message in MIME format.
--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Plain version: order 8123456789012345.

Sent from my iPhone
--alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 7bit

<html><body><p>HTML version: see <a href="https://shop.example.com/item/999">item</a>.</p></body></html>
--alt--
""",
    )
)

# 14. attachments and inline images
PHOTO = bytes(range(256)) * 4  # 1024 bytes
PDF = b"%PDF-1.4\n" + b"x" * 100 + b"\n%%EOF\n"
BIN = b"\x00\x01\x02binary\xff"
LOGO = b"\x89PNG\r\n\x1a\n" + b"\x00" * 50
INLINE = b"GIF89a" + b"\x01" * 30
TXT = "заказ 8123456789012345\n".encode()
att = b"".join(
    [
        b'--mixed\r\nContent-Type: multipart/related; boundary="rel"\r\n\r\n',
        b'--rel\r\nContent-Type: multipart/alternative; boundary="alt"\r\n\r\n',
        b"--alt\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nPhotos attached. Logo below.\r\n",
        b'--alt\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<p>Photos attached. <img src="cid:logo-1@example.com"> Logo below.</p>\r\n',
        b"--alt--\r\n",
        b"--rel\r\nContent-Type: image/png\r\nContent-ID: <logo-1@example.com>\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64body(LOGO),
        b"--rel--\r\n",
        b'--mixed\r\nContent-Type: image/jpeg; name="../../etc/passwd"\r\nContent-Disposition: attachment; filename="../../etc/passwd"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + b64body(PHOTO),
        b"--mixed\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename*=UTF-8''%D0%B7%D0%B0%D0%BA%D0%B0%D0%B7%201.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64body(PDF),
        b'--mixed\r\nContent-Type: image/png; name="=?utf-8?B?'
        + base64.b64encode("фото\x07\x1b 2.png".encode())
        + b'?="\r\nContent-Disposition: attachment\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + b64body(LOGO),
        b'--mixed\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="evil\tname\\\\..\\\\x.exe"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + b64body(BIN),
        b"--mixed\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + b64body(BIN),
        b'--mixed\r\nContent-Type: image/gif\r\nContent-Disposition: inline; filename=".."\r\nContent-ID: <gif-2@example.com>\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + b64body(INLINE),
        b'--mixed\r\nContent-Type: text/plain; charset=utf-8; name="order.txt"\r\nContent-Disposition: attachment; filename="order.txt"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
        + TXT,
        b"--mixed--\r\n",
    ]
)
(out / "attachments.eml").write_bytes(
    msg(
        [
            "From: Photo Buyer <photos@example.com>",
            "To: disputes@desk.example",
            "Subject: Photos of the damage",
            "Date: Sun, 09 Mar 2025 11:00:00 +0000",
            "Message-ID: <att-0001@example.com>",
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="mixed"',
        ],
        att,
    )
)

# 15. forwarded message/rfc822 with its own alternative and attachment
inner = msg(
    [
        "From: Seller <seller@shop.example.com>",
        "To: Buyer <buyer@example.com>",
        f"Subject: {b64w('Ваш заказ 8123456789012345 отправлен', 'utf-8')}",
        "Date: Sat, 01 Mar 2025 09:00:00 +0000",
        "Message-ID: <seller-0001@shop.example.com>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="inner"',
    ],
    b"".join(
        [
            b'--inner\r\nContent-Type: multipart/alternative; boundary="inneralt"\r\n\r\n',
            b"--inneralt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + "Трек-номер RR123456785CN.\r\n".encode(),
            b'--inneralt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Track <a href="https://track.example.com/RR123456785CN">here</a></p>\r\n',
            b"--inneralt--\r\n",
            b'--inner\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; filename="receipt.jpg"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
            + b64body(PHOTO),
            b"--inner--\r\n",
        ]
    ),
)
(out / "forwarded.eml").write_bytes(
    msg(
        [
            "From: Buyer <buyer@example.com>",
            "To: disputes@desk.example",
            "Subject: Fwd: seller mail",
            "Date: Mon, 10 Mar 2025 10:00:00 +0000",
            "Message-ID: <fwd-0001@example.com>",
            "MIME-Version: 1.0",
            'Content-Type: multipart/mixed; boundary="outer"',
        ],
        b"--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the seller's mail below, it never arrived.\r\n"
        b'--outer\r\nContent-Type: message/rfc822; name="seller.eml"\r\nContent-Disposition: attachment; filename="seller.eml"\r\n\r\n'
        + inner
        + b"\r\n--outer--\r\n",
    )
)

# 16. threading headers, no Message-ID; References with garbage, commas, missing brackets
(out / "no-message-id.eml").write_bytes(
    msg(
        [
            "From: Reply Person <reply@example.com>",
            "To: support@desk.example",
            "Subject: Re: [CD-000042] Your claim",
            "Date: not a date at all",
            "In-Reply-To: <CD-000042.abc@desk.example> (Claims Desk's message of Mon, 3 Mar 2025)",
            "References: <first@example.com>,<second@example.com>\r\n\t< third @example.com > fourth@example.com",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
        ],
        b"Thanks, here is the tracking number RR123456785CN.\r\n\r\nOn Mon, 3 Mar 2025 at 10:00, Claims Desk <support@desk.example> wrote:\r\n> Please send your tracking number.\r\n",
    )
)

# 17. a Russian reply: own text above an attribution, mobile signature
(out / "reply-ru.eml").write_bytes(
    msg(
        [
            "From: Ivan <ivan@example.ru>",
            "To: support@desk.example",
            b"Subject: Re: " + "Ваша заявка".encode("koi8-r"),
            "Date: Tue, 11 Mar 2025 10:00:00 +0300",
            "Message-ID: <reply-ru-0001@example.ru>",
            "In-Reply-To: <CD-000007.x@desk.example>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=koi8-r",
            "Content-Transfer-Encoding: 8bit",
        ],
        (
            "Номер заказа 8123456789012345.\n\nОтправлено с iPhone\n\n"
            '11.03.2025, 09:00, "Claims Desk" <support@desk.example>:\n> Please write in English.\n'
        ).encode("koi8-r"),
    )
)
