"""A stream handler that writes routine records in batches: one write for many lines.

The call log writes a line per call; through a plain `logging.StreamHandler` on stderr that
is a write and a flush (a system call) per call on the event loop. `BufferedStreamHandler`
keeps the records of the loggers it batches (the call log's), below WARNING, in memory and
writes them together when `limit` lines are waiting, `interval` seconds after the first of
them (on a small daemon thread, started with the first such record), when any other record
arrives (after the lines before it, so the order holds), and when the handler is flushed
or closed: `logging.shutdown`, which runs at interpreter exit, does both, so a service that
stops loses no line. A process killed outright (SIGKILL) can lose the last `interval` of
batched lines.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from typing import TextIO

__all__ = ["BufferedStreamHandler"]


class BufferedStreamHandler(logging.StreamHandler[TextIO]):
    """A `logging.StreamHandler` that batches the routine records of some loggers (module
    docstring); the others are written at once, as by a `logging.StreamHandler`."""

    def __init__(
        self,
        stream: TextIO,
        *,
        batched: frozenset[str] = frozenset(),
        interval: float = 0.2,
        limit: int = 64,
    ) -> None:
        super().__init__(stream)
        self.batched = batched
        """The names of the loggers whose records below WARNING are batched."""
        self.interval = interval
        """Seconds a routine line may wait before it is written."""
        self.limit = limit
        """Lines that, waiting together, are written at once."""
        self._pending: list[str] = []
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the formatted record; write now unless it is a routine record of a batched
        logger and the batch has room. Called under the handler's lock (`Handler.handle`)."""
        try:
            routine = record.levelno < logging.WARNING and record.name in self.batched
            self._queue(self.format(record), routine)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write_routine(self, line: str) -> None:
        """Queue `line`, already formatted, as a routine record of a batched logger: what
        `emit` does for such a record (the call log's writer, which makes no
        `logging.LogRecord` when this handler is the only one its records reach). A failing
        write is reported as `Handler.handleError` reports it, without the record."""
        with self.lock:  # type: ignore[union-attr]  # set by Handler.__init__
            try:
                self._queue(line, True)
            except RecursionError:
                raise
            except Exception:
                if logging.raiseExceptions and sys.stderr is not None:
                    traceback.print_exc(file=sys.stderr)

    def _queue(self, line: str, routine: bool) -> None:
        self._pending.append(line + self.terminator)
        if not routine or len(self._pending) >= self.limit:
            self._write()
        elif len(self._pending) == 1:
            self._wake.set()
            if self._thread is None:
                self._start()

    def flush(self) -> None:
        """Write what is waiting and flush the stream."""
        with self.lock:  # type: ignore[union-attr]  # set by Handler.__init__
            self._write()

    def close(self) -> None:
        """Write what is waiting, stop the timer thread, close as a `StreamHandler`."""
        self._closing.set()
        self._wake.set()
        try:
            self.flush()
        finally:
            super().close()

    def _write(self) -> None:
        pending, stream = self._pending, self.stream
        if pending and stream is not None:
            text = "".join(pending)
            pending.clear()
            stream.write(text)
        if stream is not None and hasattr(stream, "flush"):
            stream.flush()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="log-flush", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._closing.wait(self.interval):
                return
            with self.lock:  # type: ignore[union-attr]
                self._wake.clear()
                try:
                    self._write()
                except (OSError, ValueError):  # a closed or broken stream: nothing to do
                    self._pending.clear()
