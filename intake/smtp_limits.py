"""Admission limits of the SMTP/LMTP edge: who may connect, and to which addresses.

Pure bookkeeping, no I/O: the server asks, these answer. `ConnectionGate` is used from the
event loop thread only (no lock); `RecipientPolicy` is immutable and shared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


class ConnectionGate:
    """Counts open connections, in all and per client address.

    `admit(host)` is True and counts the connection when both caps leave room; the caller
    must `release(host)` exactly once for every admitted connection.
    """

    def __init__(self, max_total: int, max_per_client: int) -> None:
        self.max_total = max_total
        self.max_per_client = max_per_client
        self._per_client: Counter[str] = Counter()
        self._total = 0

    @property
    def total(self) -> int:
        return self._total

    def admit(self, host: str) -> bool:
        if self._total >= self.max_total or self._per_client[host] >= self.max_per_client:
            return False
        self._total += 1
        self._per_client[host] += 1
        return True

    def release(self, host: str) -> None:
        self._total -= 1
        self._per_client[host] -= 1
        if self._per_client[host] <= 0:
            del self._per_client[host]


class RecipientPolicy:
    """Which envelope recipients the desk accepts: its own addresses, and whole extra domains.

    Everything else is refused at RCPT: claimdesk delivers to itself only and is never a relay.
    """

    def __init__(self, addresses: Iterable[str], domains: Iterable[str]) -> None:
        self._addresses = frozenset(a.strip().lower() for a in addresses)
        self._domains = frozenset(d.strip().lower().lstrip("@") for d in domains)

    def accepts(self, address: str) -> bool:
        """True for a desk address (case-insensitive), or any address at an extra domain."""
        address = address.strip().lower()
        if address in self._addresses:
            return True
        local, at, domain = address.rpartition("@")
        return bool(at and local and domain in self._domains)

    def is_local(self, address: str) -> bool:
        """True when the domain is one of ours (the mailbox may still be unknown)."""
        domain = address.strip().lower().rpartition("@")[2]
        ours = {a.rpartition("@")[2] for a in self._addresses} | self._domains
        return domain in ours
