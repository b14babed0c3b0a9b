"""The server's batched log handler: one write per busy moment, problems at once, none lost
on a normal exit, a forked child not repeating its parent's lines."""

from __future__ import annotations

import io
import logging
import os
import threading
import weakref
from collections.abc import Iterator

import pytest

from desk.log_batch import BatchedStreamHandler, batch_stream_handlers


class Recording(io.StringIO):
    """A stream that counts its writes and signals each one."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.written = threading.Event()

    def write(self, text: str) -> int:
        self.writes += 1
        self.written.set()
        return super().write(text)


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, Recording, BatchedStreamHandler]]:
    stream = Recording()
    handler = BatchedStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log = logging.getLogger(f"test.log_batch.{id(stream)}")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    yield log, stream, handler
    log.removeHandler(handler)


def test_info_lines_go_out_together(
    logger: tuple[logging.Logger, Recording, BatchedStreamHandler],
) -> None:
    log, stream, handler = logger
    handler.acquire()  # hold the flusher off while the lines are logged
    try:
        for index in range(50):
            log.info("message %d", index)
        assert stream.writes == 0
    finally:
        handler.release()
    handler.flush()
    assert stream.writes == 1
    assert stream.getvalue().splitlines() == [f"INFO message {i}" for i in range(50)]


def test_the_flusher_writes_them_without_being_asked(
    logger: tuple[logging.Logger, Recording, BatchedStreamHandler],
) -> None:
    log, stream, _ = logger
    log.info("first")
    assert stream.written.wait(10)
    assert stream.getvalue() == "INFO first\n"


def test_a_warning_is_written_at_once_with_what_came_before(
    logger: tuple[logging.Logger, Recording, BatchedStreamHandler],
) -> None:
    log, stream, handler = logger
    handler.acquire()
    try:
        log.info("before")
        log.warning("trouble")
        assert stream.getvalue() == "INFO before\nWARNING trouble\n"  # no flusher involved
    finally:
        handler.release()


def test_shutdown_flushes(logger: tuple[logging.Logger, Recording, BatchedStreamHandler]) -> None:
    log, stream, handler = logger
    handler.acquire()
    try:
        log.info("last words")
    finally:
        handler.release()
    logging.shutdown([weakref.ref(handler)])  # what a normal exit runs
    assert "INFO last words\n" in stream.getvalue()


def test_a_forked_child_starts_empty(
    logger: tuple[logging.Logger, Recording, BatchedStreamHandler],
) -> None:
    log, stream, handler = logger
    handler.acquire()
    try:
        log.info("the parent's line")
        pid = os.fork()
        if pid == 0:  # the child: the parent's pending line is not its to write
            os._exit(0 if handler._pending == [] else 1)
    finally:
        handler.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    handler.flush()
    assert stream.getvalue() == "INFO the parent's line\n"


def test_plain_stream_handlers_are_replaced_keeping_their_format() -> None:
    stream = io.StringIO()
    log = logging.getLogger("test.log_batch.replace")
    log.propagate = False
    plain = logging.StreamHandler(stream)
    plain.setFormatter(logging.Formatter("<%(message)s>"))
    plain.setLevel(logging.INFO)
    log.addHandler(plain)
    try:
        batch_stream_handlers(log)
        (handler,) = log.handlers
        assert isinstance(handler, BatchedStreamHandler)
        assert handler.stream is stream and handler.level == logging.INFO
        log.warning("kept")
        assert stream.getvalue() == "<kept>\n"
    finally:
        for handler in list(log.handlers):
            log.removeHandler(handler)
