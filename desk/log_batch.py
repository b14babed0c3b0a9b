"""A log handler that writes the lines of a busy moment in one write.

Why: the server logs one line per message, and the standard StreamHandler flushes after
each record, a write(2) per line: at a thousand messages a second that was the serving
process's biggest single cost after the sockets themselves (about a seventh of its CPU). Here
records are formatted at once but written together: within `FLUSH_SECONDS` by a flusher
thread, at once for WARNING and above (a problem is never held back), when the buffer is
large, and on `logging.shutdown()` (a normal exit). What a SIGKILL can cost is the last
fraction of a second of INFO lines; what was stored is in the database either way.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import TextIO

FLUSH_SECONDS = 0.1
BUFFER_LIMIT = 64 * 1024  # characters held before a write regardless of the timer

_handlers: weakref.WeakSet[BatchedStreamHandler] = weakref.WeakSet()


class BatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """StreamHandler whose writes are batched (see the module docstring)."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._size = 0
        self._wake = threading.Event()
        self._flusher: threading.Thread | None = None
        _handlers.add(self)

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle() holds self.lock around this call.
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self._pending.append(line)
        self._size += len(line)
        if record.levelno >= logging.WARNING or self._size >= BUFFER_LIMIT:
            self.flush()
        else:
            self._ensure_flusher()
            self._wake.set()

    def flush(self) -> None:
        self.acquire()
        try:
            if self._pending:
                data = "".join(self._pending)
                self._pending.clear()
                self._size = 0
                self.stream.write(data)
            if self.stream and hasattr(self.stream, "flush"):
                self.stream.flush()
        except Exception:  # a closed or broken stream must not break the caller
            self._pending.clear()
            self._size = 0
        finally:
            self.release()

    def _ensure_flusher(self) -> None:
        if self._flusher is None or not self._flusher.is_alive():
            self._flusher = threading.Thread(target=self._run, name="log-flush", daemon=True)
            self._flusher.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            time.sleep(FLUSH_SECONDS)  # a fixed delay by design: the moment's lines join
            self.flush()

    def _after_fork_in_child(self) -> None:
        """A forked child starts with an empty buffer (the parent writes what it held) and
        its own flusher (threads do not survive a fork)."""
        self._pending = []
        self._size = 0
        self._wake = threading.Event()
        self._flusher = None


def _reset_after_fork() -> None:
    for handler in list(_handlers):
        handler._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_after_fork)


def batch_stream_handlers(logger: logging.Logger | None = None) -> None:
    """Replace `logger`'s (default: the root's) plain StreamHandlers by batched ones with
    the same stream, level, formatter and filters."""
    target = logger or logging.getLogger()
    for handler in list(target.handlers):
        if type(handler) is not logging.StreamHandler:
            continue
        batched = BatchedStreamHandler(handler.stream)
        batched.setLevel(handler.level)
        batched.setFormatter(handler.formatter)
        for log_filter in handler.filters:
            batched.addFilter(log_filter)
        target.removeHandler(handler)
        target.addHandler(batched)
