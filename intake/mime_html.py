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


class _Lines:
    """Accumulates text runs into lines, remembering the blockquote depth of each line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.current: list[str] = []
        self.blank = True  # the current line holds only whitespace so far
        self.quote_depth = 0
        self.line_depth = 0

    def add(self, run: str) -> None:
        if self.blank:
            self.line_depth = self.quote_depth
            self.blank = run.isspace() or not run
        self.current.append(run)

    def end_line(self, *, hard: bool = False, blank: bool = False) -> None:
        text = _collapse("".join(self.current)) if self.current else ""
        self.current = []
        self.blank = True
        if text:
            self.lines.append("> " * self.line_depth + text)
        elif hard:
            self.lines.append(">" * self.quote_depth)
        if blank and self.lines and self.lines[-1] != "":
            self.lines.append("")

    def add_pre(self, run: str) -> None:
        first, *rest = run.replace("\r\n", "\n").split("\n")
        self.add(first)
        for line in rest:
            self.end_line(hard=True)
            self.add(line)

    def text(self) -> str:
        self.end_line()
        text = "\n".join(self.lines)
        if "\n\n\n" in text:
            text = _BLANK_RUNS.sub("\n\n", text)
        return text.strip("\n")


def _collapse(text: str) -> str:
    """`_SPACES.sub(" ", text).strip()`, without the regex when it cannot matter: ASCII text
    without the four separators `str.split()` adds to `_SPACES` (U+001C..U+001F) is split
    and joined; other text without a tab, line break or run of spaces is only stripped."""
    if text.isascii():
        if not _ASCII_SEPARATORS.search(text):
            return " ".join(text.split())
    elif "  " not in text and not _NON_SPACE_SPACES.search(text):
        return text.strip()
    return _SPACES.sub(" ", text).strip()


def html_to_text(html: str) -> HtmlText:
    """Readable text of `html`, its `<a href>` targets (in order, deduplicated) and the
    Content-IDs its `cid:` URLs refer to (lower-cased, without brackets)."""
    tree = LexborHTMLParser(html)
    out = _Lines()
    links: dict[str, None] = {}
    cids: set[str] = set()
    pre_depth = 0
    # Nodes to enter, and the tags of elements to leave (only those that end a line).
    stack: list[LexborNode | str] = [tree.root] if tree.root else []
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if node == "blockquote":
                out.end_line(blank=True)
                out.quote_depth = max(0, out.quote_depth - 1)
            elif node == "pre":
                pre_depth -= 1
                out.end_line(blank=True)
            elif node in _PARAGRAPH:
                out.end_line(blank=True)
            else:
                out.end_line()
            continue
        tag = node.tag or ""
        if tag == "-text":
            run = node.text_content or ""
            if pre_depth:
                out.add_pre(run)
            else:
                out.add(run)
            continue
        if tag in _SKIPPED or tag.startswith(("-", "!")):
            continue
        if tag == "br":
            out.end_line(hard=True)
            continue
        if tag in _PARAGRAPH:
            out.end_line(blank=True)
            stack.append(tag)
        elif tag in _LINE:
            out.end_line()
            stack.append(tag)
        elif tag in _CELL:
            out.add(" ")
        if tag == "blockquote":
            out.quote_depth += 1
        elif tag == "pre":
            pre_depth += 1
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
            stack.append(child)
            child = child.prev
    return HtmlText(out.text(), tuple(links), frozenset(cids))
