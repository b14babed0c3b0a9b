"""The quarantine spool: raw messages kept aside on the filesystem, byte for byte.

It lives outside the database on purpose: when the database is down, the spool is what lets
the SMTP edge still answer 250 for a message it has kept. Each entry is two files, written
atomically (temporary file, fsync, rename, fsync of the directory): `ID.eml` with the exact
bytes and `ID.json` with where they came from and why they are here. Released entries move to
`released/` (kept, not deleted); deleting needs an explicit call.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

RELEASED = "released"


@dataclass(frozen=True)
class QuarantineEntry:
    """The metadata of one quarantined message (its bytes are in `ID.eml`)."""

    id: str
    stage: str
    reason: str
    source: str
    received_at: str
    size: int
    sha256: str
    envelope_from: str | None = None
    envelope_to: tuple[str, ...] = ()
    queue_hint: str | None = None
    traceback: str = ""


class SpoolError(OSError):
    """The spool could not keep the bytes (disk full, permissions): the caller must not ack."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Spool:
    """A directory of quarantined messages."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def keep(
        self,
        data: bytes,
        *,
        stage: str,
        reason: str,
        source: str,
        received_at: datetime,
        envelope_from: str | None = None,
        envelope_to: tuple[str, ...] = (),
        queue_hint: str | None = None,
        traceback: str = "",
    ) -> QuarantineEntry:
        """Write the bytes and their metadata; raises SpoolError when they could not be kept.

        The same bytes already waiting in the spool are not kept twice: their entry is
        returned (an IMAP batch rolled back and fetched again, a sender retrying)."""
        sha = hashlib.sha256(data).hexdigest()
        existing = self._waiting_with(sha)
        if existing is not None:
            return existing
        entry_id = f"{received_at:%Y%m%dT%H%M%S}-{sha[:12]}-{secrets.token_hex(2)}"
        entry = QuarantineEntry(
            id=entry_id,
            stage=stage,
            reason=reason,
            source=source,
            received_at=received_at.isoformat(),
            size=len(data),
            sha256=sha,
            envelope_from=envelope_from,
            envelope_to=tuple(envelope_to),
            queue_hint=queue_hint,
            traceback=traceback,
        )
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Bytes first, metadata second: a crash in between leaves an .eml that list()
            # still shows (with unknown reason) rather than metadata pointing at nothing.
            _atomic_write(self.directory / f"{entry_id}.eml", data)
            meta = json.dumps(asdict(entry), ensure_ascii=False, indent=1).encode()
            _atomic_write(self.directory / f"{entry_id}.json", meta)
            _fsync_dir(self.directory)
        except OSError as exc:
            raise SpoolError(f"quarantine spool {self.directory}: {exc}") from exc
        return entry

    def _waiting_with(self, sha: str) -> QuarantineEntry | None:
        if not self.directory.is_dir():
            return None
        for path in self.directory.glob(f"*-{sha[:12]}-*.eml"):
            entry = self._entry(path.stem)
            if entry.sha256 == sha:
                return entry
        return None

    def list(self) -> list[QuarantineEntry]:
        """Entries waiting in the spool, oldest first."""
        if not self.directory.is_dir():
            return []
        return [self._entry(p.stem) for p in sorted(self.directory.glob("*.eml"))]

    def get(self, entry_id: str) -> QuarantineEntry | None:
        if "/" in entry_id or entry_id.startswith("."):
            return None
        if not (self.directory / f"{entry_id}.eml").is_file():
            return None
        return self._entry(entry_id)

    def raw(self, entry_id: str) -> bytes:
        return (self.directory / f"{entry_id}.eml").read_bytes()

    def mark_released(self, entry_id: str) -> None:
        """Move the entry to `released/` (kept for the record, out of the list)."""
        target = self.directory / RELEASED
        target.mkdir(exist_ok=True)
        for suffix in (".json", ".eml"):
            source = self.directory / f"{entry_id}{suffix}"
            if source.exists():
                os.replace(source, target / source.name)
        _fsync_dir(self.directory)

    def delete(self, entry_id: str) -> None:
        """Remove an entry for good (only on an explicit request)."""
        for suffix in (".json", ".eml"):
            (self.directory / f"{entry_id}{suffix}").unlink(missing_ok=True)

    def _entry(self, entry_id: str) -> QuarantineEntry:
        meta_path = self.directory / f"{entry_id}.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            meta["envelope_to"] = tuple(meta.get("envelope_to") or ())
            return QuarantineEntry(**meta)
        except (OSError, ValueError, TypeError):
            data = (self.directory / f"{entry_id}.eml").read_bytes()
            return QuarantineEntry(
                id=entry_id,
                stage="unknown",
                reason="metadata missing or unreadable",
                source="unknown",
                received_at="",
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
