"""Reply texts: Jinja2 templates from `config/templates/`, overridable file by file.

A reply kind `K` is `K.txt.j2` (required) and `K.html.j2` (optional HTML alternative). The
language request in the buyer's language is `language/CODE.txt.j2` (`zh-cn` falls back to
`zh`). A directory named in `outbound.templates_dir` is searched first, so a desk replaces
one text without copying the others.

`.html.j2` templates are autoescaped: buyer-controlled text (the subject we quote, file
names) can never become markup in our HTML part. Undefined variables are errors, so a
template that names something the caller did not pass fails loudly instead of mailing a gap.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Mapping, MutableMapping
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateNotFound,
    select_autoescape,
)
from markupsafe import Markup, escape

import config
from outbound.ref_slots import SlotPlan, ref_is_plain, value_slots

BUILTIN_DIR = Path(config.__file__).parent / "templates"
LANGUAGE_DIR = "language"
# Renders `render_shared()` keeps, their inputs apart from the slots as the key: one per queue
# and set of requests in practice; emptied when full (a sender's file names are in the key).
SHARED_RENDERS = 512
_SLOT = "CDslot" + secrets.token_hex(12)  # hex: unchanged by escaping; no sender can guess it


class TemplateProblem(Exception):
    """A template is missing or fails to render; the message names it."""


def one_line(text: str, limit: int = 200) -> str:
    """`text` without control characters or line breaks (each becomes a space), whitespace
    collapsed, cut at `limit` characters: safe inside a header or a one-line mention."""
    if text.isprintable() and len(text) <= limit and "  " not in text and text == text.strip():
        return text  # the common case, without a look at every character
    cleaned = "".join(" " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch for ch in text)
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1].rstrip() + "…"


def _paragraphs(text: str) -> Markup:
    """Plain text as escaped HTML paragraphs (blank lines split them, newlines become <br>)."""
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", text.replace("\r\n", "\n"))]
    return Markup("\n").join(
        Markup("<p>{}</p>").format(Markup("<br>\n").join(escape(line) for line in b.split("\n")))
        for b in blocks
        if b.strip()
    )


class _Environment(Environment):
    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one plain dict, not Jinja's ChainMap over the environment's:
        each render, include and import copies or compares them, and a ChainMap does that
        slowly. Jinja asks that globals not change once templates are loaded; ours never do."""
        return {**self.globals, **(d or {})}


