"""The fast detector must give exactly the stock langdetect's answers (seeded alike): the same
languages with bit-identical probabilities, and the same exception where stock raises."""

from __future__ import annotations

import multiprocessing
import random
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import langdetect
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langdetect import DetectorFactory
from langdetect.detector import Detector
from langdetect.lang_detect_exception import LangDetectException
from langdetect.language import Language

from bench.corpus import generate
from config.settings import build_settings
from intake import langdetect_fast
from intake.langdetect_fast import SEED, compiled, detect_langs, factory
from intake.language import clean_for_detection
from intake.mime import parse_message
from intake.types import ParsedMessage
from tests.paths import SHARED_SAMPLES

MAX_CHARS = build_settings({}, env={}).checks.language_max_chars

SCRIPTS = [
    "Bonjour, mon colis n'est jamais arrivé et le vendeur ne répond plus.",
    "Das Paket ist nie angekommen, bitte erstatten Sie mir den Betrag. Straße, Größe.",
    "Mój telefon przyszedł uszkodzony, proszę o zwrot pieniędzy.",
    "Siparişim hiç gelmedi, lütfen paramı iade edin.",
    "Il pacco non è mai arrivato, vorrei un rimborso.",
    "Coletul nu a ajuns niciodată, vânzătorul nu răspunde; aș dori banii înapoi, ține-ți",
    "Посылка не пришла, продавец не отвечает. Прошу вернуть деньги.",
    "我的包裹一直没有收到。卖家也不回复消息，请帮我退款。",
    "我的包裹一直沒有收到。賣家也不回覆訊息，請幫我退款。",
    "注文した商品がまだ届きません。カスタマーサポートに連絡しました。",
    "주문한 상품이 아직 도착하지 않았습니다. 환불해 주세요.",
    "لم يصل طردي أبداً والبائع لا يرد على رسائلي. أريد استرداد أموالي.",
    "بسته من هرگز نرسید و فروشنده پاسخی نمی‌دهد. لطفا پولم را پس بدهید یی",
    "החבילה שלי לא הגיעה והמוכר לא עונה. אני רוצה החזר כספי.",
    "Το δέμα μου δεν έφτασε ποτέ και ο πωλητής δεν απαντά.",
    "मेरा पार्सल कभी नहीं आया और विक्रेता जवाब नहीं दे रहा है।",
    "พัสดุของฉันไม่เคยมาถึงและผู้ขายไม่ตอบกลับ",
    "Gói hàng của tôi chưa bao giờ đến, người bán không trả lời.",
    "Go\u0301i ha\u0300ng cu\u0309a to\u0302i chu\u031bа bao gio\u031b\u0300 đe\u0302\u0301n",
    "Ạ ạ Ả ả Ấ ấ ệ Ệ ỹ ề Ử ự",
]
MIXED = [
    "Hello, the parcel llegó roto y no funciona, please help me, gracias, спасибо.",
    "Я заказал iPhone case и Bluetooth headset, но ничего не пришло.",
    "我买了 wireless headphones 和 phone case，都没有收到。",
    "طلبت Samsung Galaxy S23 case ولم يصل",
    "The seller wrote: Ваш заказ отправлен. 您的订单已发货. Votre commande est partie.",
    "Russian text in a mostly English mail: Здравствуйте, спасибо, до свидания",
    "Только одно слово English",
]
SHORT = ["a", "ok", "Hi", "Да", "好", "ع", "x y", "é", "ß", "A", "AB", "Ab", " a ", "ok.", "no!"]
CAPITALS = [
    "URGENT: REFUND MY ORDER NOW, THE SELLER IS A SCAM AND NEVER SHIPPED ANYTHING",
    "iPhone USB-C HDMI DVD GPS LED TV, ABCdef AbC aBC McDonald O'NEIL",
    "ПОСЫЛКА НЕ ПРИШЛА, ВЕРНИТЕ ДЕНЬГИ",
    "Please Refund My Order As Soon As Possible Thank You",
    "ÉCOLE ÉTÉ ÇA Ça va",
]
ODD = [
    "signs between the cases: [\\]^_` A_B^C`D a[b]c",
    "tabs\tand\nnewlines  double  spaces   triple\r\nend",
    "see https://example.com/item/1005.html?x=1 and write to john.doe@example.org please",
    "http://a.b/c@d.e mail@@host no spaces:http://x.y/z",
    "10 000 руб. за 2 шт., 3 дня назад, №12345",
    "“Smart quotes” — dashes… and • bullets ‹›",
    "emoji 😀😀 in a sentence 🎉 with text",
    "\u00a0non\u2003breaking\u2009spaces\u3000here",
    "lone surrogate \ud800 in text",
]
NO_FEATURES = ["", " ", "12345 !!! ???", "😀😀😀", "... --- ...", "\n\n\t"]
ENGLISH = (
    "Hello, I ordered a desk lamp and the parcel still has not arrived. The tracking page "
    "has shown the same status for three weeks and the seller does not answer my messages. "
)
RUSSIAN = "Здравствуйте! Посылка так и не пришла, продавец не отвечает на сообщения. "
LONG = [
    (ENGLISH * 60)[:10_000],
    (ENGLISH * 80)[:12_345],  # beyond stock's 10,000-character cut
    (RUSSIAN * 200)[:10_000],
    (RUSSIAN + ENGLISH) * 40,
]
HANDMADE = SCRIPTS + MIXED + SHORT + CAPITALS + ODD + NO_FEATURES + LONG


