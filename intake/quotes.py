"""Split a reply into the sender's own words and the correspondence it quotes.

Line by line, no regex over the whole text (github/email_reply_parser's multi-line
"On ... wrote:" regex is the classic backtracking trap): each line is classified with
`quote_markers` predicates. Kinds of quote:

- a `>` block (blank lines inside allowed), attributed to the "On <date>, X wrote:" line(s)
  right above it when there are any; text after the block is own text again, so
  bottom-posted and inline replies keep the reply;
- a forward separator ("-----Original Message-----", "Begin forwarded message:"), an
  Outlook header block ("From: ... Sent: ..."), or an attribution not followed by `>`
  lines: everything after it is the quote (top-posting).

Signatures ("-- " and what follows up to the next quote, mobile "Sent from my iPhone"
lines, "____" list footers and "-Name" sign-offs with little after them) are dropped.
"""

from __future__ import annotations

from intake.quote_markers import (
    DATE_LABELS,
    FROM_LABELS,
    MAX_MARKER_LINE,
    attribution_window,
    header_label,
    is_footer_start,
    is_mobile_signature,
    is_quoted,
    is_separator_line,
    is_separator_phrase,
    is_signature_delimiter,
    unquote,
)
from intake.types import Quote

MAX_LINES = 10_000
"""Lines examined; the rest of a longer text is kept as one more quote, unexamined."""
_FOOTER_LOOKAHEAD = 15
_FOOTER_MAX_LINES = 10
_HEADER_BLOCK_SPAN = 10
_COLONS = (":", "：")


