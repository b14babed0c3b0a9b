"""The language check: is the buyer's own text written in a language the desk accepts?

langdetect samples n-grams at random, so the seed is fixed (same text, same verdict) and the
language profiles (~0.4 s, a large table) are loaded once per process and shared by every
checker and thread. The detector reads a cleaned, capped prefix of the text: links, e-mail
addresses and anything holding a digit (order and tracking numbers, dates, prices) carry no
language and would skew the n-gram counts, and the first few hundred characters of a buyer's
own words decide as well as the whole text at a fraction of the cost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from langdetect.lang_detect_exception import LangDetectException

from config.settings import ChecksSettings
from intake.langdetect_fast import detect_langs, factory
from intake.types import LanguageVerdict

UNKNOWN = "unknown"

# Han, kana and Hangul carry about a short word per character: one counts as this many letters
# towards `language_min_letters`, so a 20-character Chinese claim is judged, not waved through.
_UNSPACED_LETTER_WEIGHT = 3

_TLDS = (
    "com|net|org|info|biz|io|co|me|app|shop|store|online|site|xyz|example|"
    "ru|su|by|kz|ua|cn|hk|tw|jp|kr|us|ca|mx|br|ar|cl|uk|ie|de|at|ch|fr|be|nl|es|pt|it|"
    "pl|cz|sk|hu|ro|bg|gr|tr|il|in|au|se|no|fi|dk|рф"
)
_CODE = r"[A-Za-z0-9#№.:/+_\-]*\d[A-Za-z0-9#№.:/+_\-]*"
# Every part is tried only where a token starts (after whitespace and any opening bracket,
# quote or currency sign), which keeps the pass cheap (~0.1 ms for 1,500 characters, against
# ~0.5 ms when every position tries every part): e-mail addresses, links with a scheme or
# www., domains with a path or on a common TLD, and codes (order and tracking numbers, dates,
# prices). Codes are also taken from inside non-Latin text, which has no spaces in Chinese
# ("订单号8123456789012345") and often none after "№" in Russian.
_OPENERS = r"[(\[<{\"'«„“$€£¥₽]*"
# Every part needs a ".", a ":" or a digit inside its token (an address its domain's dot, a
# link "://" or a dot, a code its digit): this look-ahead rejects a plain word in one scan
# instead of letting each part read it and back off.
_TOKEN_GATE = r"(?=[^\s.:\d]*+[.:\d])"
_PARTS = (
    r"(?:[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+"
    r"|[A-Za-z][A-Za-z0-9+.\-]*://\S*"
    r"|[Ww]{3}\.\S*"
    rf"|(?:[\w\-]+\.)+(?:[A-Za-z]{{2,63}}/\S*|(?i:{_TLDS})(?![\w\-])(?:[/?#]\S*)?)"
    rf"|{_CODE})"
)
_NOISE = re.compile(rf"(?<!\S){_OPENERS}{_TOKEN_GATE}{_PARTS}|(?<=[^\x00-\x7f]){_CODE}")
# The same for ASCII text, which never has a code glued to non-Latin text: each match also
# takes the whitespace before its token (the text gets a leading space), so the regex engine
# skips from one whitespace character to the next instead of trying every position. The
# taken character is whitespace next to the " " put in its place: nothing changes once
# whitespace is collapsed.
_NOISE_ASCII = re.compile(rf"\s{_OPENERS}{_TOKEN_GATE}{_PARTS}")
# Cheaper than that pass: a match lies inside one token and starts at the whitespace right
# before it (after any other whitespace the gate fails), and only a token holding a ".", ":"
# or digit passes the gate. In the bytes of the text with those characters made "!" and
# whitespace " ", `find` reaches such tokens at C speed; the pattern is tried once at each.
_NOISE_TOKEN = re.compile(rf"{_OPENERS}{_TOKEN_GATE}{_PARTS}")
_GATE_CHAR = re.compile(r"[.:\d]")
_GATE_MARKS = bytes(
    33 if chr(b) in ".:0123456789" else 32 if chr(b).isspace() else 97 for b in range(256)
)
# Runs, not single characters: one match per word instead of one per letter, the same count.
_LETTERS = re.compile(r"[^\W\d_]+")
_UNSPACED = re.compile(
    r"[\u0e00-\u0eff\u1100-\u11ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+"
)
# What `_LETTERS` does not match in ASCII: everything but A-Z and a-z.
_ASCII_NON_LETTERS = bytes(c for c in range(128) if not chr(c).isalpha())
_BELOW_E0 = bytes(range(0xE0))
# Characters cleaned beyond what the cap still lacks, per step: noise removed and runs of
# spaces collapsed shrink a step, and one step too few costs a second step.
_STEP_SLACK = 32  # at least 1: each step must end past its start


def clean_for_detection(text: str, max_chars: int) -> str:
    """`text` without links, e-mail addresses and digit-bearing tokens, whitespace collapsed,
    then cut to at most `max_chars` characters on a word boundary (a hard cut only inside a
    run with no spaces, such as Chinese).

    Only as much of `text` is cleaned as the cap needs: it is cut into windows at whitespace,
    and every pattern is confined to one token, so the result equals cleaning the whole text
    (unless a single token is longer than a window, 2,048 characters or more). Inside a
    window, steps a little longer than what the cap still lacks are cleaned one at a time,
    each ending at a space or line break (like a window's end), so a 1,000-character claim
    is not cleaned whole for 400 characters; the windows themselves stay where they were.
    """
    window = max(4 * max_chars, 2048)
    pieces: list[str] = []
    size = 0
    pos, end_of_text = 0, len(text)
    while pos < end_of_text and size <= max_chars:
        end = min(end_of_text, pos + window)
        if end < end_of_text:
            cut = max(text.rfind(" ", pos, end), text.rfind("\n", pos, end))
            if cut > pos:
                end = cut
        while pos < end and size <= max_chars:
            stop = _step_end(text, pos + max_chars - size + _STEP_SLACK, end)
            piece = _cleaned(text[pos:stop])
            if piece:
                pieces.append(piece)
                size += len(piece) + 1
            pos = stop
    return cap_at_word(" ".join(pieces), max_chars)


def cap_at_word(cleaned: str, max_chars: int) -> str:
    """`cleaned` (whitespace collapsed) cut to at most `max_chars` characters on a word
    boundary; a hard cut only where the cut falls in a run with no spaces (e.g. Chinese)."""
    if len(cleaned) <= max_chars:
        return cleaned
    capped = cleaned[:max_chars]
    if cleaned[max_chars] != " ":
        space = capped.rfind(" ")
        if space > 0:
            capped = capped[:space]
    return capped.rstrip()


def _cleaned(piece: str) -> str:
    """`piece` without noise, whitespace runs collapsed and the ends stripped."""
    # split() and join(): as `\s+` and strip() would (the same Unicode whitespace), at a
    # fraction of the cost.
    if piece.isascii():
        return " ".join(_without_ascii_noise(piece).split())
    return " ".join(_without_noise(" ".join(piece.split())).split())


def _without_noise(text: str) -> str:
    r"""`_NOISE.sub(" ", text)` for `text` whose only whitespace is single spaces. Every
    match lies inside one token, and the tokens are cleaned apart: at a token's start
    `(?<!\S)` holds either way, and a code the second alternative would take there the
    first takes (it ends with a code). Only a token holding a ".", ":" or digit can
    match, so those are searched for instead of trying both alternatives everywhere."""
    kept: list[str] = []
    done = 0
    hit = _GATE_CHAR.search(text)
    while hit is not None:
        at = hit.start()
        start = text.rfind(" ", 0, at) + 1
        end = text.find(" ", at)
        if end < 0:
            end = len(text)
        token = text[start:end]
        # As in `_without_ascii_noise`: a final "." alone is no part (and no digit).
        if at == end - 1 and text[at] == "." and token[-4:-1].lower() != "www":
            cleaned = token
        else:
            cleaned = _NOISE.sub(" ", token)
        if cleaned != token:
            kept.append(text[done:start])
            kept.append(cleaned)
            done = end
        hit = _GATE_CHAR.search(text, end)
    if not kept:
        return text
    kept.append(text[done:])
    return "".join(kept)


def _without_ascii_noise(piece: str) -> str:
    """ASCII `piece` with what `_NOISE_ASCII` matches removed (the whitespace before each
    match kept, where that pass puts a space: the same once whitespace is collapsed)."""
    marks = piece.encode("ascii").translate(_GATE_MARKS)
    kept: list[str] = []
    done = 0  # piece[:done] is decided
    at = marks.find(b"!")
    while at >= 0:
        start = marks.rfind(b" ", 0, at) + 1
        end = marks.find(b" ", at)
        if end < 0:
            end = len(marks)
        # A token whose one gate character is a final "." (a word ending a sentence) holds
        # no part: each needs a ":", a digit or a character after a dot ("www." aside).
        if at == end - 1 and piece[at] == "." and not piece[start:end].lower().endswith("www."):
            match = None
        else:
            match = _NOISE_TOKEN.match(piece, start, end)
        if match is not None:
            kept.append(piece[done:start])
            done = match.end()
        at = marks.find(b"!", end)
    if not kept:
        return piece
    kept.append(piece[done:])
    return "".join(kept)


def _step_end(text: str, at: int, end: int) -> int:
    """The first space or line break at or after `at` and before `end`, else `end`: a cut
    there changes nothing, since no pattern crosses whitespace or looks past it."""
    if at >= end:
        return end
    space = text.find(" ", at, end)
    newline = text.find("\n", at, end)
    if space < 0:
        return end if newline < 0 else newline
    return space if newline < 0 else min(space, newline)


def _letter_weight(text: str) -> int:
    """The letters of `text`, each Han, kana or Hangul character counted several times.

    ASCII text (most claims) has no such character, and its letters are exactly A-Z and
    a-z: they are counted by deleting every other byte, without the two regex passes."""
    if text.isascii():
        return len(text.encode("ascii").translate(None, _ASCII_NON_LETTERS))
    # Every unspaced character is U+0E00 or above: three or four UTF-8 bytes, the first
    # 0xE0 or more. Text without such a byte (Latin, Cyrillic, Greek...) has none.
    if text.encode("utf-8", "surrogatepass").translate(None, _BELOW_E0):
        unspaced = sum(map(len, _UNSPACED.findall(text)))
    else:
        unspaced = 0
    return sum(map(len, _LETTERS.findall(text))) + unspaced * (_UNSPACED_LETTER_WEIGHT - 1)


class LanguageChecker:
    """Judges the language of a buyer's own text against the desk's accepted languages.

    Construction loads the detector profiles and its compiled trial loop (once per process,
    ~0.7 s of CPU); `check` is pure and thread-safe.
    """

    def __init__(self, checks: ChecksSettings, accepted: Sequence[str]) -> None:
        self._min_letters = checks.language_min_letters
        self._max_chars = checks.language_max_chars
        self._min_probability = checks.language_min_probability
        self._accepted = frozenset(code.strip().lower() for code in accepted)
        factory()  # load (and compile) now, not on the first message

    def accepts(self, code: str) -> bool:
        """True when `code` is accepted: exactly, or by its base language ("zh" takes "zh-tw")."""
        code = code.lower()
        return code in self._accepted or code.partition("-")[0] in self._accepted

    def check(self, own_text: str) -> LanguageVerdict:
        """The verdict on `own_text` (the buyer's words only: no quotes, no signature).

        `unknown` (code "unknown") when fewer than `language_min_letters` letters remain after
        cleaning, or when the best guess is less likely than `language_min_probability` (its
        probability is kept); otherwise `accepted` or `not_accepted` with the detected code
        as langdetect names it ("en", "zh-cn"). Never raises for any text.
        """
        text = clean_for_detection(own_text, self._max_chars)
        if _letter_weight(text) < self._min_letters:
            return LanguageVerdict("unknown", UNKNOWN, 0.0)
        try:
            guesses = detect_langs(text)
        except LangDetectException:
            # "No features in text": letters the profiles do not know (e.g. only emoji-like
            # symbols or a script langdetect lacks).
            return LanguageVerdict("unknown", UNKNOWN, 0.0)
        if not guesses:
            return LanguageVerdict("unknown", UNKNOWN, 0.0)
        best = guesses[0]
        if best.prob < self._min_probability:
            return LanguageVerdict("unknown", UNKNOWN, best.prob)
        if self.accepts(best.lang):
            return LanguageVerdict("accepted", best.lang, best.prob)
        return LanguageVerdict("not_accepted", best.lang, best.prob)
