"""The NumPy detector must give exactly the stock langdetect's answers (seeded alike)."""

from __future__ import annotations

import langdetect
from langdetect import DetectorFactory

from bench.corpus import generate
from intake.langdetect_fast import SEED, detect_langs
from intake.mime import parse_message
from intake.types import ParsedMessage

OTHERS = [
    "Bonjour, mon colis n'est jamais arrivé et le vendeur ne répond plus.",
    "Das Paket ist nie angekommen, bitte erstatten Sie mir den Betrag.",
    "Mój telefon przyszedł uszkodzony, proszę o zwrot pieniędzy.",
    "Siparişim hiç gelmedi, lütfen paramı iade edin.",
    "Il pacco non è mai arrivato, vorrei un rimborso.",
    "Посылка не пришла, продавец не отвечает.",
    "我的包裹一直没有收到。",
    "ok",
]


def test_probabilities_are_identical_to_stock_langdetect() -> None:
    DetectorFactory.seed = SEED
    texts = list(OTHERS)
    for data in generate(150, seed=11):
        parsed = parse_message(data)
        assert isinstance(parsed, ParsedMessage)
        texts.append(parsed.own_text[:600])
    for text in texts:
        ours = [(g.lang, g.prob) for g in detect_langs(text)]
        stock = [(g.lang, g.prob) for g in langdetect.detect_langs(text)]
        assert ours == stock, text
