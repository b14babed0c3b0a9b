"""Marketplace facts in a claim: order numbers, tracking numbers, product and store links.

`FieldExtractor.extract()` reads every text a message carries plus its HTML hrefs and returns a
`ClaimFields` whose tuples are deduplicated in order of first appearance. It runs on every
message, so it is pure and cheap: regexes are compiled once per extractor, each starts with a
digit or a literal so the regex engine can skip ahead, and none can backtrack badly.

Order numbers are 16 digits, compact or grouped 4-4-4-4 by one separator (space, dash, no-break
space); the digits are returned. A bare number counts unless it is a near miss:

- part of a longer digit run or digit-group chain (18 digits are not an order, nor a slice);
- inside a URL (item/1005001234567890.html is a product ID), glued to letters or to one of
  ``_ / \\ = & @ + % -`` (a token, path or query value), or equal to the ID in one of the
  message's product links;
- an amount: a decimal part (``.00``) or a currency sign or code before or after it;
- a file or host name (``.html`` after it), after a decimal or a time (``1.``, ``12:``);
- the digits of a tracking number (YunExpress is YT + 16 digits);
- right after a word that says it is something else: card, visa, карта, cartão, ... (payment
  cards are 4-4-4-4 too), item/product/SKU/store, tracking/трек/运单号, phone, account,
  transaction, payment.

An order label right before the number ("Order No.", "заказ №", "Bestellnummer", "订单号", ...,
only separators between) lifts the glued-to-letters and context-word rules. Phone numbers and
dates never form 16 digits in the accepted shapes. The one number inside a link that is an order
number is the ``orderId`` of a marketplace order-detail link (and the aliexpress.ru
``/order-list/NNN`` path), in text or in hrefs.

Tracking numbers: UPU S10 (2 letters, 8-digit serial, check digit, 2-letter country), compact or
spaced in the usual groupings, any case; a failed check digit goes to `invalid_tracking_numbers`
unless the candidate is spaced and not upper case or sits inside a URL (too likely prose or a
token). Carrier patterns (`checks.carrier_patterns`) must match a whole token of the upper-cased
text (buyers type ``lp0012...``; write pattern letters in upper case); they carry no check digit.
"""

from __future__ import annotations

import operator
import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field

from config.settings import ChecksSettings
from intake.types import ClaimFields

_S10_WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
_S10_SHAPE = re.compile(r"[A-Z]{2}[0-9]{9}[A-Z]{2}")
_DIGITS = frozenset("0123456789")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALNUM = _DIGITS | _UPPER | frozenset("abcdefghijklmnopqrstuvwxyz")
_HOST_CHARS = _DIGITS | _UPPER | frozenset(".-")
_URL_GLUE = _ALNUM | frozenset("._@-")  # before a URL start: it is part of a longer token
_TO_UPPER = str.maketrans({c: c.upper() for c in "abcdefghijklmnopqrstuvwxyz"})

# RFC 3986 characters minus the ones that in mail text end a URL rather than belong to it.
_URL_CHAR = r"[A-Za-z0-9\-._~:/?#@!$&()*+,;=%]"
# Two literal-prefixed patterns (fast to scan), run on the upper-cased text.
_SCHEMED_URLS = (re.compile(rf"HTTPS?://{_URL_CHAR}+"), re.compile(rf"WWW\.{_URL_CHAR}+"))
_URL_TAIL = re.compile(rf"[/?#]{_URL_CHAR}*")
_TRAILING = ".,;:!?)]}>'\"*"
_SCHEME = re.compile(r"(?:https?:)?//", re.I)
_HOST = re.compile(r"[a-z0-9.-]+")
_AUTHORITY_END = re.compile(r"[/?#]")
_ORDER_ID_PARAM = re.compile(r"(?:^|&)orderid=([0-9]{16})(?![0-9])", re.I)
_ORDER_LIST_PATH = re.compile(r"/order-list/([0-9]{16})/?$")
_PRODUCT_PATH = re.compile(r"/(?:item|i)/[^/]|/store/product/")
_STORE_PATH = re.compile(r"/store/[^/]")
_ID_IN_PATH = re.compile(r"(?<![0-9])[0-9]{16}(?![0-9])")

