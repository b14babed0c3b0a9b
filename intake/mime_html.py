"""HTML mail bodies turned into readable text, with the links and cid: images they hold.

selectolax's lexbor parser builds the tree (fast, forgiving); one iterative walk emits
text. Block elements end lines, `<br>` always does, script/style/head are dropped, and
`<blockquote>` lines get "> " prefixes so the quote splitter sees HTML quotes as quotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from selectolax.lexbor import LexborHTMLParser, LexborNode

_SKIPPED = frozenset(
    {"head", "script", "style", "title", "noscript", "template", "object", "svg", "math"}
)
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "table", "ul", "ol", "pre", "dl"}
)
_LINE = frozenset(
    {
        "div", "li", "tr", "hr", "section", "article", "header", "footer", "address", "dt",
        "dd", "center", "form", "fieldset", "figure", "figcaption", "main", "nav", "aside",
        "caption", "tbody", "thead", "tfoot", "body", "details", "summary", "option",
    }
)  # fmt: skip
_CELL = frozenset({"td", "th"})
_SPACES = re.compile(r"[ \t\n\r\f\v\u00a0\u200b]+")
_BLANK_RUNS = re.compile(r"\n{3,}")
_ASCII_SEPARATORS = re.compile(r"[\x1c-\x1f]")
_NON_SPACE_SPACES = re.compile(r"[\t\n\r\f\v\u00a0\u200b]")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""")


@dataclass(frozen=True)
class HtmlText:
    text: str
    links: tuple[str, ...]
    cids: frozenset[str]


def meta_charset(raw: bytes) -> str | None:
    """The charset an HTML body declares in a <meta> tag (first 4 KiB only), or None."""
    match = _META_CHARSET.search(raw[:4096].lower())
    return match.group(1).decode("ascii") if match else None


def _collapse(text: str) -> str:
    """`_SPACES.sub(" ", text).strip()`, without the regex when it cannot matter. Printable
    text holds no white space but the ASCII space (`str.isprintable()` is false for every
    other space and separator), so without a double space it only needs stripping; ASCII
    text without the four separators `str.split()` adds to `_SPACES` (U+001C..U+001F) is
    split and joined; other text without a tab, line break or run of spaces is only
    stripped."""
    if "  " not in text and text.isprintable():
        return text.strip()
    if text.isascii():
        if not _ASCII_SEPARATORS.search(text):
            return " ".join(text.split())
    elif "  " not in text and not _NON_SPACE_SPACES.search(text):
        return text.strip()
    return _SPACES.sub(" ", text).strip()


def _hard_break(run: list[str], line_depth: int, quote_depth: int) -> str:
    """The line a hard break ends (`<br>`, a line break inside `<pre>`): its text runs,
    collapsed and quoted at `line_depth`, or, without text, an empty line quoted as ">"
    per current blockquote level."""
    text = _collapse("".join(run)) if run else ""
    return "> " * line_depth + text if text else ">" * quote_depth


def html_to_text(html: str) -> HtmlText:
    """Readable text of `html`, its `<a href>` targets (in order, deduplicated) and the
    Content-IDs its `cid:` URLs refer to (lower-cased, without brackets)."""
    # One loop with the line state in locals (a method call per text run and per element
    # was most of the cost). `run` holds the text runs of the current line, `blank` whether
    # they are all white space; ending a line appends it, with "> " per blockquote level
    # of the depth its first non-blank run had (`line_depth`); a hard break (`<br>`, a
    # line break inside `<pre>`) appends even an empty line, as ">" per level.
    tree = LexborHTMLParser(html)
    lines: list[str] = []
    run: list[str] = []
    blank = True
    quote_depth = line_depth = pre_depth = 0
    links: dict[str, None] = {}
    cids: set[str] = set()
    # Nodes to enter, and the tags of elements to leave (only those that end a line).
    stack: list[LexborNode | str] = [tree.root] if tree.root else []
    pop, push = stack.pop, stack.append
    while stack:
        node = pop()
        if node.__class__ is str:  # leaving an element: end the line
            if run:
                text = _collapse("".join(run))
                run = []
                blank = True
                if text:
                    lines.append("> " * line_depth + text)
            if node in _PARAGRAPH:
                if lines and lines[-1] != "":
                    lines.append("")
                if node == "blockquote":
                    quote_depth = max(0, quote_depth - 1)
                elif node == "pre":
                    pre_depth -= 1
            continue
        tag = node.tag or ""
        if tag == "-text":
            text = node.text_content or ""
            if not pre_depth:
                if blank:
                    line_depth = quote_depth
                    blank = text.isspace() or not text
                run.append(text)
                continue
            for i, piece in enumerate(text.replace("\r\n", "\n").split("\n")):
                if i:
                    lines.append(_hard_break(run, line_depth, quote_depth))
                    run = []
                    blank = True
                if blank:
                    line_depth = quote_depth
                    blank = piece.isspace() or not piece
                run.append(piece)
            continue
        if tag in _SKIPPED or tag.startswith(("-", "!")):
            continue
        if tag == "br":
            lines.append(_hard_break(run, line_depth, quote_depth))
            run = []
            blank = True
            continue
        if tag in _PARAGRAPH:
            if run:
                text = _collapse("".join(run))
                run = []
                blank = True
                if text:
                    lines.append("> " * line_depth + text)
            if lines and lines[-1] != "":
                lines.append("")
            push(tag)
            if tag == "blockquote":
                quote_depth += 1
            elif tag == "pre":
                pre_depth += 1
        elif tag in _LINE:
            if run:
                text = _collapse("".join(run))
                run = []
                blank = True
                if text:
                    lines.append("> " * line_depth + text)
            push(tag)
        elif tag in _CELL:
            if blank:
                line_depth = quote_depth
            run.append(" ")
        elif tag == "a":
            href = (node.attributes.get("href") or "").strip()
            if href and not href.startswith("#"):
                links[href] = None
        elif tag == "img":
            src = (node.attributes.get("src") or "").strip()
            if src[:4].lower() == "cid:":
                cids.add(unquote(src[4:]).strip().strip("<>").lower())
        child = node.last_child
        while child is not None:
            push(child)
            child = child.prev
    if run:
        text = _collapse("".join(run))
        if text:
            lines.append("> " * line_depth + text)
    text = "\n".join(lines)
    if "\n\n\n" in text:
        text = _BLANK_RUNS.sub("\n\n", text)
    return HtmlText(text.strip("\n"), tuple(links), frozenset(cids))
