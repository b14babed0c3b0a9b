"""Whether a reply's templates print the ticket ref only as it is: the proof that lets a reply
be rendered before its ticket exists (outside the write turn) with a placeholder, the
placeholder replaced by the real ref once the ticket's INSERT has given it.

Replacing the placeholder in the output gives the output a render with the ref would give
only if the ref's text reaches the output unchanged: a template that filters it (`lower`,
`wordwrap`, a slice), compares it, loops over it, stores it or hands `ticket` around whole
would print something else. So every use of `ticket.ref` (and of the language request's
`requests.language.translation`, which may print it) must be one of:
- printed by `{{ ... }}`, through no filter or only filters that commute with swapping one
  token of letters, digits and `-` for another (`indent`, `trim`, `escape`, `safe`,
  `paragraphs`), and inside nothing that captures output (`{% filter %}`, `{% set %}`
  blocks, macros, `{% call %}`);
- the bare test of an `{% if %}` (a non-empty text is true whatever the token).
`ticket` and `requests` may be used otherwise only through attributes known not to carry
the ref. Anything else, or any template that cannot be found statically (a dynamic include),
answers False: the reply is then rendered in the transaction, as always.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from jinja2 import Environment, TemplateError, meta, nodes

# Letters and hex digits: unchanged by HTML escaping, `one_line()` and `indent`, and no
# sender can guess it (it must not occur in any text of the mail other than the ref's place).
REF_PLACEHOLDER = "CDref" + secrets.token_hex(16)

_TICKET_PLAIN = frozenset({"queue", "status", "subject", "sender", "received_at", "due_at"})
_REQUESTS_PLAIN = frozenset(
    {"any", "missing_fields", "invalid_tracking_numbers", "too_many_files", "oversized_files"}
)
_LANGUAGE_PLAIN = frozenset({"code", "translation_code"})
_COMMUTING = frozenset({"indent", "trim", "escape", "e", "safe", "paragraphs"})
_NO_ARGUMENTS = frozenset({"trim", "escape", "e", "safe", "paragraphs"})
# Nodes whose output goes straight to the template's output (nothing captures it).
_PASS_THROUGH = (
    nodes.Template,
    nodes.Output,
    nodes.If,
    nodes.For,
    nodes.With,
    nodes.Scope,
    nodes.Block,
    nodes.EvalContextModifier,
)
_CONTEXT_NAMES = frozenset({"self", "super", "caller", "varargs", "kwargs"})


class _NotPlain(Exception):
    """A use of the ref (or of what carries it) that the proof cannot follow."""


def ref_is_plain(env: Environment, names: Iterable[str]) -> bool:
    """True when templates `names`, and every template they extend, include or import,
    print the ticket ref only in the ways the module docstring lists."""
    try:
        imported: set[str] = set()
        trees = {name: _parse(env, name) for name in _reachable(env, names)}
        for tree in trees.values():
            imported.update(_check(tree))
        # A module's text and variables go wherever the importer puts them: none may carry.
        if any(_carries(trees[name]) for name in imported):
            return False
    except (_NotPlain, TemplateError):
        return False
    return True


def _parse(env: Environment, name: str) -> nodes.Template:
    return env.parse(env.loader.get_source(env, name)[0])  # type: ignore[union-attr]


def _carries(tree: nodes.Template) -> bool:
    for node, _ in _walk(tree, ()):
        if isinstance(node, nodes.Name) and node.name in ("ticket", "requests"):
            return True
    return False


def _reachable(env: Environment, names: Iterable[str]) -> Iterator[str]:
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        yield name
        for found in meta.find_referenced_templates(_parse(env, name)):
            if found is None:  # a name computed at render time: cannot follow it
                raise _NotPlain("dynamic template name")
            todo.append(found)


def _check(tree: nodes.Template) -> set[str]:
    """Raises _NotPlain; returns the names of the templates `tree` imports."""
    imported: set[str] = set()
    for node, parents in _walk(tree, ()):
        if isinstance(node, (nodes.Import, nodes.FromImport)):
            if not isinstance(node.template, nodes.Const):
                raise _NotPlain("dynamic import")
            imported.add(node.template.value)
        if isinstance(node, (nodes.Include, nodes.Block, nodes.Extends)):
            _passes_through(parents)
        if not isinstance(node, nodes.Name):
            continue
        if node.name in _CONTEXT_NAMES:
            raise _NotPlain(f"uses {node.name}")
        if node.name == "ticket":
            _ticket_use(node, parents)
        elif node.name == "requests":
            _requests_use(node, parents)
    return imported


def _walk(
    node: nodes.Node, parents: tuple[nodes.Node, ...]
) -> Iterator[tuple[nodes.Node, tuple[nodes.Node, ...]]]:
    yield node, parents
    for child in node.iter_child_nodes():
        yield from _walk(child, (*parents, node))


def _ticket_use(name: nodes.Name, parents: tuple[nodes.Node, ...]) -> None:
    parent = parents[-1]
    if name.ctx != "load" or not isinstance(parent, nodes.Getattr) or parent.node is not name:
        raise _NotPlain("ticket used whole")
    if parent.attr == "ref":
        _carrier_use(parent, parents[:-1])
    elif parent.attr not in _TICKET_PLAIN:
        raise _NotPlain(f"ticket.{parent.attr}")


def _requests_use(name: nodes.Name, parents: tuple[nodes.Node, ...]) -> None:
    parent = parents[-1]
    if name.ctx != "load" or not isinstance(parent, nodes.Getattr) or parent.node is not name:
        raise _NotPlain("requests used whole")
    if parent.attr in _REQUESTS_PLAIN:
        return
    if parent.attr != "language":
        raise _NotPlain(f"requests.{parent.attr}")
    above = parents[-2]
    if isinstance(above, nodes.If) and above.test is parent:
        return  # `{% if requests.language %}`: a dict that is either there or None
    if not isinstance(above, nodes.Getattr) or above.node is not parent:
        raise _NotPlain("requests.language used whole")
    if above.attr == "translation":
        _carrier_use(above, parents[:-2])
    elif above.attr not in _LANGUAGE_PLAIN:
        raise _NotPlain(f"requests.language.{above.attr}")


def _carrier_use(expr: nodes.Expr, parents: tuple[nodes.Node, ...]) -> None:
    """`expr` carries the ref: printed (through commuting filters only) or tested bare."""
    top = parents[-1]
    if isinstance(top, nodes.If) and top.test is expr:
        return
    depth = len(parents) - 1
    while isinstance(top, nodes.Filter) and top.node is expr:
        _commutes(top)
        expr, depth = top, depth - 1
        top = parents[depth]
    if not isinstance(top, nodes.Output) or not any(n is expr for n in top.nodes):
        raise _NotPlain("ref used in an expression")
    _passes_through(parents[: depth + 1])


def _commutes(node: nodes.Filter) -> None:
    if node.name not in _COMMUTING or node.dyn_args is not None or node.dyn_kwargs is not None:
        raise _NotPlain(f"filter {node.name}")
    arguments = [*node.args, *(k.value for k in node.kwargs)]
    if node.name in _NO_ARGUMENTS and arguments:
        raise _NotPlain(f"filter {node.name} with arguments")
    if not all(isinstance(a, nodes.Const) for a in arguments):
        raise _NotPlain(f"filter {node.name} with computed arguments")


def _passes_through(parents: tuple[nodes.Node, ...]) -> None:
    for parent in parents:
        if not isinstance(parent, _PASS_THROUGH):
            raise _NotPlain(f"inside {type(parent).__name__}")


@dataclass(frozen=True)
class SlotPlan:
    """How a render of templates `roots` reads its context (`value_slots()`).

    - `slots`: names only printed as they are (no filter, nothing capturing the output) or
      tested bare by `{% if %}`: a render with a placeholder for a non-empty text, the
      placeholder then replaced by the text (HTML-escaped where `escaped`), is the render
      with the text.
    - `attrs`: names read only as `name.attr`, with the attributes read.
    - `whole`: names read any other way.
    Names the templates never read are in none of them."""

    slots: tuple[str, ...]
    attrs: tuple[tuple[str, tuple[str, ...]], ...]
    whole: tuple[str, ...]
    escaped: tuple[bool, ...]


def value_slots(env: Environment, roots: tuple[str, ...], names: Iterable[str]) -> SlotPlan | None:
    """The `SlotPlan` of rendering each of `roots` with a context of `names`; None when the
    templates do what the plan cannot follow: capture or re-escape output (`{% autoescape %}`,
    a block or include inside a filter), mix escaped and plain templates in one render, bind a
    context name themselves, import with context, or ask for randomness."""
    context = frozenset(names)
    modes: dict[str, set[str]] = {}
    attrs: dict[str, set[str]] = {}
    try:
        escaped = tuple(_escaping(env, root) for root in roots)
        for name in set(_reachable(env, roots)):
            for node, parents in _walk(_parse(env, name), ()):
                if not _followable(node, parents, context):
                    return None
                if isinstance(node, nodes.Name) and node.name in context:
                    modes.setdefault(node.name, set()).add(_read(node, parents, attrs))
    except (_NotPlain, TemplateError):
        return None
    slots = tuple(n for n, m in modes.items() if m == {"slot"})
    only_attrs = tuple((n, tuple(sorted(attrs[n]))) for n, m in modes.items() if m == {"attr"})
    whole = tuple(n for n, m in modes.items() if n not in slots and m != {"attr"})
    return SlotPlan(slots, only_attrs, whole, escaped)


def _followable(node: nodes.Node, parents: tuple[nodes.Node, ...], context: frozenset[str]) -> bool:
    if isinstance(node, nodes.EvalContextModifier):
        return False
    if isinstance(node, (nodes.Import, nodes.FromImport)):
        return not node.with_context
    if isinstance(node, (nodes.Include, nodes.Block, nodes.Extends)):
        return all(isinstance(p, _PASS_THROUGH) for p in parents)
    if isinstance(node, nodes.Filter):
        return node.name != "random"
    if isinstance(node, nodes.Name):
        if node.name in ("lipsum", "self", "super", "caller"):
            return False
        return node.ctx == "load" or node.name not in context
    return True


def _read(name: nodes.Name, parents: tuple[nodes.Node, ...], attrs: dict[str, set[str]]) -> str:
    parent = parents[-1]
    if isinstance(parent, nodes.Getattr) and parent.node is name and not hasattr(dict, parent.attr):
        attrs.setdefault(name.name, set()).add(parent.attr)
        return "attr"
    if isinstance(parent, nodes.If) and parent.test is name:
        return "slot"
    printed = isinstance(parent, nodes.Output) and any(n is name for n in parent.nodes)
    if printed and all(isinstance(p, _PASS_THROUGH) for p in parents):
        return "slot"
    return "whole"


def _escaping(env: Environment, root: str) -> bool:
    """Whether every template whose text a render of `root` prints (itself, what it extends
    and includes) escapes what it prints; raises _NotPlain when they differ."""
    found: set[bool] = set()
    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        auto = env.autoescape
        found.add(bool(auto(name) if callable(auto) else auto))
        for node in _parse(env, name).find_all((nodes.Include, nodes.Extends)):
            if not isinstance(node.template, nodes.Const) or not isinstance(
                node.template.value, str
            ):
                raise _NotPlain("dynamic include")
            todo.append(node.template.value)
    if len(found) != 1:
        raise _NotPlain("escaped and plain templates in one render")
    return found.pop()