# Both candidates start at the first digit of a run, and both are found in one scan of the
# upper-cased text (digits and separators sit there as in the text): at each run start, an
# S10 candidate (serial and check digit first, so the engine skips to digits; letters checked
# in Python; groupings 123456785, 123 456 785, 1234 5678 5, 12345678 5) and an order-number
# candidate (compact 16 digits, or 4-4-4-4 with one separator used throughout, the
# backreference) are each looked for; `_candidates` keeps each kind's matches from
# overlapping, as two `finditer` scans would.
_S10_REST = (
    r"[0-9]{2}(?: [0-9]{3} [0-9]{3}|[0-9](?:[0-9]{5}|[0-9]{4} [0-9]| [0-9]{4} [0-9]))"
    r" ?[A-Z]{2}(?![A-Z0-9@])"
)
_NUMBER_REST = (
    r"[0-9]{3}(?:[0-9]{12}|(?P<sep>[ \-\u00a0\u202f])[0-9]{4}(?P=sep)[0-9]{4}(?P=sep)[0-9]{4})"
)
_RUN_START = re.compile(
    rf"[0-9](?<![0-9][0-9])(?=(?P<s10>{_S10_REST})|)(?=(?P<number>{_NUMBER_REST})|)"
    r"(?(s10)|(?(number)|(?!)))"
)
# Every candidate starts a run of at least three digits. In the bytes of ASCII text with
# digits made "0" and everything else " ", `find` reaches those runs at C speed, where the
# regex engine tries `_RUN_START` at every digit (about half the cost of a text's scan).
_DIGIT_RUNS = bytes(48 if 48 <= b <= 57 else 32 for b in range(256))
_NO_SEPARATORS = str.maketrans("", "", " -\u00a0\u202f")
_NON_DIGITS = re.compile(r"[^0-9]+")  # what is not in `_DIGITS`
_CURRENCY_AFTER = re.compile(r"\s?(?:[$€£¥₽₹元]|(?:usd|eur|rub|руб|cny|rmb|yuan)\b)", re.I)
_BAD_BEFORE = _ALNUM | frozenset("_/\\=&@+%$€£¥₽₹-")
_BAD_AFTER = _ALNUM | frozenset("_/\\=&@%$€£¥₽₹")
_CONTEXT_WINDOW = 40

_QUALIFIERS = (
    "no", "nr", "num", "number", "numero", "número", "numéro", "nummer", "numer", "numarası",
    "numarasi", "id", "n°", "nº", "номер", "编号", "号",
)  # fmt: skip
_ORDER_LABELS = (
    "order", "заказ", "заказа", "заказе", "заказу", "заказом", "pedido", "encomenda", "orden",
    "commande", "bestellung", "bestellnummer", "bestell-nr", "bestellnr", "auftragsnummer",
    "zamówienie", "zamówienia", "zamowienie", "zamowienia", "sipariş", "siparişi", "siparişin",
    "siparişiniz", "siparişim", "siparis", "siparisi", "siparisiniz", "ordine",
)  # fmt: skip
_ORDER_LABELS_CJK = (
    "订单号",
    "订单编号",
    "订单",
    "訂單號",
    "訂單編號",
    "訂單",
    "注文番号",
    "주문번호",
)
_CONTEXT_WORDS = (
    # payment cards: 4-4-4-4 numbers after these are card numbers, not orders
    "card", "cards", "visa", "mastercard", "master card", "maestro", "amex", "карта", "карты",
    "карте", "карту", "картой", "карточки", "cartão", "cartao", "tarjeta", "carte", "karte",
    "kreditkarte", "karta", "karty", "kart", "kartu", "carta",
    # product and store IDs (also 16 digits on AliExpress)
    "item", "product", "producto", "produto", "produit", "prodotto", "produkt", "artikel",
    "artikelnummer", "ürün", "товар", "товара", "sku", "store", "shop", "seller", "магазин",
    "магазина", "loja", "tienda",
    # tracking numbers that no configured pattern knows
    "tracking", "track", "waybill", "awb", "parcel", "shipment", "трек", "трек-номер",
    "трекномер", "посылка", "посылки", "отправление", "отправления", "rastreamento",
    "rastreio", "seguimiento", "suivi", "sendungsnummer", "sendung", "przesyłki", "takip",
    "tracciamento", "spedizione",
    # phones, accounts, payments, amounts
    "phone", "tel", "mobile", "whatsapp", "тел", "телефон", "телефона", "iban", "account",
    "счет", "счёт", "transaction", "payment", "usd", "eur", "rub", "руб", "cny", "rmb",
)  # fmt: skip
_CONTEXT_CJK = (
    "卡号", "银行卡", "信用卡", "运单号", "物流单号", "快递单号", "跟踪号", "商品", "店铺", "电话",
    "手机", "$", "€", "£", "¥", "₽", "₹",
)  # fmt: skip