def stock_answer(text: str) -> list[tuple[str, float]] | str:
    """Stock langdetect's probabilities (or its exception's message), seeded as ours."""
    DetectorFactory.seed = SEED
    return answer(langdetect.detect_langs, text)


def answer(detect: Callable[[str], list[Language]], text: str) -> list[tuple[str, float]] | str:
    try:
        return [(guess.lang, guess.prob) for guess in detect(text)]
    except LangDetectException as exc:
        return f"raised: {exc}"


def bench_texts() -> list[str]:
    """The buyer's own text of generated claim mail, whole and as the checker cleans it."""
    texts: list[str] = []
    for data in generate(150, seed=11):
        parsed = parse_message(data)
        assert isinstance(parsed, ParsedMessage)
        texts += [parsed.own_text, clean_for_detection(parsed.own_text, MAX_CHARS)]
    return texts


def sample_texts() -> list[str]:
    """The own text of every shared sample message that parses."""
    texts: list[str] = []
    for path in sorted(SHARED_SAMPLES.rglob("*.eml")):
        parsed = parse_message(path.read_bytes())
        if isinstance(parsed, ParsedMessage):
            texts += [parsed.own_text, clean_for_detection(parsed.own_text, MAX_CHARS)]
    return texts


def test_the_compiled_trial_loop_is_in_use() -> None:
    assert compiled()


@pytest.mark.parametrize("text", HANDMADE)
def test_handmade_texts_score_exactly_as_stock(text: str) -> None:
    assert answer(detect_langs, text) == stock_answer(text)


def test_no_feature_texts_raise_as_stock() -> None:
    for text in NO_FEATURES:
        assert str(stock_answer(text)).startswith("raised: ")


def test_generated_claims_score_exactly_as_stock() -> None:
    for text in bench_texts():
        assert answer(detect_langs, text) == stock_answer(text), text[:80]


def test_shared_sample_bodies_score_exactly_as_stock() -> None:
    texts = sample_texts()
    if not texts:
        pytest.skip(f"no sample mail under {SHARED_SAMPLES}")
    for text in texts:
        assert answer(detect_langs, text) == stock_answer(text), text[:80]


# Letters of several scripts, capitals, the signs between Z and a, Vietnamese combining
# marks, digits, URL and address pieces, and whitespace: random texts hit every branch.
ALPHABET = (
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
    "àáâãèéêìíòóôõùúýăđơưçñßøåäöüşţșț"
    "абвгдежзийклмнопрстуфхцчшщыэюяАБВГДЕЖЗИЙКЛМНОПРСТУФХЦЧШЩЫЭЮЯ"
    "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年ぁあいアイカ가나다"
    "ابتثجحخدذرسشصضطظعغفقكلمنهويی"
    "\u0300\u0301\u0303\u0309\u0323ạẠệỹ"
    "0123456789@:/.-,!?'\"()  \n\t\u00a0\u2003"
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=ALPHABET, max_size=300))
def test_random_texts_score_exactly_as_stock(text: str) -> None:
    assert answer(detect_langs, text) == stock_answer(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=200), st.sampled_from([10_000, 50, 7, 1]))