def split_reply(text: str) -> tuple[str, tuple[Quote, ...]]:
    """(own_text, quotes) of a text body. Never raises; linear in the length of `text`.

    `own_text` keeps the sender's lines (above, between and below quotes) with leading and
    trailing blank lines removed; each `Quote` has the quoted text without `>` markers and
    the line(s) that introduced it.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    overflow = ""
    if len(lines) > MAX_LINES:
        overflow = "\n".join(lines[MAX_LINES:]).strip("\n")
        lines = lines[:MAX_LINES]
    # Every line stripped once: the markers are judged on stripped lines (a line is
    # `>`-quoted exactly when its stripped form starts with ">").
    bare = [line.strip() for line in lines]
    own: list[str] = []
    quotes: list[Quote] = []
    in_signature = False
    quoting = ">" in text  # else no line is `>`-quoted
    i, n = 0, len(lines)
    while i < n:
        line, stripped = lines[i], bare[i]
        if not stripped:
            # A blank line is never quoted, a marker or a signature (about a third of the
            # lines of a letter): the checks below would all say no.
            if not in_signature:
                own.append(line)
            i += 1
            continue
        if quoting and is_quoted(stripped):
            end = _quoted_block_end(bare, i)
            quotes.append(Quote(_unquoted(lines[i:end])))
            in_signature, i = False, end
            continue
        start = _quote_start(bare, i)
        if start is not None:
            kind, length = start
            _trim_tail(own)
            attribution = "\n".join(s for s in bare[i : i + length] if s)
            if kind == "attribution":
                j = _skip_blank(bare, i + length)
                if j < n and is_quoted(bare[j]):
                    end = _quoted_block_end(bare, j)
                    quotes.append(Quote(_unquoted(lines[j:end]), attribution))
                    in_signature, i = False, end
                    continue
            rest = "\n".join(lines[i + length :]).strip("\n")
            quotes.append(Quote(rest, attribution))
            break
        if not in_signature:
            footer = is_footer_start(stripped) and _little_follows(bare, i + 1)
            if footer or is_signature_delimiter(line):
                in_signature = True
            elif not is_mobile_signature(stripped):
                own.append(line)
        i += 1
    if overflow:
        quotes.append(Quote(overflow))
    return _tidy(own), tuple(quotes)


# The helpers below read `bare`: the lines of the text, each stripped.


def _quote_start(bare: list[str], i: int) -> tuple[str, int] | None:
    """("separator" | "header" | "attribution", number of lines) when a quote starts at i."""
    stripped = bare[i]
    if not stripped or len(stripped) > MAX_MARKER_LINE:
        return None
    if is_separator_phrase(stripped):
        return "separator", 1 + _header_lines_after(bare, i + 1)
    if header_label(stripped) in FROM_LABELS:
        length = _header_block(bare, i)
        if length:
            return "header", length
    length = _attribution(bare, i)
    if length:
        return "attribution", length
    return None


def _header_block(bare: list[str], i: int) -> int:
    """Lines of an Outlook header block starting at i (From, then a date label), else 0."""
    last, has_date, unlabelled = i, False, 0
    for j in range(i + 1, min(len(bare), i + _HEADER_BLOCK_SPAN)):
        stripped = bare[j]
        if not stripped:
            continue
        label = header_label(stripped)
        if label is None:
            unlabelled += 1
            if unlabelled > 1:
                break
            continue
        unlabelled = 0
        last = j
        has_date = has_date or label in DATE_LABELS
    return last - i + 1 if has_date else 0


def _header_lines_after(bare: list[str], j: int) -> int:
    """Header lines ("From: ...", "Date: ...") right after a separator line, with the blank
    lines before them; 0 when none follow."""
    start = _skip_blank(bare, j, limit=2)
    end = start
    while end < len(bare) and end - start < _HEADER_BLOCK_SPAN:
        if header_label(bare[end]) is None:
            break
        end += 1
    return end - j if end > start else 0


def _attribution(bare: list[str], i: int) -> int:
    """Lines (1-3) of an attribution starting at i, else 0. Wrapped attributions ("On ...
    X\\n<x@y>\\nwrote:") are joined; a line ending a sentence never continues into one."""
    window = bare[i]
    if not (
        window.endswith(_COLONS)
        or (i + 1 < len(bare) and bare[i + 1].endswith(_COLONS))
        or (i + 2 < len(bare) and bare[i + 2].endswith(_COLONS))
    ):
        return 0  # every window ends like one of these lines, and must end with a colon
    for k in (1, 2, 3):
        if k > 1:
            index = i + k - 1
            if index >= len(bare):
                return 0
            nxt = bare[index]
            if not nxt or len(nxt) > MAX_MARKER_LINE or window.endswith((".", "!", "?")):
                return 0
            window = f"{window} {nxt}"
        if window.endswith(_COLONS):
            quoted_next = _is_quoted_after_blanks(bare, i + k)
            if attribution_window(window, next_is_quoted=quoted_next, multi_line=k > 1):
                return k
    return 0


def _skip_blank(bare: list[str], j: int, limit: int | None = None) -> int:
    start = j
    while j < len(bare) and not bare[j]:
        if limit is not None and j - start >= limit:
            break
        j += 1
    return j


def _is_quoted_after_blanks(bare: list[str], j: int) -> bool:
    j = _skip_blank(bare, j)
    return j < len(bare) and is_quoted(bare[j])


def _quoted_block_end(bare: list[str], i: int) -> int:
    """Index after the last `>` line of the block starting at i (blank lines may separate)."""
    last = i
    for j in range(i, len(bare)):
        if is_quoted(bare[j]):
            last = j
        elif bare[j]:
            break
    return last + 1


def _unquoted(block: list[str]) -> str:
    return "\n".join(unquote(line) for line in block).strip("\n")


def _little_follows(bare: list[str], start: int) -> bool:
    """Whether at most a few lines follow before the end or the next quote (a footer)."""
    seen = 0
    for j in range(start, min(len(bare), start + _FOOTER_LOOKAHEAD)):
        if not bare[j]:
            continue
        if is_quoted(bare[j]) or _quote_start(bare, j) is not None:
            return True
        seen += 1
        if seen > _FOOTER_MAX_LINES:
            return False
    return start + _FOOTER_LOOKAHEAD >= len(bare)


def _trim_tail(own: list[str]) -> None:
    """Drop blank lines and visual rules that only lead into a quote."""
    while own and (not own[-1].strip() or is_separator_line(own[-1].strip())):
        own.pop()


def _tidy(own: list[str]) -> str:
    """Own lines with trailing whitespace and leading/trailing blank lines removed."""
    start = 0
    while start < len(own) and not own[start].strip():
        start += 1
    return "\n".join(line.rstrip() for line in own[start:]).rstrip()
