"""langdetect's detector, made cheap: the same probabilities, bit for bit, at a fraction of the CPU.

Stock langdetect (1.0.9) spends a detection in three places, each replaced here by an
equivalent that a test compares with the stock code on a varied corpus:

* `Detector.append` and `cleaning_text` walk the text one character at a time; `_prepared`
  does the same with a few regular-expression passes.
* `_extract_ngrams` normalises and buffers one character at a time. Its buffer restarts
  after every space, so the n-grams a space-delimited segment yields (the ones ending in
  its trailing space included) depend on that segment alone: they are found once per
  segment (`str.translate` normalising, `_segment_grams` buffering) and cached as row
  numbers into a matrix of the profile weights met so far. Only the number of n-grams
  matters to the draws, so no weights are gathered per text.
* The trial loop (seven trials of up to a thousand draws, each multiplying ~55 language
  probabilities by one n-gram's weights) runs compiled with numba, with no fast-math, so
  each element sees the same IEEE operations in the same order. Its draws replay the
  generator stock langdetect seeds with `SEED`: the 32-bit outputs of `random.Random(SEED)`
  are a fixed sequence, so they are generated once per process and consumed exactly as
  `Random.choice` consumes them (`getrandbits(k)` is the top `k` bits of one output,
  rejected while out of range); the Gaussian draw before each trial is `Random.gauss`'s
  formula on that same sequence, with the C library's `log`, `sqrt`, `cos` and `sin` that
  CPython's `math` calls. All seven trials run in one compiled call (a call costs more
  than a typical trial). The per-iteration normalisation divides by `sum()` as the
  running Python computes it: left to right up to 3.11, Neumaier's compensated summation
  from 3.12 on.

Without numba, or when the compiled path does not reproduce the stock detector on the
check texts at load (a future Python changing `random`, `gauss` or `sum`, a numba whose
math functions round differently), the trial loop runs on
NumPy with a real `random.Random` and Python's `sum`: slower, equally exact. The check
also makes numba compile (or load from its cache) at `factory()`, not on a message.

Thread-safe: the caches are plain dicts (single operations, atomic under the GIL), the
shared arrays only ever grow, by replacement under a lock, and the compiled loop releases
the GIL. Fork-safe (the locks are renewed in a forked child) and spawn-safe (a spawned
process loads everything again at its own `factory()`).
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from langdetect.detector import Detector
from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory
from langdetect.lang_detect_exception import ErrorCode, LangDetectException
from langdetect.language import Language
from langdetect.utils.ngram import NGram

SEED = 0  # langdetect samples n-grams at random; a fixed seed makes it a pure function
_SEGMENT_CACHE_LIMIT = 50_000  # cached segments (~340 bytes each); cleared when full
_NORMALISED_LIMIT = 20_000  # code points with their normalised form (~150 bytes each)
_STREAM_WORDS = 1 << 14  # generator outputs drawn up front; ~600 per detection, more on demand
_TWOPI = 2.0 * math.pi  # random.TWOPI
_RES53 = 1.0 / 9007199254740992.0  # 2**-53, as CPython's random() scales
_COMPENSATED_SUM = sys.version_info >= (3, 12)  # "Changed in version 3.12" (builtin sum docs)

# Texts the compiled path must score exactly as stock langdetect before it is used.
_CHECK_TEXTS = (
    "The parcel never arrived and the seller does not answer, please refund my order.",
    "Посылка так и не пришла, продавец не отвечает. Прошу вернуть деньги.",
    "我的包裹一直没有收到，卖家也不回复消息。请帮我退款，谢谢。",
    "Il pacco non è mai arrivato, vorrei un rimborso. NIENTE risposta dal venditore.",
)

log = logging.getLogger("intake.language")

_load_lock = threading.Lock()  # the one-time loads
_grow_lock = threading.Lock()  # the rare growth of the shared tables
_factory: DetectorFactory | None = None
_engine: _Engine | None = None

_SPACE_RUN = re.compile(" {2,}")
# cleaning_text's tests, as character classes: "Latin" is 'A' <= ch <= 'z' (the six signs
# between Z and a included), "non-Latin" any ch >= U+0300 (its Latin Extended Additional
# exception compares a block number with a block name, so it never applies). Runs, not
# single characters: far fewer matches, the same counts.
_LATIN_RUN = re.compile("[A-z]+")
_NON_LATIN_RUN = re.compile("[\u0300-\U0010ffff]+")
_SEGMENT = re.compile("[^ ]+ ?")
_VI_MARKS = tuple(NGram.DMARK_CLASS)
_NOT_LATIN_BYTES = bytes(b for b in range(256) if not ord("A") <= b <= ord("z"))


def _has_vietnamese_mark(text: str) -> bool:
    """Whether `text` holds one of the combining marks `NGram.normalize_vi` composes (it
    changes nothing without one)."""
    return any(mark in text for mark in _VI_MARKS)


def _segments(text: str) -> list[str]:
    """`_SEGMENT.findall(text)`: each word with the one space after it. Without runs of
    spaces (`_prepared` collapses them), that is the text cut after every space; a leading
    space and the empty rest after a trailing one are not segments. (NUL marks the cuts.)"""
    if "  " in text or "\x00" in text:
        return _SEGMENT.findall(text)
    segments = text.replace(" ", " \x00").split("\x00")
    if segments[-1] == "":
        segments.pop()
    if segments and segments[0] == " ":
        del segments[0]
    return segments


def _prepared(text: str, max_length: int) -> str:
    """`Detector.text` after stock `append(text)` (once, on a new detector) and
    `cleaning_text()`.

    Each pass is skipped when the text lacks what it needs to change anything: "://" for
    a link, "@" for an address, any non-ASCII character for Vietnamese marks and for the
    removal of Latin letters from a mostly non-Latin text.
    """
    if "://" in text:
        text = Detector.URL_RE.sub(" ", text)
    if "@" in text:
        text = Detector.MAIL_RE.sub(" ", text)
    ascii_only = text.isascii()
    if not ascii_only and _has_vietnamese_mark(text):
        text = NGram.normalize_vi(text)
    text = text[:max_length]
    if "  " in text:
        text = _SPACE_RUN.sub(" ", text)
    if ascii_only:
        return text
    # Latin letters are ASCII and non-Latin characters are not: the ASCII bytes give the
    # Latin count and a bound on the other, enough for mostly Latin text (Spanish, French).
    ascii_bytes = text.encode("ascii", "ignore")
    latin = len(ascii_bytes.translate(None, _NOT_LATIN_BYTES))
    if latin * 2 >= len(text) - len(ascii_bytes):
        return text
    if latin * 2 < sum(map(len, _NON_LATIN_RUN.findall(text))):
        return _LATIN_RUN.sub("", text)
    return text


class _Normalised(dict[int, str]):
    """`NGram.normalize` of every code point met, as a `str.translate` table filled on first
    use (and emptied past `_NORMALISED_LIMIT` entries, against texts of many rare ones)."""

    def __missing__(self, code: int) -> str:
        if len(self) >= _NORMALISED_LIMIT:
            self.clear()
        char = self[code] = NGram.normalize(chr(code))
        return char


_NORMALISED = _Normalised()


def _segment_grams(segment: str, table: dict[str, list[float]]) -> list[str]:
    """The profile n-grams stock `_extract_ngrams` finds in `segment`, read from a fresh
    buffer, by `NGram.add_char`'s rules: a space ends a word and the next character starts
    the buffer again; the buffer keeps the last three characters; from the second of two
    capitals in a row until the next non-capital, nothing is taken; every 1- to 3-gram
    ending at a character is taken if the profiles know it, except a lone space."""
    found: list[str] = []
    grams = " "
    capital = False
    for char in segment.translate(_NORMALISED):
        last = grams[-1]
        if last == " ":
            grams = " "
            capital = False
            if char == " ":
                continue
        elif len(grams) >= NGram.N_GRAM:
            grams = grams[1:]
        grams += char
        if char.isupper():
            if last.isupper():
                capital = True
        else:
            capital = False
        if capital:
            continue
        for n in range(1, len(grams) + 1):
            gram = grams[-n:]
            if gram != " " and gram in table:
                found.append(gram)
    return found


class _GramRows:
    """A row number for every profile n-gram met so far, and their weights as one matrix.

    Rows are only appended, and a row's weights are written before its number is handed
    out, so a caller that reads `weights` after getting its rows finds them all, even while
    another thread grows the matrix.
    """

    def __init__(self, table: dict[str, list[float]], languages: int) -> None:
        self._table = table
        self._rows: dict[str, int] = {}
        self.weights = np.empty((1024, languages), dtype=np.float64)

    def rows(self, grams: list[str]) -> list[int]:
        """The row of each gram (all must be in the profile table), in order."""
        known = self._rows
        if any(gram not in known for gram in grams):
            with _grow_lock:  # another thread may have added some meanwhile
                missing = [gram for gram in dict.fromkeys(grams) if gram not in known]
                if missing:
                    self._add(missing)
        return [known[gram] for gram in grams]

    def _add(self, grams: list[str]) -> None:
        start, end = len(self._rows), len(self._rows) + len(grams)
        if end > len(self.weights):  # at most every profile n-gram: 87,598 rows, 38 MB
            grown = np.empty(
                (min(max(2 * len(self.weights), end), len(self._table)), self.weights.shape[1])
            )
            grown[:start] = self.weights[:start]
            self.weights = grown
        self.weights[start:end] = [self._table[gram] for gram in grams]
        for row, gram in enumerate(grams, start):
            self._rows[gram] = row


class _Stream:
    """The 32-bit outputs of `random.Random(SEED)`, in order, drawn ahead and extended on
    demand (a NumPy array of uint32; only ever replaced by a longer one with the same start)."""

    def __init__(self, seed: int, words: int) -> None:
        self._generator = random.Random(seed)
        self.words = self._draw(words)

    def _draw(self, count: int) -> Any:
        # getrandbits(32 * count) packs its outputs least significant first, on any platform.
        packed = self._generator.getrandbits(32 * count).to_bytes(4 * count, "little")
        return np.frombuffer(packed, dtype="<u4").astype(np.uint32)

    def ensure(self, length: int) -> Any:
        """The words, at least `length` of them."""
        with _grow_lock:
            if len(self.words) < length:
                more = self._draw(max(length - len(self.words), len(self.words)))
                self.words = np.concatenate([self.words, more])
            return self.words


def _trials(
    words: Any,
    rows: Any,
    weights: Any,
    initial: Any,
    total: Any,
    alpha: float,
    alpha_width: float,
    base_freq: float,
    shift: int,
    trials: int,
    limit: int,
    threshold: float,
    compensated: bool,
) -> int:
    """Every trial of `Detector._detect_block`, from `initial` probabilities, each result
    divided by `trials` and added to `total`; numba compiles it. One call a detection: a
    compiled call costs a few microseconds, more than most trials do.

    Reads the generator's outputs from the start of `words`, as a fresh detector's
    `Random(SEED)` draws them: before each trial `Random.gauss(0.0, 1.0)`, by CPython's
    formula (two `random()` doubles of two outputs each make a pair; the second is kept for
    the next trial); then n-gram `rows[r]`, `r` an output shifted right by `shift`,
    skipping outputs while `r >= len(rows)` (`Random._randbelow`). Returns the number of
    outputs used, or -1 (with `total` partly filled) when `words` ran out.
    """
    count = rows.shape[0]
    size = initial.shape[0]
    end = words.shape[0]
    position = 0
    spare = 0.0
    has_spare = False
    for _ in range(trials):
        if has_spare:
            z = spare
            has_spare = False
        else:
            if position + 4 > end:
                return -1
            # random() is genrand_res53: the top 27 and 26 bits of two outputs
            high, low = np.int64(words[position]) >> 5, np.int64(words[position + 1]) >> 6
            x = (high * 67108864.0 + low) * _RES53
            high, low = np.int64(words[position + 2]) >> 5, np.int64(words[position + 3]) >> 6
            y = (high * 67108864.0 + low) * _RES53
            position += 4
            x2pi = x * _TWOPI
            g2rad = math.sqrt(-2.0 * math.log(1.0 - y))
            z = math.cos(x2pi) * g2rad
            spare = math.sin(x2pi) * g2rad
            has_spare = True
        weight = (alpha + (0.0 + z * 1.0) * alpha_width) / base_freq  # mu=0.0, sigma=1.0
        prob = initial.copy()
        i = 0
        while True:
            if position >= end:
                return -1
            drawn = np.int64(words[position]) >> shift
            position += 1
            while drawn >= count:
                if position >= end:
                    return -1
                drawn = np.int64(words[position]) >> shift
                position += 1
            row = rows[drawn]
            for j in range(size):
                prob[j] *= weight + weights[row, j]
            if i % 5 == 0:
                norm = prob[0]  # sum() starts from int 0, and 0 + p is p exactly
                if compensated:  # CPython >= 3.12 builtin sum over floats (Neumaier)
                    error = 0.0
                    for j in range(1, size):
                        value = prob[j]
                        step = norm + value
                        if abs(norm) >= abs(value):
                            error += (norm - step) + value
                        else:
                            error += (value - step) + norm
                        norm = step
                    if error != 0.0 and np.isfinite(error):
                        norm += error
                else:
                    for j in range(1, size):
                        norm += prob[j]
                top = 0.0
                for j in range(size):
                    value = prob[j] / norm
                    if top < value:
                        top = value
                    prob[j] = value
                if top > threshold or i >= limit:
                    break
            i += 1
        for j in range(size):
            total[j] += prob[j] / trials
    return position


class _Engine:
    """Everything a detection needs beyond the profiles, built once per process."""

    def __init__(
        self,
        loaded: DetectorFactory,
        compiled: Callable[..., int] | None,
        stream_words: int = _STREAM_WORDS,
    ) -> None:
        self._factory = loaded
        self._template = Detector(loaded)  # stock defaults: alpha, trials, length, priors
        self._initial = np.array(self._template._init_probability(), dtype=np.float64)
        self._grams = _GramRows(loaded.word_lang_prob_map, len(loaded.langlist))
        self._segments: dict[str, bytes] = {}
        self._stream = _Stream(SEED, stream_words)
        self._compiled = compiled

    @property
    def compiled(self) -> bool:
        """True when the trial loop runs compiled."""
        return self._compiled is not None

    def detect(self, text: str) -> list[Language]:
        """Stock `detect_langs(text)` with the factory's seed; raises LangDetectException
        ("No features in text.") as it does."""
        rows = self._rows(_prepared(text, self._template.max_text_length))
        if not len(rows):
            raise LangDetectException(ErrorCode.CantDetectError, "No features in text.")
        trials = self._compiled_trials if self._compiled else self._numpy_trials
        return list(self._template._sort_probability(trials(rows).tolist()))

    def verified(self) -> bool:
        """True when the compiled path scores the check texts exactly as stock langdetect;
        the first call also compiles (or loads from numba's cache) the trial loop."""
        for text in _CHECK_TEXTS:
            stock = self._factory.create()
            stock.append(text)
            expected = [(guess.lang, guess.prob) for guess in stock.get_probabilities()]
            if [(guess.lang, guess.prob) for guess in self.detect(text)] != expected:
                return False
        return True

    def _rows(self, text: str) -> Any:
        """The weight rows of the text's n-grams, in langdetect's order (int32 array)."""
        segments = _segments(text)
        parts = list(map(self._segments.get, segments))
        if None in parts:
            parts = self._fill(segments, parts)
        return np.frombuffer(b"".join(parts), dtype=np.int32)  # type: ignore[arg-type]

    def _fill(self, segments: list[str], parts: list[bytes | None]) -> list[bytes]:
        """`parts` with the missing segments' rows filled in, and cached."""
        cache = self._segments
        table = self._factory.word_lang_prob_map
        filled: list[bytes] = []
        for segment, part in zip(segments, parts, strict=True):
            if part is None:
                rows = self._grams.rows(_segment_grams(segment, table))
                part = np.array(rows, dtype=np.int32).tobytes()
                if len(cache) >= _SEGMENT_CACHE_LIMIT:
                    cache.clear()
                cache[segment] = part
            filled.append(part)
        return filled

    def _compiled_trials(self, rows: Any) -> Any:
        """The averaged probabilities of the trials over `rows`, in one compiled call (run
        again on a longer stream if it ran out of outputs)."""
        assert self._compiled is not None
        weights = self._grams.weights  # read after `rows` were numbered: holds them all
        shift = 32 - len(rows).bit_length()  # getrandbits(k) keeps an output's top k bits
        words = self._stream.words
        while True:
            total = np.zeros(len(self._initial))
            used = self._compiled(
                words, rows, weights, self._initial, total, self._template.alpha,
                Detector.ALPHA_WIDTH, Detector.BASE_FREQ, shift, self._template.n_trial,
                Detector.ITERATION_LIMIT, Detector.CONV_THRESHOLD, _COMPENSATED_SUM,
            )  # fmt: skip
            if used >= 0:
                return total
            words = self._stream.ensure(2 * len(words))

    def _numpy_trials(self, rows: Any) -> Any:
        """The same loop on NumPy vectors with a real generator and Python's sum."""
        weights = self._grams.weights
        choices = rows.tolist()
        trials = self._template.n_trial
        rnd = random.Random(SEED)
        total = np.zeros(len(self._initial))
        for _ in range(trials):
            prob = self._initial.copy()
            alpha = self._template.alpha + rnd.gauss(0.0, 1.0) * Detector.ALPHA_WIDTH
            weight = alpha / Detector.BASE_FREQ
            i = 0
            while True:
                prob *= weight + weights[rnd.choice(choices)]
                if i % 5 == 0:
                    prob /= sum(prob.tolist())
                    if max(0.0, float(prob.max())) > Detector.CONV_THRESHOLD or (
                        i >= Detector.ITERATION_LIMIT
                    ):
                        break
                i += 1
            total += prob / trials
        return total


def _compile() -> Callable[..., int] | None:
    """`_trials` compiled by numba (cached on disk), or None without numba."""
    try:
        import numba  # type: ignore[import-untyped]  # imported here: ~0.3 s, only on load
    except ImportError:
        log.warning("numba is not installed: language detection runs on the slower NumPy path")
        return None
    try:
        return numba.njit(cache=True, nogil=True)(_trials)  # type: ignore[no-any-return]
    except RuntimeError:  # no writable cache directory: compile in every process (~0.7 s)
        return numba.njit(nogil=True)(_trials)  # type: ignore[no-any-return]


def factory() -> DetectorFactory:
    """The profiles (a large table, ~0.3 s to load) and the compiled trial loop, loaded and
    checked once per process; call it at start-up so the first message does not pay."""
    global _factory, _engine
    with _load_lock:
        if _factory is None:
            loaded = DetectorFactory()
            loaded.load_profile(PROFILES_DIRECTORY)
            loaded.set_seed(SEED)
            _factory = loaded
        if _engine is None:
            _engine = _checked_engine(_factory)
    return _factory


def _checked_engine(loaded: DetectorFactory) -> _Engine:
    """An engine on the compiled trial loop if it reproduces stock langdetect here, else
    on the NumPy loop."""
    engine = _Engine(loaded, _compile())
    if engine.compiled and not engine.verified():
        log.warning(
            "compiled language detection differs from langdetect on Python %s; "
            "using the slower NumPy path",
            sys.version.split()[0],
        )
        engine = _Engine(loaded, None)
    return engine


def compiled() -> bool:
    """True when detection runs on the compiled trial loop (numba present, and its answers
    checked against stock langdetect at load); loads everything if not done yet."""
    factory()
    assert _engine is not None
    return _engine.compiled


def detect_langs(text: str) -> list[Language]:
    """Like `langdetect.detect_langs`, seeded; raises LangDetectException for no features."""
    if _engine is None:
        factory()
    assert _engine is not None
    return _engine.detect(text)


def _after_fork_in_child() -> None:
    """Fresh locks: the parent may have forked while another thread held one."""
    global _load_lock, _grow_lock
    _load_lock = threading.Lock()
    _grow_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
