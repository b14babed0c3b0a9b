"""Realistic generated claim mail for benchmarks: ~3 KB each, a mix of languages, fields,
HTML, quoted seller messages and attachments, every message with its own Message-ID.

Deterministic for a given seed, so two runs (and the baseline and claimdesk in one run)
see the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from tests.mail import PNG_1PX

BODIES = {
    "en": (
        "Hello, I ordered {item} on {day} and the parcel still has not arrived. The tracking "
        "page has shown the same status for three weeks and the seller does not answer my "
        "messages any more. I have waited long enough and would like a full refund for this "
        "order, or a replacement shipped with a working tracking number. I attached what I "
        "have. Please look into this as soon as possible, thank you."
    ),
    "en2": (
        "Dear support team, the {item} I received is not as described: the colour is wrong, "
        "the material feels cheap and two of the accessories shown on the product page are "
        "missing from the box. I believe this may even be a counterfeit. I opened a dispute "
        "but the seller refused it without any explanation. Could you please review my case?"
    ),
    "ru": (
        "Здравствуйте! Я заказал {item}, но посылка так и не пришла. Трек-номер не "
        "обновляется уже три недели, продавец не отвечает на сообщения. Прошу вернуть деньги "
        "за заказ или отправить товар повторно. Спасибо за помощь."
    ),
    "es": (
        "Hola, compré {item} y el paquete nunca llegó. El número de seguimiento no se "
        "actualiza desde hace semanas y el vendedor no responde. Solicito el reembolso "
        "completo de mi pedido. Gracias."
    ),
    "zh": (
        "您好，我购买的{item}一直没有收到，物流信息三周没有更新，"
        "卖家也不回复消息。请帮我退款，谢谢。"
    ),
}
ITEMS = ["wireless headphones", "a phone case", "running shoes", "a smart watch", "a desk lamp"]
SELLER_QUOTE = (
    "\n\n---------- Forwarded message ---------\nFrom: Best Store <seller@store.example>\n"
    "Subject: Your order has shipped\n\nDear buyer, your parcel was shipped with tracking "
    "number {tracking}. Delivery usually takes 15-45 days. Please be patient and do not open "
    "a dispute, we will solve any problem. Best regards, Best Store team\n"
)
SIGNATURE = "\n\n-- \n{name}\nSent from my phone\n"
PADDING = (
    "\n\nTimeline of what happened:\n"
    "- {day}: order placed and paid.\n"
    "- two days later: the seller marked it as shipped.\n"
    "- one week later: the tracking shows 'departed from sorting centre'.\n"
    "- since then: no update at all.\n"
)


def _s10(rng: random.Random) -> str:
    serial = f"{rng.randrange(10**8):08d}"
    weights = (8, 6, 4, 2, 3, 5, 9, 7)
    check = 11 - sum(int(d) * w for d, w in zip(serial, weights, strict=True)) % 11
    check = {10: 0, 11: 5}.get(check, check)
    return f"{rng.choice(['RR', 'LZ', 'RB', 'UA'])}{serial}{check}{rng.choice(['CN', 'SG', 'HK'])}"


def generate(count: int, seed: int = 7, *, start: datetime | None = None) -> Iterator[bytes]:
    """`count` distinct messages (~3 KB)."""
    rng = random.Random(seed)
    start = start or datetime(2026, 3, 1, tzinfo=UTC)
    for index in range(count):
        lang = rng.choices(list(BODIES), weights=[50, 20, 12, 10, 8])[0]
        day = (start - timedelta(days=rng.randrange(10, 90))).strftime("%d %B")
        tracking = _s10(rng)
        order = f"{rng.randrange(8 * 10**15, 9 * 10**15)}"
        item_id = f"10050{rng.randrange(10**10, 10**11)}"
        item = rng.choice(ITEMS)
        text = BODIES[lang].format(item=item, day=day)
        # A second paragraph in the same language, as real letters restate the problem.
        text += "\n\n" + BODIES[lang].format(item=item, day=day)
        if lang.startswith("en"):
            text += PADDING.format(day=day)
        fields = []
        if rng.random() < 0.85:
            fields.append(f"Order No.: {order}")
        if rng.random() < 0.7:
            fields.append(f"Tracking number: {tracking}")
        if rng.random() < 0.8:
            fields.append(f"Product: https://www.aliexpress.com/item/{item_id}.html")
        if rng.random() < 0.5:
            fields.append(f"Store: https://www.aliexpress.com/store/{rng.randrange(10**6, 10**7)}")
        body = text + "\n\n" + "\n".join(fields)
        if rng.random() < 0.4:
            body += SELLER_QUOTE.format(tracking=_s10(rng))
        body += SIGNATURE.format(name=f"Buyer {index}")
        msg = EmailMessage()
        msg["From"] = f"Buyer {index} <buyer{index}@example.org>"
        msg["To"] = rng.choice(
            ["disputes@desk.example"] * 5
            + ["support@desk.example"] * 3
            + ["complaints@desk.example"]
        )
        msg["Subject"] = (
            rng.choice(
                ["Parcel not received", "Refund request", "Item not as described", "Order problem"]
            )
            + f" #{index}"
        )
        msg["Date"] = format_datetime(start + timedelta(seconds=index))
        msg["Message-ID"] = f"<bench-{seed}-{index}@example.org>"
        msg.set_content(body)
        if rng.random() < 0.5:
            html = (
                "<html><body>"
                + "".join(f"<p>{line}</p>" for line in body.splitlines() if line)
                + "</body></html>"
            )
            msg.add_alternative(html, subtype="html")
        if rng.random() < 0.35:
            photo = PNG_1PX + rng.randbytes(900)  # a small "photo": its bytes are not read
            msg.add_attachment(photo, maintype="image", subtype="png", filename="photo.png")
        yield bytes(msg)
