"""Field extraction: order numbers, tracking numbers, product and store links, and the near
misses each extractor must leave alone."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import CarrierPattern, ChecksSettings, load_settings
from intake.fields import (
    _NON_DIGITS,
    _RUN_START,
    FieldExtractor,
    _candidates,
    _run_starts,
    _upper,
    is_valid_s10,
    s10_check_digit,
)
from intake.types import ClaimFields

DATA = Path(__file__).parent.parent / "data" / "fields"
ORDER = "8123456789012345"
EXTRACTOR = FieldExtractor(load_settings(env={}).checks)


def fields(*texts: str, links: tuple[str, ...] = ()) -> ClaimFields:
    return EXTRACTOR.extract(texts, links)


# --- UPU S10 check digit ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "check"),
    [
        ("12345678", 5),  # RR123456785CN
        ("47312482", 9),  # AA473124829GB, the UPU S10 example
        ("87654321", 6),  # 192 % 11 = 5 -> 6
        ("00000001", 4),  # 7 % 11 = 7 -> 4
        ("00000008", 0),  # 56 % 11 = 1 -> 10 -> 0
        ("00000000", 5),  # 0 % 11 = 0 -> 11 -> 5
        ("11111111", 5),  # 44 % 11 = 0 -> 11 -> 5
    ],
)
def test_s10_check_digit(serial: str, check: int) -> None:
    assert s10_check_digit(serial) == check


@pytest.mark.parametrize("serial", ["1234567", "123456789", "1234567a", "", "１２３４５６７８"])
def test_s10_check_digit_rejects_anything_but_eight_digits(serial: str) -> None:
    with pytest.raises(ValueError, match="8 digits"):
        s10_check_digit(serial)


@pytest.mark.parametrize(
    "code",
    [
        "RR123456785CN",
        "EE123456785US",
        "AA473124829GB",
        "LZ000000005DE",
        "CP000000080FR",
        "rr123456785cn",
        "RR 123 456 785 CN",
    ],
)
def test_is_valid_s10_accepts(code: str) -> None:
    assert is_valid_s10(code)


@pytest.mark.parametrize(
    "code",
    [
        "RR123456789CN",  # wrong check digit
        "AA473124820GB",
        "RR12345678CN",  # 8 digits
        "RR1234567855CN",  # 10 digits
        "R1123456785CN",
        "RR123456785C",
        "",
    ],
)
def test_is_valid_s10_rejects(code: str) -> None:
    assert not is_valid_s10(code)


# --- tracking numbers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tracking number: RR123456785CN", "RR123456785CN"),
        ("tracking rr123456785cn please", "RR123456785CN"),
        ("RR 123 456 785 CN", "RR123456785CN"),
        ("rr 123 456 785 cn", "RR123456785CN"),
        ("RR 1234 5678 5 CN", "RR123456785CN"),
        ("RR 12345678 5 CN", "RR123456785CN"),
        ("RR123456785 CN", "RR123456785CN"),
        ("(AA473124829GB).", "AA473124829GB"),
        ("EMS: EE123456785US", "EE123456785US"),
        ("运单号RR123456785CN，谢谢", "RR123456785CN"),
        ("Трек-номер: RR123456785CN", "RR123456785CN"),
        ("Cainiao LP00123456789012", "LP00123456789012"),
        ("cainiao lp00123456789012", "LP00123456789012"),
        ("YunExpress: YT1234567890123456.", "YT1234567890123456"),
        ("track https://t.17track.net/en#nums=RR123456785CN", "RR123456785CN"),
    ],
)
def test_tracking_numbers(text: str, expected: str) -> None:
    found = fields(text)
    assert found.tracking_numbers == (expected,)
    assert found.invalid_tracking_numbers == ()
    assert found.order_numbers == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tracking: RR123456789CN", "RR123456789CN"),
        ("tracking rr123456784cn", "RR123456784CN"),
        ("RR 123 456 789 CN", "RR123456789CN"),
    ],
)
def test_wrong_check_digit_is_an_invalid_tracking_number(text: str, expected: str) -> None:
    found = fields(text)
    assert found.tracking_numbers == ()
    assert found.invalid_tracking_numbers == (expected,)


@pytest.mark.parametrize(
    "text",
    [
        "XRR123456785CN",  # glued to a longer token
        "RR123456785CN5",
        "RR123456785CNX",
        "RR1234567855CN",  # 10 digits
        "RR12345678CN",  # 8 digits
        "R123456785CN",
        "1RR123456785CN",
        "RR-123456785-CN",
        "write to rr123456785cn@mail.example",
        "we met at 123 456 789 in the morning",  # spaced, lower case, check digit fails
        "Cainiao LP0012345678901",  # 13 digits
        "Cainiao LP001234567890123",  # 15 digits
        "XLP00123456789012",
        "YT12345678901234567",  # 17 digits
        "https://example.com/p/ZZ123456789CN/x",  # invalid inside a URL: a token, not a claim
    ],
)
def test_tracking_near_misses(text: str) -> None:
    found = fields(text)
    assert found.tracking_numbers == ()
    assert found.invalid_tracking_numbers == ()


def test_tracking_number_digits_are_never_an_order_number() -> None:
    found = fields("YunExpress YT8123456789012345, order 8123456789012345 is the same digits")
    assert found.tracking_numbers == ("YT8123456789012345",)
    assert found.order_numbers == ()


def test_yunexpress_digits_are_not_an_order_even_without_the_carrier_configured() -> None:
    found = FieldExtractor(ChecksSettings()).extract(["YT8123456789012345"])
    assert found == ClaimFields()


def test_carrier_patterns_come_from_config() -> None:
    checks = ChecksSettings(
        carrier_patterns=(CarrierPattern(name="demo", pattern=r"ZX\d{10}[A-Z]"),),
    )
    found = FieldExtractor(checks).extract(["parcel zx0123456789q, not LP00123456789012"])
    assert found.tracking_numbers == ("ZX0123456789Q",)


def test_tracking_numbers_deduplicated_in_order_of_appearance() -> None:
    found = fields(
        "LP00123456789012 then RR123456785CN",
        "again rr 123 456 785 cn and AA473124829GB and LP00123456789012",
    )
    assert found.tracking_numbers == ("LP00123456789012", "RR123456785CN", "AA473124829GB")


# --- order numbers: labels in many languages --------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"Order No. {ORDER}",
        f"Order No.{ORDER}",
        "Order No.: 8123 4567 8901 2345",
        f"Order number: {ORDER}",
        "order # 8123-4567-8901-2345",
        f"order #{ORDER}",
        f"order{ORDER}",
        f"Order ID: {ORDER}",
        f"ORDER-ID:{ORDER}",
        f"orderId={ORDER}",  # a pasted query parameter still names itself
        f"заказ №{ORDER}",
        f"Заказ № {ORDER}",
        f"номер заказа: {ORDER}",
        f"Номер заказа {ORDER}",
        f"pedido {ORDER}",
        f"número do pedido: {ORDER}",
        f"número de pedido:{ORDER}",
        f"commande {ORDER}",
        f"N° de commande : {ORDER}",
        f"numéro de commande: {ORDER}",
        f"Bestellnummer: {ORDER}",
        f"Bestellnummer{ORDER}",
        f"zamówienie {ORDER}",
        f"numer zamówienia: {ORDER}",
        f"sipariş {ORDER}",
        f"sipariş no: {ORDER}",
        f"SİPARİŞ NO:{ORDER}",
        f"ordine n. {ORDER}",
        f"订单号：{ORDER}，谢谢",
        f"订单号{ORDER}",
        f"订单编号: {ORDER}",
        f"您的订单{ORDER}已发货",
    ],
)
def test_order_number_after_a_label(text: str) -> None:
    assert fields(text).order_numbers == (ORDER,)


@pytest.mark.parametrize(
    "text",
    [
        ORDER,
        "8123 4567 8901 2345",
        "8123-4567-8901-2345",
        "8123\u00a04567\u00a08901\u00a02345",
        f"my number is {ORDER}.",
        f"({ORDER})",
        f'"{ORDER}"',
        f"> {ORDER}",
        f"**{ORDER}**",
        f"{ORDER}, {ORDER}",
        f"{ORDER} 2 pcs",
        f"2 pcs {ORDER}",
    ],
)
def test_bare_order_number(text: str) -> None:
    assert fields(text).order_numbers == (ORDER,)


def test_order_numbers_deduplicated_in_order_of_appearance() -> None:
    found = fields(
        f"first 8123456789012346, then {ORDER}",
        f"quoted: Order No. 8123-4567-8901-2346 and {ORDER}",
        "and https://www.aliexpress.com/p/order/detail.html?orderId=8123456789012347",
    )
    assert found.order_numbers == ("8123456789012346", ORDER, "8123456789012347")


# --- order numbers: near misses ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        # phone numbers
        "call +7 912 345-67-89",
        "+1 (415) 555-0100",
        "8 800 555 35 35",
        "+86 138 0013 8000",
        "+8123456789012345",
        "Phone: 8123456789012345",
        "тел. 8123456789012345",
        # dates and times
        "2024-03-15",
        "15.03.2024",
        "2024-03-15 12:30:45",
        "12:8123456789012345",
        # amounts
        "US $1234567890123456.00",
        "$8123456789012345",
        "US $ 8123456789012345",
        "8123456789012345.00",
        "8123456789012345,50",
        "8123456789012345 USD",
        "8123456789012345$",
        "8123456789012345 руб.",
        "€8123456789012345",
        "1.8123456789012345",
        # IDs inside links, paths and tokens
        "https://www.aliexpress.com/item/1005001234567890.html",
        "item/1005001234567890.html",
        "www.aliexpress.com/item/1005001234567890.html",
        "aliexpress.ru/item/1005001234567890.html",
        "https://example.com/#8123456789012345",
        "https://example.com/track?id=8123456789012345",
        "example.com/8123456789012345",
        "id=8123456789012345",
        "a_8123456789012345",
        "ab8123456789012345",
        "8123456789012345ab",
        "8123456789012345.html",
        "8123456789012345@qq.example",
        "-8123456789012345",
        # longer numbers and slices of them
        "812345678901234567",
        "81234567890123456",
        "8123 4567 8901 2345 6789",
        "1234 8123 4567 8901 2345",
        "8123-4567-8901-2345-6",
        "8123 4567 8901 234",
        "8123 4567-8901 2345",
        # context words: payment cards, product and store IDs, tracking numbers
        "card 4111 1111 1111 1111",
        "Card number: 4111-1111-1111-1111",
        "paid by Visa 4111 1111 1111 1111",
        "карта 4111 1111 1111 1111",
        "номер карты: 4111111111111111",
        "cartão 4111 1111 1111 1111",
        "Kreditkarte: 4111 1111 1111 1111",
        "Item ID 1005001234567890",
        "product: 1005001234567890",
        "товар 1005001234567890",
        "商品1005001234567890",
        "store no. 1005001234567890",
        "Tracking number: 8123456789012345",
        "трек-номер 8123456789012345",
        "运单号：8123456789012345",
        "numer przesyłki 8123456789012345",
    ],
)
def test_order_number_near_misses(text: str) -> None:
    assert fields(text).order_numbers == ()


def test_order_label_wins_over_the_previous_context() -> None:
    found = fields(f"Paid by card. Order number: {ORDER}; card 4111 1111 1111 1111")
    assert found.order_numbers == (ORDER,)


def test_product_id_of_a_product_link_is_never_an_order_number() -> None:
    found = fields(
        "https://www.aliexpress.com/item/1005001234567890.html",
        "the number is 1005001234567890",
    )
    assert found.order_numbers == ()
    assert found.product_urls == ("https://www.aliexpress.com/item/1005001234567890.html",)


# --- order numbers from order-detail links ----------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"https://www.aliexpress.com/p/order/detail.html?orderId={ORDER}",
        f"https://www.aliexpress.com/p/order/detail.html?spm=a2g0o.order_list.0.0&orderId={ORDER}",
        f"https://trade.aliexpress.com/order_detail.htm?orderId={ORDER}",
        f"https://trade.aliexpress.ru/order_detail.htm?orderId={ORDER}",
        f"https://m.aliexpress.ru/order/detail.html?orderId={ORDER}",
        f"https://aliexpress.ru/order-list/{ORDER}",
        f"www.aliexpress.com/p/order/detail.html?orderId={ORDER}",
        f"aliexpress.ru/order-list/detail?orderId={ORDER}",
    ],
)
def test_order_detail_link_carries_an_order_number(url: str) -> None:
    for found in (fields(f"see {url}."), fields(links=(url,))):
        assert found.order_numbers == (ORDER,)
        assert found.product_urls == ()
        assert found.store_urls == ()


@pytest.mark.parametrize(
    "url",
    [
        f"https://aliexpress.com.evil.example/p/order/detail.html?orderId={ORDER}",
        f"https://evil.example/p/order/detail.html?orderId={ORDER}",
        f"https://www.aliexpress.com/p/order/detail.html?orderId={ORDER}7",
        f"https://www.aliexpress.com/p/order/detail.html?xorderId={ORDER}",
        f"https://www.aliexpress.com/p/order/detail.html#orderId={ORDER}",
    ],
)
def test_order_detail_link_near_misses(url: str) -> None:
    assert fields(url).order_numbers == ()
    assert fields(links=(url,)).order_numbers == ()


def test_order_id_on_a_product_page_is_not_an_order_number() -> None:
    url = f"https://www.aliexpress.com/item/1005001234567890.html?orderId={ORDER}"
    found = fields(url)
    assert found.order_numbers == ()
    assert found.product_urls == (url,)


# --- product and store links --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://www.aliexpress.com/item/1005001234567890.html",
        "https://www.aliexpress.com/item/1005001234567890.html?spm=a2g0o.detail.0.0&gps-id=x",
        "http://aliexpress.com/item/1005001234567890.html",
        "https://ru.aliexpress.com/item/1005001234567890.html",
        "https://m.aliexpress.com/item/1005001234567890.html",
        "https://es.aliexpress.com/item/1005001234567890.html",
        "https://pt.aliexpress.com/item/1005001234567890.html",
        "https://fr.aliexpress.com/item/1005001234567890.html",
        "https://de.aliexpress.com/item/1005001234567890.html",
        "https://pl.aliexpress.com/item/1005001234567890.html",
        "https://tr.aliexpress.com/item/1005001234567890.html",
        "https://it.aliexpress.com/item/1005001234567890.html",
        "https://www.aliexpress.com/i/1005001234567890.html",
        "https://www.aliexpress.com/item/Wireless-Earbuds/32812345678.html",
        "https://www.aliexpress.com/store/product/Earbuds/912345_32812345678.html",
        "https://aliexpress.ru/item/1005001234567890.html",
        "https://m.aliexpress.ru/item/1005001234567890.html",
        "https://www.aliexpress.us/item/3256801234567890.html",
        "https://a.aliexpress.com/_mKxyz12",
        "https://s.click.aliexpress.com/e/_DdAbCdE",
        "HTTPS://WWW.ALIEXPRESS.COM/ITEM/1005001234567890.HTML",
        "www.aliexpress.com/item/1.html",
        "aliexpress.ru/item/1.html",
        "a.aliexpress.com/_mKxyz12",
    ],
)
def test_product_links(url: str) -> None:
    for found in (fields(f"Product: {url} thanks"), fields(links=(url,))):
        assert found.product_urls == (url,)
        assert found.store_urls == ()
        assert found.order_numbers == ()


@pytest.mark.parametrize(
    "url",
    [
        "https://www.aliexpress.com/store/912345678",
        "https://www.aliexpress.com/store/all-wholesale-products/912345678.html",
        "https://www.aliexpress.com/store/912345678/pages/all-items.html?sortType=bestmatch",
        "https://luckyelectronic.aliexpress.com/store/912345678",
        "https://ru.aliexpress.com/store/912345678",
        "https://m.aliexpress.com/store/storeHome.htm?storeId=912345678",
        "https://aliexpress.ru/store/912345678",
        "https://www.aliexpress.us/store/912345678",
        "www.aliexpress.com/store/912345678",
        "aliexpress.ru/store/912345678",
    ],
)
def test_store_links(url: str) -> None:
    for found in (fields(f"Store: {url} thanks"), fields(links=(url,))):
        assert found.store_urls == (url,)
        assert found.product_urls == ()


URL = "https://www.aliexpress.com/item/1005001234567890.html"


@pytest.mark.parametrize(
    "text",
    [
        f"see {URL}.",
        f"see {URL},",
        f"see ({URL})",
        f"see {URL}!",
        f"see {URL}?",
        f"see {URL}).",
        f"see <{URL}>",
        f'see "{URL}"',
        f"see '{URL}'",
        f"see [{URL}]",
        f"see [the item]({URL})",
        f"see {URL};",
        f"see {URL}:",
        f"link:{URL}",
        f"链接{URL}谢谢",
        f"ссылка:{URL}спасибо",
        f"see\n{URL}\n",
    ],
)
def test_trailing_punctuation_is_removed(text: str) -> None:
    assert fields(text).product_urls == (URL,)


def test_query_string_kept_as_written_and_balanced_parenthesis_kept() -> None:
    url = "https://www.aliexpress.com/item/1.html?spm=a2g0o.(x)&sku_id=12%2C3"
    assert fields(f"({url}).").product_urls == (url,)


@pytest.mark.parametrize(
    "text",
    [
        "https://aliexpress.com.evil.example/item/1005001234567890.html",
        "aliexpress.com.evil.example/item/1005001234567890.html",
        "https://fakealiexpress.com/item/1005001234567890.html",
        "fakealiexpress.com/item/1005001234567890.html",
        "https://aliexpress.community/item/1.html",
        "https://aliexpress-com.example/item/1.html",
        "https://aliexpress.com@evil.example/item/1.html",
        "https://evil.example/?u=aliexpress.com/item/1.html",
        "https://evil.example/aliexpress.com/item/1.html",
        "https://www.amazon.com/item/1005001234567890.html",
        "https://www.example.com/store/912345678",
        "write to support@aliexpress.com/item",
        "https://www.aliexpress.com/",
        "aliexpress.com",
        "https://www.aliexpress.com/w/wholesale-earbuds.html",
        "https://www.aliexpress.com/p/order/index.html",
        "https://www.aliexpress.com/store/",
        "https://www.aliexpress.com/itemx/1.html",
    ],
)
def test_not_product_or_store_links(text: str) -> None:
    found = fields(text)
    assert found.product_urls == ()
    assert found.store_urls == ()
    assert found.order_numbers == ()


@pytest.mark.parametrize(
    "link",
    [
        "mailto:buyer@aliexpress.com",
        "javascript:void(0)",
        "https://aliexpress.com.evil.example/item/1.html",
        "cid:image001.png@01D9",
        "",
    ],
)
def test_hrefs_that_are_not_marketplace_links(link: str) -> None:
    assert fields(links=(link,)) == ClaimFields()


def test_hrefs_protocol_relative_and_padded() -> None:
    found = fields(
        links=(
            " //m.aliexpress.com/item/1.html\n",
            "https://www.aliexpress.com/store/912345678",
            "https://global.cainiao.com/detail.htm?mailNoList=LP00123456789012",
            "https://t.17track.net/en#nums=ZZ123456789CN",  # invalid: not reported from a link
        )
    )
    assert found.product_urls == ("//m.aliexpress.com/item/1.html",)
    assert found.store_urls == ("https://www.aliexpress.com/store/912345678",)
    assert found.tracking_numbers == ("LP00123456789012",)
    assert found.invalid_tracking_numbers == ()


def test_links_deduplicated_across_text_and_hrefs() -> None:
    found = fields(
        f"see {URL} and https://a.aliexpress.com/_mKxyz12",
        f"again {URL}.",
        links=(URL, "https://a.aliexpress.com/_mKxyz12", "https://aliexpress.ru/store/1"),
    )
    assert found.product_urls == (URL, "https://a.aliexpress.com/_mKxyz12")
    assert found.store_urls == ("https://aliexpress.ru/store/1",)


def test_marketplace_domains_come_from_config() -> None:
    extractor = FieldExtractor(ChecksSettings(marketplace_domains=("market.example",)))
    found = extractor.extract(
        ["shop.market.example/item/1.html and https://www.aliexpress.com/item/2.html"]
    )
    assert found.product_urls == ("shop.market.example/item/1.html",)


def test_no_marketplace_domains_means_no_links() -> None:
    extractor = FieldExtractor(ChecksSettings(marketplace_domains=()))
    assert extractor.extract([f"{URL} aliexpress.ru/store/1"], [URL]) == ClaimFields()


# --- whole messages ---------------------------------------------------------------------------


def test_nothing_in_nothing() -> None:
    assert fields() == ClaimFields()
    assert fields("", "Hello, my parcel never arrived.") == ClaimFields()


def test_chinese_message() -> None:
    text = (
        "您好，订单号：8123456789012345，运单号RR123456785CN一直没有更新。"
        "商品链接https://www.aliexpress.com/item/1005001234567890.html，"
        "店铺https://www.aliexpress.com/store/912345678。电话13800138000。"
    )
    assert fields(text) == ClaimFields(
        order_numbers=(ORDER,),
        tracking_numbers=("RR123456785CN",),
        product_urls=("https://www.aliexpress.com/item/1005001234567890.html",),
        store_urls=("https://www.aliexpress.com/store/912345678",),
    )


def test_cyrillic_message() -> None:
    text = (
        "Здравствуйте! Номер заказа: 8123 4567 8901 2345, трек-номер RR 123 456 785 CN.\n"
        "Ссылка на товар: aliexpress.ru/item/1005001234567890.html, магазин: "
        "https://aliexpress.ru/store/912345678.\n"
        "Оплачено картой 4111 1111 1111 1111 15.03.2024, телефон +7 912 345-67-89."
    )
    assert fields(text) == ClaimFields(
        order_numbers=(ORDER,),
        tracking_numbers=("RR123456785CN",),
        product_urls=("aliexpress.ru/item/1005001234567890.html",),
        store_urls=("https://aliexpress.ru/store/912345678",),
    )


def test_pasted_seller_message() -> None:
    text = (DATA / "seller_message.txt").read_text(encoding="utf-8")
    assert fields(text) == ClaimFields(
        order_numbers=(ORDER,),
        tracking_numbers=("RR123456785CN",),
        product_urls=(
            "https://www.aliexpress.com/item/1005001234567890.html?spm=a2g0o.order_detail.0.0",
        ),
        store_urls=("https://www.aliexpress.com/store/912345678",),
    )


def test_long_claim_with_quotes_and_near_misses() -> None:
    text = (DATA / "claim_3kb.txt").read_text(encoding="utf-8")
    assert fields("Dispute for order 8123456789012345", text) == ClaimFields(
        order_numbers=(ORDER, "8123456789012346"),
        tracking_numbers=("RR123456785CN", "LP00123456789012", "YT1234567890123456"),
        product_urls=(
            "https://www.aliexpress.com/item/1005001234567890.html?spm=a2g0o.order_list.0.0",
            "aliexpress.ru/item/1005001234567890.html",
            "https://a.aliexpress.com/_mKxyz12",
            "https://s.click.aliexpress.com/e/_DdAbCdE",
        ),
        store_urls=(
            "https://www.aliexpress.com/store/912345678",
            "https://ru.aliexpress.com/store/all-wholesale-products/912345678.html",
        ),
    )


# --- one scan finds what two would ----------------------------------------------------------

S10_ALONE = re.compile(
    r"[0-9](?<![0-9][0-9])[0-9]{2}"
    r"(?: [0-9]{3} [0-9]{3}|[0-9](?:[0-9]{5}|[0-9]{4} [0-9]| [0-9]{4} [0-9]))"
    r" ?[A-Z]{2}(?![A-Z0-9@])"
)
NUMBER_ALONE = re.compile(
    r"[0-9](?<![0-9][0-9])[0-9]{3}"
    r"(?:[0-9]{12}|([ \-\u00a0\u202f])[0-9]{4}\1[0-9]{4}\1[0-9]{4})"
)
DIGIT_TEXT = st.lists(
    st.sampled_from([*"0123456789 -\u00a0\u202fABCZ@x", "RR", "CN", "1234 ", ORDER, "123456785"]),
    max_size=30,
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(DIGIT_TEXT)
def test_candidates_are_what_separate_scans_find(up: str) -> None:
    s10, numbers = _candidates(up)
    assert [(a, b) for a, b, _ in s10] == [m.span() for m in S10_ALONE.finditer(up)]
    assert numbers == [(m.start(), m.end(), m.group(1)) for m in NUMBER_ALONE.finditer(up)]


# -- the digit-run shortcut against the regex scan ------------------------------------------

_RUN_PIECES = [
    "1", "12", "123", "1234", "0000", "8603351943153700", "RR", "cn", " ", "-", "\u00a0",
    "\u202f", "a", "Z", "@", ".", "\n", "é", "٣", "１",
]  # fmt: skip


@settings(max_examples=500)
@given(st.lists(st.sampled_from(_RUN_PIECES), max_size=40).map("".join))
def test_run_starts_are_the_regex_matches(text: str) -> None:
    up = _upper(text)

    def spans(matches: Iterable[re.Match[str]]) -> list[tuple[int, str | None, str | None]]:
        return [(m.start(), m.group("s10"), m.group("number")) for m in matches]

    assert spans(_run_starts(up)) == spans(_RUN_START.finditer(up))


@settings(max_examples=300)
@given(st.text(st.sampled_from(["1", "9", "A", " ", "٣", "１", "-", "é"]), max_size=20))
def test_digits_of_a_tracking_number_are_its_ascii_digits(code: str) -> None:
    assert _NON_DIGITS.sub("", code) == "".join(c for c in code if c in "0123456789")