def _tail_pattern(words: Iterable[str], unbounded: Iterable[str]) -> re.Pattern[str]:
    """A pattern that matches the *reversed*, lower-cased text before a number when that text
    ends with one of `words` (a whole word) or `unbounded` (CJK, symbols), optionally followed
    by a qualifier ("no.", "number", "№") and separators. Matching the reversed text anchors
    the work at the number instead of trying every start in the window."""

    def alternatives(items: Iterable[str]) -> str:
        return "|".join(re.escape(w[::-1]) for w in sorted(items, key=len, reverse=True))

    separators = r"[\s:：#№.\-–—=]*"
    return re.compile(
        rf"{separators}(?:(?:{alternatives(_QUALIFIERS)})\s*)?"
        rf"(?:(?:{alternatives(words)})(?!\w)|{alternatives(unbounded)})"
    )


_LABEL_BEFORE = _tail_pattern(_ORDER_LABELS, _ORDER_LABELS_CJK)
_CONTEXT_BEFORE = _tail_pattern(_CONTEXT_WORDS, _CONTEXT_CJK)


def s10_check_digit(serial8: str) -> int:
    """The UPU S10 check digit of an 8-digit serial; raises ValueError for anything else."""
    if len(serial8) != 8 or not (serial8.isascii() and serial8.isdigit()):
        raise ValueError(f"an S10 serial is 8 digits, not {serial8!r}")
    check = 11 - sum(map(operator.mul, map(int, serial8), _S10_WEIGHTS)) % 11
    return 0 if check == 10 else 5 if check == 11 else check


def is_valid_s10(code: str) -> bool:
    """True when `code` (spaces and case ignored) is an S10 number whose check digit is right."""
    compact = code.replace(" ", "").upper()
    if not _S10_SHAPE.fullmatch(compact):
        return False
    return s10_check_digit(compact[2:10]) == int(compact[10])


def _trim(url: str) -> str:
    """`url` without the punctuation that ends the sentence around it; a `)` stays when it
    closes a `(` inside the URL."""
    end, opened, closed = len(url), url.count("("), url.count(")")
    while end and url[end - 1] in _TRAILING:
        if url[end - 1] == ")":
            if opened >= closed:
                break
            closed -= 1
        end -= 1
    return url[:end]


class _Spans:
    """Character ranges of a text, merged and sorted so an overlap test costs O(log n)."""

    def __init__(self, spans: Iterable[tuple[int, int]]) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        if not spans:
            return
        for start, end in sorted(spans):
            if self._ends and start <= self._ends[-1]:
                self._ends[-1] = max(self._ends[-1], end)
            else:
                self._starts.append(start)
                self._ends.append(end)

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect_left(self._starts, end) - 1  # the last range that starts before `end`
        return i >= 0 and self._ends[i] > start


_Candidate = tuple[int, int, str | None]  # start, end, order-number separator


def _candidates(up: str) -> tuple[list[_Candidate], list[_Candidate]]:
    """(S10 candidates, order-number candidates) in `up`, each kind in order and without
    overlaps."""
    s10: list[_Candidate] = []
    numbers: list[_Candidate] = []
    s10_end = number_end = 0
    for m in _run_starts(up):
        start = m.start()
        if m.start("s10") >= 0 and start >= s10_end:
            s10_end = m.end("s10")
            s10.append((start, s10_end, None))
        if m.start("number") >= 0 and start >= number_end:
            number_end = m.end("number")
            numbers.append((start, number_end, m.group("sep")))
    return s10, numbers


def _run_starts(up: str) -> Iterable[re.Match[str]]:
    """`_RUN_START.finditer(up)`: matched only at the starts of runs of three or more
    digits in ASCII text (the pattern matches nowhere else: it needs a run start and then
    two more digits)."""
    if not up.isascii():
        return _RUN_START.finditer(up)
    runs = up.encode("ascii").translate(_DIGIT_RUNS)
    found: list[re.Match[str]] = []
    at = runs.find(b"000")
    while at >= 0:  # the leftmost "000" after a non-digit starts a run
        m = _RUN_START.match(up, at)
        if m is not None:
            found.append(m)
        end = runs.find(b" ", at)
        if end < 0:
            break
        at = runs.find(b"000", end)
    return found


def _upper(text: str) -> str:
    """`text` upper-cased position for position (str.upper() turns "ß" into "SS")."""
    up = text.upper()
    return up if len(up) == len(text) else text.translate(_TO_UPPER)


