"""Builders of realistic claim mail as bytes, for tests and benchmarks."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

ORDER = "8123456789012345"
TRACKING = "RR123456785CN"
PRODUCT = "https://www.aliexpress.com/item/1005004567890123.html"
STORE = "https://www.aliexpress.com/store/1234567"
PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)

ENGLISH_CLAIM = (
    "Hello, I ordered a pair of wireless headphones two months ago and the parcel never "
    "arrived. The seller keeps telling me to wait, but the tracking has not moved for weeks. "
    "I would like a full refund please."
)


def claim(
    *,
    body: str = ENGLISH_CLAIM,
    subject: str = "Parcel never arrived",
    sender: str = "Buyer One <buyer@example.org>",
    to: str = "disputes@desk.example",
    order: str | None = ORDER,
    tracking: str | None = TRACKING,
    product: str | None = PRODUCT,
    store: str | None = STORE,
    photos: int = 0,
    message_id: str | None = "auto",
    in_reply_to: str | None = None,
    references: str | None = None,
    html: str | None = None,
    date: datetime | None = None,
    extra_headers: dict[str, str] | None = None,
) -> bytes:
    """A claim letter; each field can be left out with None."""
    lines = [body, ""]
    if order:
        lines.append(f"Order No.: {order}")
    if tracking:
        lines.append(f"Tracking number: {tracking}")
    if product:
        lines.append(f"Product: {product}")
    if store:
        lines.append(f"Store: {store}")
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(date or datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    if message_id == "auto":
        msg["Message-ID"] = make_msgid(domain="example.org")
    elif message_id:
        msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    for name, value in (extra_headers or {}).items():
        msg[name] = value
    msg.set_content("\n".join(lines) + "\n")
    if html:
        msg.add_alternative(html, subtype="html")
    for index in range(photos):
        msg.add_attachment(
            PNG_1PX, maintype="image", subtype="png", filename=f"photo{index + 1}.png"
        )
    return bytes(msg)
