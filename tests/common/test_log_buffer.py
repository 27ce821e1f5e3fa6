"""The batching stream handler: the call log's lines in one write, none lost, order kept."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from llmesh.services.common.log_buffer import BufferedStreamHandler

CALLS = "test.calls"


class _Counting(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


@pytest.fixture
def out() -> _Counting:
    return _Counting()


@pytest.fixture
def handler(out: _Counting) -> Iterator[BufferedStreamHandler]:
    h = BufferedStreamHandler(out, batched=frozenset({CALLS}), interval=3600, limit=3)
    h.setFormatter(logging.Formatter("%(name)s %(message)s"))
    for name in (CALLS, "test.other"):
        logger = logging.getLogger(name)
        logger.addHandler(h)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    yield h
    for name in (CALLS, "test.other"):
        logging.getLogger(name).removeHandler(h)
        logging.getLogger(name).propagate = True
    h.close()


def test_call_lines_wait_and_are_written_together_when_flushed(
    handler: BufferedStreamHandler, out: _Counting
) -> None:
    logging.getLogger(CALLS).info("one")
    logging.getLogger(CALLS).info("two")
    assert out.getvalue() == ""
    handler.flush()
    assert out.getvalue() == f"{CALLS} one\n{CALLS} two\n"
    assert out.writes == 1


def test_a_full_batch_is_written_at_once(handler: BufferedStreamHandler, out: _Counting) -> None:
    for n in range(4):
        logging.getLogger(CALLS).info("n%d", n)
    assert out.getvalue().splitlines() == [f"{CALLS} n0", f"{CALLS} n1", f"{CALLS} n2"]


def test_other_records_are_written_at_once_after_the_waiting_lines(
    handler: BufferedStreamHandler, out: _Counting
) -> None:
    logging.getLogger(CALLS).info("first")
    logging.getLogger("test.other").info("second")
    assert out.getvalue().splitlines() == [f"{CALLS} first", "test.other second"]
    logging.getLogger(CALLS).warning("third")  # a warning of the call log too
    assert out.getvalue().splitlines()[-1] == f"{CALLS} third"


def test_closing_writes_the_last_lines(handler: BufferedStreamHandler, out: _Counting) -> None:
    logging.getLogger(CALLS).info("last")
    handler.close()
    assert out.getvalue() == f"{CALLS} last\n"


def test_waiting_lines_are_written_by_the_timer() -> None:
    written = threading.Event()

    class Stream(io.StringIO):
        def flush(self) -> None:
            if self.getvalue():
                written.set()

    stream = Stream()
    h = BufferedStreamHandler(stream, batched=frozenset({CALLS}), interval=0.01)
    h.setFormatter(logging.Formatter("%(message)s"))
    try:
        h.handle(logging.LogRecord(CALLS, logging.INFO, __file__, 0, "late", None, None))
        assert written.wait(30)  # no flush, no close: only the timer writes it
        assert stream.getvalue() == "late\n"
    finally:
        h.close()


def test_a_process_that_exits_loses_no_call_line() -> None:
    code = (
        "import logging\n"
        "from llmesh.services.common.logs import configure_logging\n"
        "configure_logging({'LLMESH_LOG_FORMAT': 'json'})\n"
        "for n in range(5):\n"
        "    logging.getLogger('llmesh.calls').info('call %d', n, extra={'call': {'n': n}})\n"
    )
    env = {**os.environ, "LLMESH_LOG_LEVEL": "INFO"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert [r["n"] for r in lines] == [0, 1, 2, 3, 4]


def test_a_routine_line_written_ready_made_waits_and_keeps_its_place(
    handler: BufferedStreamHandler, out: _Counting
) -> None:
    handler.write_routine("ready one")
    logging.getLogger(CALLS).info("two")
    assert out.getvalue() == ""  # both routine: waiting for the batch
    logging.getLogger("test.other").info("three")
    assert out.getvalue().splitlines() == ["ready one", f"{CALLS} two", "test.other three"]


def test_a_ready_made_line_on_a_broken_stream_is_reported_not_raised(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Broken(io.StringIO):
        def write(self, s: str) -> int:
            raise OSError("disk full")

    h = BufferedStreamHandler(Broken(), batched=frozenset({CALLS}), interval=3600, limit=1)
    h.write_routine("lost")  # the batch is full at once: written, and the write fails
    assert "disk full" in capsys.readouterr().err