@dataclass
class _Found:
    """What one extract() call found so far; dicts keep first-appearance order."""

    orders: dict[str, None] = field(default_factory=dict)
    tracking: dict[str, None] = field(default_factory=dict)
    invalid: dict[str, None] = field(default_factory=dict)
    products: dict[str, None] = field(default_factory=dict)
    stores: dict[str, None] = field(default_factory=dict)
    product_ids: set[str] = field(default_factory=set)
    urls: dict[str, str | None] = field(default_factory=dict)  # `_take_url` results


_Hit = tuple[tuple[int, int], str, bool]  # (span, tracking number, valid)


class FieldExtractor:
    """Finds order numbers, tracking numbers and marketplace links (see the module docstring)."""

    def __init__(self, checks: ChecksSettings) -> None:
        domains = {d.strip().lower().strip(".") for d in checks.marketplace_domains} - {""}
        self._domains = tuple(sorted(domains, key=len, reverse=True))
        self._bare_domain = (
            re.compile("|".join(re.escape(d.upper()) for d in self._domains))
            if self._domains
            else None
        )
        self._carriers = tuple(
            re.compile(rf"(?:{c.pattern})(?![A-Za-z0-9])", re.ASCII)
            for c in checks.carrier_patterns
        )

    def extract(self, texts: Iterable[str], links: Iterable[str] = ()) -> ClaimFields:
        """Every fact found in `texts` (all text of the message) and `links` (HTML hrefs)."""
        found = _Found()
        for text in texts:
            self._scan_text(text, found)
        for link in links:
            self._scan_link(link.strip(), found)
        drop = found.product_ids | {
            _NON_DIGITS.sub("", t) for t in (*found.tracking, *found.invalid)
        }
        return ClaimFields(
            order_numbers=tuple(o for o in found.orders if o not in drop),
            tracking_numbers=tuple(found.tracking),
            invalid_tracking_numbers=tuple(found.invalid),
            product_urls=tuple(found.products),
            store_urls=tuple(found.stores),
        )

    def _scan_text(self, text: str, found: _Found) -> None:
        up = _upper(text)
        urls = self._urls(text, up)
        orders: list[tuple[int, str]] = []
        for (start, _), url in urls:
            order = self._take_url(url, found)
            if order:
                orders.append((start, order))
        spans = [span for span, _ in urls]
        s10, numbers = _candidates(up)
        tracks = self._tracking(text, up, _Spans(spans), s10)
        for _, code, valid in tracks:
            (found.tracking if valid else found.invalid)[code] = None
        taken = _Spans(spans + [span for span, _, _ in tracks])
        for start, end, sep in numbers:
            number = _order_at(text, start, end, sep, taken)
            if number:
                orders.append((start, number))
        for _, number in sorted(orders):
            found.orders[number] = None

    def _scan_link(self, link: str, found: _Found) -> None:
        order = self._take_url(link, found)
        if order:
            found.orders[order] = None
        up = _upper(link)
        for _, code, valid in self._tracking(
            link, up, _Spans([(0, len(link))]), _candidates(up)[0]
        ):
            if valid:
                found.tracking[code] = None

    def _urls(self, text: str, up: str) -> list[tuple[tuple[int, int], str]]:
        """(span, URL as written, trailing punctuation removed) of the URLs in `text`: any URL
        with a scheme or www., and scheme-less links on a marketplace domain."""
        urls: list[tuple[tuple[int, int], str]] = []
        schemed: list[tuple[int, int]] = []
        for pattern in _SCHEMED_URLS:
            earlier = _Spans(schemed)  # the www. of an http:// URL is not a second URL
            for m in pattern.finditer(up):
                start, end = m.span()
                if earlier.overlaps(start, end):
                    continue
                schemed.append((start, end))
                if not start or text[start - 1] not in _URL_GLUE:
                    urls.append(((start, end), _trim(text[start:end])))
        if self._bare_domain is None:
            urls.sort()
            return urls
        taken, floor = _Spans(schemed), 0
        for m in self._bare_domain.finditer(up):
            host_start, end = m.span()
            nxt, then = up[end : end + 1], up[end + 1 : end + 2]
            if nxt and (nxt in _ALNUM or nxt == "-" or (nxt == "." and then and then in _ALNUM)):
                continue  # aliexpress.community, aliexpress.com.evil.example
            # Back to the start of the host name: never past the previous hit, never longer
            # than a DNS name (RFC 1035: 253 characters), so the walk stays linear.
            lowest = max(floor, host_start - 253)
            while host_start > lowest and up[host_start - 1] in _HOST_CHARS:
                host_start -= 1
            while up[host_start] in ".-":
                host_start += 1
            floor = end
            if host_start and text[host_start - 1] in "@_/\\":
                continue  # an e-mail address or part of a path
            if taken.overlaps(host_start, end):
                continue
            tail = _URL_TAIL.match(text, end)
            if tail:
                end = tail.end()
            urls.append(((host_start, end), _trim(text[host_start:end])))
        urls.sort()
        return urls

    def _tracking(self, text: str, up: str, urls: _Spans, s10: list[_Candidate]) -> list[_Hit]:
        """Tracking numbers in `text` (`s10`: its S10 candidates), in order; invalid S10
        inside URLs and spaced, not upper-case invalid ones are left out as too likely
        noise."""
        hits: list[_Hit] = []
        for start, end, _ in s10:
            if up[start - 1 : start] == " ":
                start -= 1
            start -= 2
            if start < 0 or up[start] not in _UPPER or up[start + 1] not in _UPPER:
                continue
            if start and up[start - 1] in _ALNUM:
                continue
            code = up[start:end].replace(" ", "")
            valid = s10_check_digit(code[2:10]) == int(code[10])
            if not valid:
                raw = text[start:end]
                if (" " in raw and not raw.isupper()) or urls.overlaps(start, end):
                    continue
            hits.append(((start, end), code, valid))
        for carrier in self._carriers:
            for m in carrier.finditer(up):
                start, end = m.span()
                if not start or up[start - 1] not in _ALNUM:
                    hits.append(((start, end), m.group(), True))
        hits.sort()
        return hits

    def _take_url(self, url: str, found: _Found) -> str | None:
        """Files a marketplace product or store link; returns the order number of an
        order-detail link, else None. Other URLs are ignored. (The same URL in the text,
        the HTML text and an href is filed once: filing it again would change nothing.)"""
        if url in found.urls:
            return found.urls[url]
        order = found.urls[url] = self._file_url(url, found)
        return order

    def _file_url(self, url: str, found: _Found) -> str | None:
        rest = url
        scheme = _SCHEME.match(rest)
        if scheme:
            rest = rest[scheme.end() :]
        authority = _AUTHORITY_END.split(rest, maxsplit=1)[0]
        if not scheme and ("@" in authority or ":" in authority):
            return None  # mailto:, javascript:, user@host without a scheme
        host = authority.rpartition("@")[2].partition(":")[0].lower().rstrip(".")
        if not _HOST.fullmatch(host) or not any(
            host == d or host.endswith("." + d) for d in self._domains
        ):
            return None
        path, _, query = rest[len(authority) :].partition("#")[0].partition("?")
        lpath = path.lower()
        if "order" in lpath:
            m = _ORDER_ID_PARAM.search(query) or _ORDER_LIST_PATH.match(lpath)
            return m.group(1) if m else None
        if (
            _PRODUCT_PATH.match(lpath)
            or (host.startswith("s.click.") and lpath.startswith("/e/"))
            or (host.startswith("a.") and lpath.startswith("/_"))
        ):
            found.products[url] = None
            found.product_ids.update(_ID_IN_PATH.findall(path))
        elif _STORE_PATH.match(lpath):
            found.stores[url] = None
        return None