class Values(dict[str, Any]):
    """A dict whose keys a template reads as attributes (`ticket.ref`): the same lookups as
    on a plain dict (Jinja tries the attribute first, then the key), without an
    AttributeError raised and caught for each of them."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Templates:
    """The template set of one desk. Building it parses every template (syntax errors
    surface at start-up as TemplateProblem, not in the middle of a transaction)."""

    def __init__(self, override_dir: str = "", timezone: str = "UTC") -> None:
        loaders = [FileSystemLoader(str(BUILTIN_DIR))]
        if override_dir:
            loaders.insert(0, FileSystemLoader(override_dir))
        self._tz = ZoneInfo(timezone)
        self.env = _Environment(
            loader=ChoiceLoader(loaders),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,  # read once per process: no stat() per reply
            cache_size=-1,  # a plain dict: a reply looks up ~7 templates (includes, extends)
        )
        self._templates: dict[str, Template] = {}
        self._present: dict[str, bool] = {}
        self._ref_plain: dict[tuple[str, ...], bool] = {}
        self._plans: dict[tuple[str, tuple[str, ...]], SlotPlan | None] = {}
        self._shared: dict[tuple[Any, ...], tuple[str, str | None]] = {}
        self.env.filters["desk_time"] = self.desk_time
        self.env.filters["one_line"] = one_line
        self.env.filters["paragraphs"] = _paragraphs
        for name in self.env.list_templates(extensions=["j2"]):
            try:
                self.env.get_template(name)
            except TemplateError as exc:
                raise TemplateProblem(f"template {name}: {exc}") from exc

    def desk_time(self, value: datetime) -> str:
        """A UTC time shown on the desk's wall clock: `2026-04-01 11:30 (Europe/Berlin)`."""
        return f"{value.astimezone(self._tz):%Y-%m-%d %H:%M} ({self._tz.key})"

    def has(self, name: str) -> bool:
        present = self._present.get(name)
        if present is None:
            try:
                self.env.get_template(name)
                present = self._present[name] = True
            except TemplateNotFound:
                present = self._present[name] = False
        return present

    def render(self, kind: str, context: Mapping[str, Any]) -> tuple[str, str | None]:
        """(text, html or None) of reply kind `kind`; raises TemplateProblem."""
        text = self._render(f"{kind}.txt.j2", context)
        html_name = f"{kind}.html.j2"
        return text, self._render(html_name, context) if self.has(html_name) else None

    def render_shared(self, kind: str, context: Mapping[str, Any]) -> tuple[str, str | None]:
        """`render(kind, context)`, from an earlier render that differed only in the texts the
        templates print as they are (`SlotPlan.slots`): the reply most messages get is
        the same but for the buyer's name, subject and the due date. Raises TemplateProblem."""
        plan_key = (kind, tuple(context))
        plan = self._plans.get(plan_key, False)
        if plan is False:
            plan = self._plans[plan_key] = self._plan(kind, plan_key[1])
        if plan is None:
            return self.render(kind, context)
        try:
            key, fills = _shared_key(kind, plan, context)
        except _Unkeyed:
            return self.render(kind, context)
        shared = self._shared.get(key)
        if shared is None:
            slotted = dict(context)
            for name, slot, _ in fills:
                slotted[name] = slot
            shared = self.render(kind, slotted)
            if len(self._shared) >= SHARED_RENDERS:
                self._shared.clear()
            self._shared[key] = shared
        text, html = shared
        for _, slot, value in fills:
            text = text.replace(slot, value)
            if html is not None:
                html = html.replace(slot, escape(value) if plan.escaped[1] else value)
        return text, html

    def _plan(self, kind: str, names: tuple[str, ...]) -> SlotPlan | None:
        roots = (f"{kind}.txt.j2", f"{kind}.html.j2")
        if not self.has(roots[1]):
            roots = roots[:1]
        plan = value_slots(self.env, roots, names)
        if plan is None or plan.whole or plan.escaped[0]:
            return None
        return plan

    def translation(self, code: str, context: Mapping[str, Any]) -> tuple[str, str] | None:
        """(code used, text) of the language request in language `code`, or None when no
        template speaks it."""
        found = self.translation_template(code)
        if found is None:
            return None
        return found[0], self._render(found[1], context).strip()

    def translation_template(self, code: str) -> tuple[str, str] | None:
        """(code used, template name) of the language request in language `code`."""
        for candidate in dict.fromkeys((code.lower(), code.lower().split("-")[0])):
            name = f"{LANGUAGE_DIR}/{candidate}.txt.j2"
            if self.has(name):
                return candidate, name
        return None

    def reply_templates(self, kind: str, language: str | None = None) -> tuple[str, ...]:
        """Every template a reply of `kind` renders itself (its text, its HTML if any, the
        language request in `language` if one is asked for and spoken)."""
        names = [f"{kind}.txt.j2"]
        if self.has(f"{kind}.html.j2"):
            names.append(f"{kind}.html.j2")
        found = self.translation_template(language) if language else None
        if found is not None:
            names.append(found[1])
        return tuple(names)

    def ref_is_plain(self, names: tuple[str, ...]) -> bool:
        """Whether these templates print the ticket ref only as it is, so that a render
        with `REF_PLACEHOLDER` as the ref, the placeholder then replaced, is the render
        with the ref (outbound/ref_slots.py). Decided once per set of names."""
        plain = self._ref_plain.get(names)
        if plain is None:
            plain = self._ref_plain[names] = ref_is_plain(self.env, names)
        return plain

    def languages(self) -> list[str]:
        """Codes of every language request template available."""
        names = self.env.list_templates(
            filter_func=lambda n: n.startswith(f"{LANGUAGE_DIR}/") and n.endswith(".txt.j2")
        )
        return sorted(n.removeprefix(f"{LANGUAGE_DIR}/").removesuffix(".txt.j2") for n in names)

    def _render(self, name: str, context: Mapping[str, Any]) -> str:
        try:
            template = self._templates.get(name)
            if template is None:
                template = self._templates[name] = self.env.get_template(name)
            return template.render(context)
        except TemplateNotFound as exc:
            raise TemplateProblem(f"no template {exc.name} for this reply kind") from exc
        except Exception as exc:  # rendering is pure: whatever fails is the template's fault
            raise TemplateProblem(f"template {name}: {type(exc).__name__}: {exc}") from exc


class _Unkeyed(Exception):
    """A context value that cannot be part of a `render_shared()` key."""


def _shared_key(
    kind: str, plan: SlotPlan, context: Mapping[str, Any]
) -> tuple[tuple[Any, ...], list[tuple[str, str, str]]]:
    """The key of this render among `render_shared()`'s, and the (name, slot, text) to fill."""
    key: list[Any] = [kind]
    fills: list[tuple[str, str, str]] = []
    for name in plan.slots:
        value = context.get(name)
        if type(value) is str and value:
            fills.append((name, f"{_SLOT}{len(fills)}x", value))
            key.append(True)  # a non-empty text: its render is the same
        else:
            key.append(_frozen(value))
    for name, attrs in plan.attrs:
        value = context.get(name)
        if type(value) is not Values:
            raise _Unkeyed(name)
        for attr in attrs:
            part = value.get(attr, _Unkeyed)
            key.append(part if type(part) is str else _frozen(part))
    return tuple(key), fills


def _frozen(value: Any) -> Any:
    """`value` as a hashable key part that tells apart what prints differently (`1`, `True`)."""
    kind = type(value)
    if kind is str or value is None or value is _Unkeyed:
        return value
    if kind in (int, float, bool):
        return (kind, value)
    if kind in (list, tuple):
        return (kind, tuple(_frozen(v) for v in value))
    if kind is Values or kind is dict:
        return (kind, tuple((k, _frozen(v)) for k, v in value.items()))
    raise _Unkeyed(kind.__name__)


@lru_cache(maxsize=8)
def load_templates(override_dir: str = "", timezone: str = "UTC") -> Templates:
    """The template set for these settings, built once per process."""
    return Templates(override_dir, timezone)
