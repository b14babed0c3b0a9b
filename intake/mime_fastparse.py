"""A fast path for the stdlib MIME parser: the same `Message` tree for well-formed mail.

`email.feedparser` reads a message line by line through a stack of end-of-part predicates
and compiles a fresh regex for every multipart boundary (about half its time on a typical
3 KB claim). Well-formed mail does not need that generality: here each header block is
matched with one pattern, and only lines starting with "--" are looked at as boundaries
(each reduced once to the text a boundary line must read, then compared as strings).

`fast_parse()` returns exactly the tree `email.parser.Parser(policy=...).parsestr()` builds
(headers as compat32's `header_source_parse` stores them, payloads, preambles, epilogues,
the line break RFC 2046 gives to the boundary after a part) or None whenever the stdlib
would take a path not reproduced here: a bare CR line ending; a line in a header block that
is not a header field (a unix "From " line, a leading continuation line) or a boundary line
inside one; no blank line after the headers; message/delivery-status; a digest; a
multipart without a boundary, with a transfer encoding, without its start or close
boundary, or with repeated boundary lines; nesting deeper than `max_depth`; anything that
raises. So every defect the stdlib would record is left to the stdlib to record.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from email.message import Message
from email.policy import Compat32

# One header field: a name of printable ASCII without ":" (the stdlib's `headerRE`), then its
# folded continuation lines. The value keeps its line breaks, as compat32 stores it.
# Possessive quantifiers: a block that fails to match fails in linear time.
_FIELD_SOURCE = r"([\041-\071\073-\176]++):[ \t]*+([^\n]*+\n(?:[ \t][^\n]*+\n)*+)"
_FIELD = re.compile(_FIELD_SOURCE)
_IDENTITY_ENCODINGS = ("7bit", "8bit", "binary")
_BLANK_LINE = re.compile(r"\n\r?\n")
# "type/subtype; boundary=..." with nothing else: the boundary is the value as written
# (quoted, it holds no quote, backslash, ";" or "<", so unquoting it is taking it out of the
# quotes). Anything else goes to `Message.get_boundary()`.
_TOKEN = r"[!#$%&'*+\-.0-9A-Z^_`a-z|~]+"
_ONLY_BOUNDARY = re.compile(
    rf"{_TOKEN}/{_TOKEN}[ \t\r\n]*;[ \t\r\n]*[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy][ \t\r\n]*=[ \t\r\n]*"
    r'(?:"([ !#-:=-\[\]-~]*)"|([!#-:=-\[\]-~]+))[ \t\r\n]*'
)


class _Bail(Exception):
    """The stdlib parser must handle this message."""


def fast_parse(text: str, policy: Compat32, *, max_depth: int) -> Message | None:
    """The stdlib's tree for `text` (bytes decoded as ASCII with surrogate escapes), or None
    when the message needs the stdlib parser. Never raises."""
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        return None  # a bare CR ends a line for the stdlib; lines here end at "\n"
    try:
        return _Parser(text, policy, max_depth).root()
    except Exception:  # _Bail, or a parameter the stdlib parser will fail on in its own way
        return None


class _Parser:
    def __init__(self, text: str, policy: Compat32, max_depth: int) -> None:
        self.text = text
        self.policy = policy
        self.max_depth = max_depth
        # Start and end (after its "\n") of every line starting with "--": only those can
        # be boundary lines.
        starts: list[int] = [0] if text.startswith("--") else []
        at = text.find("\n--")
        while at >= 0:
            starts.append(at + 1)
            at = text.find("\n--", at + 1)
        self.starts = starts
        self.ends = [self._line_end(s) for s in starts]
        # A line is a boundary of separator S exactly when, without its line break and the
        # spaces and tabs before that, it reads S or S + "--" (the stdlib's pattern
        # `(S)(--)?[ \t]*(\r\n|\r|\n)?$`; there is no bare CR here, and a separator never
        # ends with white space: `get_boundary()` strips it).
        self.cores = [_core(text[s:e]) for s, e in zip(starts, self.ends, strict=True)]

    def _line_end(self, start: int) -> int:
        end = self.text.find("\n", start)
        return len(self.text) if end < 0 else end + 1

    def root(self) -> Message:
        return self._part(0, frozenset(), 0)[0]

    def _kind(self, index: int, separator: str) -> int:
        """0: dash line `index` is not a boundary of `separator`; 1: a separator; 2: the
        close boundary."""
        core = self.cores[index]
        if core == separator:
            return 1
        return 2 if core.endswith("--") and core[:-2] == separator else 0

    def _ends_part(self, index: int, stack: frozenset[str]) -> bool:
        """Whether dash line `index` is a boundary of any separator in `stack`."""
        core = self.cores[index]
        return core in stack or (core.endswith("--") and core[:-2] in stack)

    def _eof(self, pos: int, stack: frozenset[str]) -> tuple[int, int]:
        """(index of the first dash line at or after `pos` that ends the part, its start);
        (len(starts), len(text)) when none does."""
        index = bisect_left(self.starts, pos)
        if stack:
            while index < len(self.starts):
                if self._ends_part(index, stack):
                    return index, self.starts[index]
                index += 1
        return len(self.starts), len(self.text)

    def _headers(self, msg: Message, start: int, stack: frozenset[str]) -> int:
        """Reads the header block at `start` into `msg`; returns where the body starts."""
        text = self.text
        if text.startswith("\n", start):
            return start + 1
        if text.startswith("\r\n", start):
            return start + 2
        blank = _BLANK_LINE.search(text, start)
        if blank is None:
            raise _Bail("no blank line after the headers")
        block_end, body = blank.start() + 1, blank.end()
        # A boundary line inside the block would have ended the part for the stdlib.
        index = bisect_left(self.starts, start)
        while index < len(self.starts) and self.starts[index] < block_end:
            if self._ends_part(index, stack):
                raise _Bail("a boundary inside a header block")
            index += 1
        fields = _header_fields(text, start, block_end)
        if fields is None:
            raise _Bail("not a header line")
        for name, value in fields:
            msg.set_raw(name, value.rstrip("\r\n"))
        return body

    def _part(self, start: int, stack: frozenset[str], depth: int) -> tuple[Message, int, Message]:
        """The message or part at `start` inside the enclosing separators `stack`;
        returns it, the offset where it ends, and the part whose trailing line break the
        boundary after it takes (the stdlib's `_last`: the innermost message of a message/*
        part)."""
        if depth > self.max_depth:
            raise _Bail("too deep")
        msg = Message(policy=self.policy)
        body = self._headers(msg, start, stack)
        ctype = msg.get_content_type()
        maintype = ctype.partition("/")[0]
        if ctype in ("message/delivery-status", "multipart/digest"):
            raise _Bail("delivery status or digest")
        if maintype == "message":  # the body is a whole message
            inner, end, last = self._part(body, stack, depth + 1)
            msg.attach(inner)
            return msg, end, last
        if maintype != "multipart":
            eof = self._eof(body, stack)[1]
            msg.set_payload(self.text[body:eof])
            return msg, eof, msg
        boundary = _boundary(msg)
        if boundary is None:
            raise _Bail("multipart without boundary")
        encoding = str(msg.get("content-transfer-encoding", "8bit")).lower()
        if encoding not in _IDENTITY_ENCODINGS:
            raise _Bail("multipart with a transfer encoding")
        separator = "--" + boundary
        inner = stack | {separator}
        index = bisect_left(self.starts, body)
        preamble = True
        while True:
            # A line of an enclosing boundary ends this multipart (checked first, as the
            # stdlib's end-of-file predicates are).
            if index >= len(self.starts) or self._ends_part(index, stack):
                raise _Bail("close boundary not found")
            kind = self._kind(index, separator)
            if not kind:
                if not preamble:  # cannot happen: a child ends only at a boundary
                    raise _Bail("text between parts")
                index += 1
                continue
            line_start, line_end = self.starts[index], self.ends[index]
            if preamble:
                if kind == 2:
                    raise _Bail("start boundary not found")
                if line_start > body:
                    msg.preamble = _strip_eol(self.text[body:line_start])
                preamble = False
            if kind == 2:
                epilogue_end = self._eof(line_end, stack)[1]
                msg.epilogue = self.text[line_end:epilogue_end]
                return msg, epilogue_end, msg
            # The line after a separator must start a part: no repeated boundary lines,
            # no enclosing boundary, no end of input.
            if line_end >= len(self.text):
                raise _Bail("boundary at the end of input")
            after = bisect_left(self.starts, line_end)
            if (
                after < len(self.starts)
                and self.starts[after] == line_end
                and self._ends_part(after, inner)
            ):
                raise _Bail("repeated boundary line")
            child, child_end, last = self._part(line_end, inner, depth + 1)
            # RFC 2046: the line break before a boundary belongs to the boundary (set as
            # the stdlib sets it: `get_payload()` could transform the text).
            if last.is_multipart():
                last.epilogue = _strip_eol(last.epilogue) if last.epilogue else None
            else:
                last._payload = _strip_eol(last._payload)
            msg.attach(child)
            index = bisect_left(self.starts, child_end)


def _header_fields(text: str, start: int, end: int) -> list[tuple[str, str]] | None:
    """(name, value) of the header fields that make up `text[start:end]`, None when it is
    not header fields one after the other (`(?:field)+` does not match it whole). A field
    matches in one way only (possessive quantifiers) and cannot end where a continuation
    line could start, so the block is fields exactly when the fields found from its start
    tile it."""
    fields: list[tuple[str, str]] = []
    at = start
    for field in _FIELD.finditer(text, start, end):
        if field.start() != at:
            return None
        at = field.end()
        fields.append((field[1], field[2]))
    return fields if fields and at == end else None


def _boundary(msg: Message) -> str | None:
    """`msg.get_boundary()`, read directly from the usual Content-Type shape (the stdlib
    splits, unquotes, RFC 2231-decodes and requotes every parameter to get there)."""
    value = msg.get("content-type")
    if value is not None:
        simple = _ONLY_BOUNDARY.fullmatch(value)
        if simple is not None:
            quoted, token = simple.groups()
            return (token if quoted is None else quoted).rstrip()
    return msg.get_boundary()


def _core(line: str) -> str:
    """`line` without its line break and the spaces and tabs before it."""
    if line.endswith("\r\n"):
        line = line[:-2]
    elif line.endswith("\n"):
        line = line[:-1]
    return line.rstrip(" \t")


def _strip_eol(text: str) -> str:
    """`text` without the one line break at its end (the stdlib's NLCRE_eol)."""
    if text.endswith("\r\n"):
        return text[:-2]
    if text.endswith("\n"):
        return text[:-1]
    return text
