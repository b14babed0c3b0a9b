"""langdetect's sampling loop on NumPy vectors: bit-identical answers, about twice as fast.

langdetect spends most of a detection in its trial loop: a few hundred times per text it
multiplies ~55 language probabilities by the weights of one randomly drawn n-gram, an
indexed Python loop each time. Here the same loop runs on NumPy arrays: the same IEEE
operations on each element in the same order (`p * (w + q)`, division by a left-to-right
`sum`), the same random draws (same seed, same list length for `choice`), so the results
are exactly those of the stock detector; a test checks that on a corpus.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from langdetect.detector import Detector
from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import ErrorCode, LangDetectException
from langdetect.language import Language
from langdetect.utils.ngram import NGram

SEED = 0  # langdetect samples n-grams at random; a fixed seed makes it a pure function
_ARRAY_CACHE_LIMIT = 50_000  # n-gram weight vectors kept (~0.5 KB each)

_normalised: dict[str, str] = {}  # NGram.normalize is a pure function of one character
_lock = threading.Lock()
_factory: DetectorFactory | None = None
_arrays: dict[str, Any] = {}


def _weights(word: str, table: dict[str, list[float]]) -> Any:
    vector = _arrays.get(word)
    if vector is None:
        if len(_arrays) >= _ARRAY_CACHE_LIMIT:
            _arrays.clear()
        vector = _arrays[word] = np.array(table[word], dtype=np.float64)
    return vector


class FastDetector(Detector):  # type: ignore[misc]
    """Detector whose `_detect_block` runs the unchanged algorithm on NumPy vectors."""

    def _extract_ngrams(self) -> list[str]:
        """langdetect's NGram buffer (1- to 3-grams, capitalised words skipped), inlined,
        with each character's normalisation looked up once per process."""
        table = self.word_lang_prob_map
        result: list[str] = []
        grams = " "
        capital = False
        for raw in self.text:
            ch = _normalised.get(raw)
            if ch is None:
                ch = _normalised[raw] = NGram.normalize(raw)
            last = grams[-1]
            if last == " ":
                grams = " "
                capital = False
                if ch == " ":
                    continue
            elif len(grams) >= NGram.N_GRAM:
                grams = grams[1:]
            grams += ch
            if ch.isupper():
                if last.isupper():
                    capital = True
            else:
                capital = False
            if capital:
                continue
            for n in range(1, len(grams) + 1):
                gram = grams[-n:]
                if gram != " " and gram in table:
                    result.append(gram)
        return result

    def _detect_block(self) -> None:
        self.cleaning_text()
        ngrams = self._extract_ngrams()
        if not ngrams:
            raise LangDetectException(ErrorCode.CantDetectError, "No features in text.")
        vectors = [_weights(w, self.word_lang_prob_map) for w in ngrams]
        size = len(self.langlist)
        total = np.zeros(size)
        rnd = self.random
        rnd.seed(self.seed)
        for _ in range(self.n_trial):
            prob = np.array(self._init_probability(), dtype=np.float64)
            alpha = self.alpha + rnd.gauss(0.0, 1.0) * self.ALPHA_WIDTH
            weight = alpha / self.BASE_FREQ
            i = 0
            while True:
                prob *= weight + rnd.choice(vectors)
                if i % 5 == 0:
                    prob /= sum(prob.tolist())  # Python's sum: langdetect's rounding
                    if max(0.0, float(prob.max())) > self.CONV_THRESHOLD or (
                        i >= self.ITERATION_LIMIT
                    ):
                        break
                i += 1
            total += prob / self.n_trial
        self.langprob = total.tolist()


def factory() -> DetectorFactory:
    """The profiles (a large table, ~0.4 s to load), loaded once per process."""
    global _factory
    with _lock:
        if _factory is None:
            loaded = DetectorFactory()
            loaded.load_profile(PROFILES_DIRECTORY)
            loaded.set_seed(SEED)
            _factory = loaded
        return _factory


def detect_langs(text: str) -> list[Language]:
    """Like `langdetect.detect_langs`, seeded; raises LangDetectException for no features."""
    detector = FastDetector(factory())
    detector.append(text)
    return list(detector.get_probabilities())