def test_prepared_text_equals_stocks_append_and_cleaning(text: str, max_length: int) -> None:
    detector = factory().create()
    detector.set_max_text_length(max_length)
    detector.append(text)
    detector.cleaning_text()
    assert langdetect_fast._prepared(text, max_length) == detector.text


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_segment_grams_equal_stocks_extraction(segment: str) -> None:
    detector = factory().create()
    detector.text = segment
    table = factory().word_lang_prob_map
    assert langdetect_fast._segment_grams(segment, table) == detector._extract_ngrams()


def test_the_numpy_fallback_scores_exactly_as_stock() -> None:
    engine = langdetect_fast._Engine(factory(), None)
    for text in SCRIPTS + MIXED + CAPITALS + LONG[:1] + bench_texts()[:40]:
        assert answer(engine.detect, text) == stock_answer(text)


def test_a_short_draw_stream_is_extended_without_changing_answers() -> None:
    kernel = langdetect_fast._compile()
    engine = langdetect_fast._Engine(factory(), kernel, stream_words=4)
    for text in SCRIPTS[:6] + LONG[:1]:
        assert answer(engine.detect, text) == stock_answer(text)


def test_the_stream_replays_the_seeded_generator() -> None:
    generator = random.Random(SEED)
    expected = [generator.getrandbits(32) for _ in range(300)]
    stream = langdetect_fast._Stream(SEED, 100)
    assert stream.words.tolist() == expected[:100]
    assert stream.ensure(300).tolist()[:300] == expected


def test_the_compiled_trials_equal_the_interpreted_ones() -> None:
    # The interpreted kernel runs CPython's own math functions (its Gaussian draws are
    # `Random.gauss`'s formula): the compiled one must use the same, bit for bit.
    factory()
    engine = langdetect_fast._engine
    assert engine is not None and engine.compiled
    detector = factory().create()
    for text in SCRIPTS[:8] + CAPITALS[:2] + LONG[:1]:
        rows = engine._rows(langdetect_fast._prepared(text, detector.max_text_length))
        results = []
        for kernel in (langdetect_fast._trials, engine._compiled):
            total = np.zeros(len(engine._initial))
            used = kernel(
                engine._stream.words, rows, engine._grams.weights, engine._initial, total,
                detector.alpha, Detector.ALPHA_WIDTH, Detector.BASE_FREQ,
                32 - len(rows).bit_length(), detector.n_trial, Detector.ITERATION_LIMIT,
                Detector.CONV_THRESHOLD, langdetect_fast._COMPENSATED_SUM,
            )  # fmt: skip
            results.append((used, total.tolist()))
        assert results[0] == results[1]
        assert results[0][0] > 0


def test_varied_texts_use_one_compiled_specialisation() -> None:
    for text in SCRIPTS + SHORT + LONG:
        answer(detect_langs, text)
    kernel = langdetect_fast._engine._compiled  # type: ignore[union-attr]
    assert len(kernel.signatures) == 1  # compiled at load, never again on a message


def test_threads_sharing_a_cold_engine_score_exactly_as_stock() -> None:
    engine = langdetect_fast._Engine(factory(), langdetect_fast._compile())
    texts = SCRIPTS + MIXED + CAPITALS + bench_texts()[:60]
    expected = {text: stock_answer(text) for text in texts}
    failures: list[str] = []

    def work(seed: int) -> None:
        order = list(texts)
        random.Random(seed).shuffle(order)
        failures.extend(t for t in order if answer(engine.detect, t) != expected[t])

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_child_processes_score_exactly_as_stock(method: str) -> None:
    texts = SCRIPTS[:4] + CAPITALS[:1]
    factory()  # a forked child inherits the loaded engine
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        results = list(pool.map(detect_langs, texts))
    for text, guesses in zip(texts, results, strict=True):
        assert [(guess.lang, guess.prob) for guess in guesses] == stock_answer(text)


@settings(max_examples=500, deadline=None)
@given(st.text(st.sampled_from(["a", "é", " ", "\x00", "\n", "\t", "漢"]), max_size=20))
def test_segments_are_the_regex_segments(text: str) -> None:
    assert langdetect_fast._segments(text) == langdetect_fast._SEGMENT.findall(text)


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        st.sampled_from(
            ["a", "e", "ê", "Ă", "\u0300", "\u0301", "\u0303", "\u0309", "\u0323", "\u0302", "漢"]
        ),
        max_size=12,
    )
)
def test_vietnamese_marks_are_looked_for_before_normalising(text: str) -> None:
    from langdetect.utils.ngram import NGram

    if not langdetect_fast._has_vietnamese_mark(text):
        assert NGram.normalize_vi(text) == text