def _order_at(text: str, start: int, end: int, sep: str | None, taken: _Spans) -> str | None:
    """The digits of the candidate at `start:end` (grouped by `sep`, None when compact) when
    it is an order number (near-miss rules: module docstring), else None."""
    if taken.overlaps(start, end):
        return None
    after = text[end : end + 2]
    if after:
        nxt, then = after[0], after[1:]
        if nxt in _BAD_AFTER or (nxt in ".,-" and then in _ALNUM):
            return None
        if sep and nxt == sep and then and then in _DIGITS:
            return None  # one group of a longer chain
        if _CURRENCY_AFTER.match(text, end):
            return None
    before = text[start - 1] if start else ""
    before2 = text[start - 2] if start > 1 else ""
    if sep and before == sep and before2 in _DIGITS:
        return None
    digits = text[start:end].translate(_NO_SEPARATORS)
    # "İ".lower() is "i" + U+0307; drop the combining dot so SİPARİŞ reads as sipariş.
    window = text[max(0, start - _CONTEXT_WINDOW) : start].lower().replace("\u0307", "")[::-1]
    if _LABEL_BEFORE.match(window):
        return digits
    if before in _BAD_BEFORE or (before and before in ".,:" and before2 in _DIGITS):
        return None
    if _CONTEXT_BEFORE.match(window):
        return None
    return digits
