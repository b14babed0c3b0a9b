"""`html_to_text` against a plain reference: the line state kept in a small class, one
method call per text run and per element (the implementation before it was inlined), and
`_collapse` against the regex it stands for."""

from __future__ import annotations

import re
from urllib.parse import unquote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from selectolax.lexbor import LexborHTMLParser, LexborNode

from intake.mime_html import (
    _CELL,
    _LINE,
    _PARAGRAPH,
    _SKIPPED,
    _SPACES,
    HtmlText,
    _collapse,
    html_to_text,
)

_BLANK_RUNS = re.compile(r"\n{3,}")


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.current: list[str] = []
        self.blank = True
        self.quote_depth = 0
        self.line_depth = 0

    def add(self, run: str) -> None:
        if self.blank:
            self.line_depth = self.quote_depth
            self.blank = run.isspace() or not run
        self.current.append(run)

    def end_line(self, *, hard: bool = False, blank: bool = False) -> None:
        text = _SPACES.sub(" ", "".join(self.current)).strip() if self.current else ""
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
        return _BLANK_RUNS.sub("\n\n", "\n".join(self.lines)).strip("\n")


def reference(html: str) -> HtmlText:
    tree = LexborHTMLParser(html)
    out = _Lines()
    links: dict[str, None] = {}
    cids: set[str] = set()
    pre_depth = 0
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


_PIECES = [*"ab >:-_\t\n\r\f\v\x1c\x1f\u00a0\u200b\u2003\u3000é漢", "&nbsp;", "&amp;", "  "]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=12).map("".join)
_TAGS = (
    "p", "div", "br", "blockquote", "pre", "td", "th", "tr", "table", "span", "b", "a",
    "img", "li", "ul", "h1", "script", "style", "head", "title", "!--", "hr", "body",
)  # fmt: skip


@st.composite
def _html(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 3 if depth < 4 else 0))
        if kind == 0:
            parts.append(draw(_TEXT))
            continue
        tag = draw(st.sampled_from(_TAGS))
        if tag == "!--":
            parts.append(f"<!--{draw(_TEXT)}-->")
            continue
        attrs = ""
        if tag == "a":
            attrs = f' href="{draw(st.sampled_from(["#x", "https://x.example/a", " ", "y"]))}"'
        elif tag == "img":
            attrs = f' src="{draw(st.sampled_from(["cid:A%40b", "cid:<X>", "x.png"]))}"'
        closed = draw(st.booleans())
        inner = draw(_html(depth + 1))
        parts.append(f"<{tag}{attrs}>{inner}" + (f"</{tag}>" if closed else ""))
    return "".join(parts)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_html())
def test_agrees_with_the_reference(html: str) -> None:
    assert html_to_text(html) == reference(html)


@settings(max_examples=400)
@given(st.text())
def test_collapse_is_the_regex(text: str) -> None:
    assert _collapse(text) == _SPACES.sub(" ", text).strip()


@settings(max_examples=200)
@given(_TEXT)
def test_collapse_is_the_regex_on_spaces(text: str) -> None:
    assert _collapse(text) == _SPACES.sub(" ", text).strip()


def test_quotes_preformatted_text_and_cells() -> None:
    html = "<blockquote><p>a</p><pre>x\n\ny</pre><br></blockquote><table><tr><td>1<td>2</table>"
    assert html_to_text(html) == reference(html)
    assert html_to_text(html).text.startswith("> a")
