"""Where `claimdesk ingest` finds mail: .eml files, mbox files, Maildir folders, folders of
files, standard input. Each item is read lazily, so a large mbox is never held whole.
"""

from __future__ import annotations

import mailbox
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """One message to ingest: a name for reports and a way to read its exact bytes."""

    name: str
    read: Callable[[], bytes]


def _is_maildir(path: Path) -> bool:
    return all((path / sub).is_dir() for sub in ("cur", "new", "tmp"))


def _is_mbox(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(5) == b"From "


def _maildir(path: Path) -> Iterator[Source]:
    box = mailbox.Maildir(path, factory=None, create=False)
    for key in sorted(box.iterkeys()):
        yield Source(f"maildir:{path}/{key}", lambda key=key: box.get_bytes(key))


def _mbox(path: Path) -> Iterator[Source]:
    box = mailbox.mbox(path, factory=None, create=False)
    for index, key in enumerate(box.iterkeys()):
        yield Source(f"mbox:{path}#{index + 1}", lambda key=key: box.get_bytes(key))


def _file(path: Path) -> Iterator[Source]:
    if _is_mbox(path):
        yield from _mbox(path)
    else:
        yield Source(f"file:{path}", path.read_bytes)


def expand(paths: list[str]) -> list[Source]:
    """Every message under `paths`, in a stable order ("-" is standard input)."""
    found: list[Source] = []
    for name in paths:
        if name == "-":
            data = sys.stdin.buffer.read()
            found.append(Source("stdin", lambda data=data: data))
            continue
        path = Path(name)
        if path.is_dir() and _is_maildir(path):
            found.extend(_maildir(path))
        elif path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if not child.name.startswith("."):
                    found.extend(_file(child))
        else:
            found.extend(_file(path))
    return found
