"""Ended spans, queued and exported in batches from a thread of their own.

The lean tracer (`llmesh.services.telemetry.lean_trace`) hands each ended span to a
`SpanBatcher`, which a background thread drains into a `LeanExporter` (OTLP over gRPC or
HTTP: `llmesh.services.telemetry.otlp_send`) in batches, as the SDK's batch span processor
does, under the same ``OTEL_BSP_*`` settings.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from llmesh.services.telemetry.lean_trace import LeanSpan

__all__ = ["LeanExporter", "SpanBatcher"]

_log = logging.getLogger("llmesh.telemetry")


class LeanExporter(Protocol):
    """Where batches of ended spans go (from the batcher's thread)."""

    def export(self, spans: Sequence[LeanSpan]) -> bool:
        """Send `spans`; False if they could not be delivered."""
        ...

    def shutdown(self) -> None:
        """Release connections (no export follows)."""
        ...


class SpanBatcher:
    """Ended spans, queued and exported in batches from a thread of its own.

    `add` is an append to a deque (safe across threads without a lock; where the C extension
    was built, a LeanSpan's ``end`` does the common case itself: `_lean_native`); the thread wakes
    every `delay` seconds, or as soon as a full batch is queued, and exports what is queued
    in batches of at most `batch` spans. Past `capacity` queued spans, new ones are dropped
    (counted in `dropped`), as the SDK's batch processor does.
    """

    def __init__(
        self,
        exporter: LeanExporter,
        *,
        delay: float = 5.0,
        batch: int = 512,
        capacity: int = 2048,
    ) -> None:
        self.exporter = exporter
        self.dropped = 0
        self._queue: deque[LeanSpan] = deque()
        self._delay = delay
        self._batch = max(1, batch)
        self._capacity = max(self._batch, capacity)
        self._wake = threading.Event()
        self._lock = threading.Lock()  # one export at a time (the thread, or a flush)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="llmesh-spans", daemon=True)
        self._thread.start()

    def add(self, span: LeanSpan) -> None:
        """Queue an ended span."""
        queue = self._queue
        size = len(queue)
        if size >= self._capacity:
            self.dropped += 1
            return
        queue.append(span)
        if size + 1 == self._batch:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._delay)
            self._wake.clear()
            self._drain()

    def _drain(self) -> None:
        queue, size = self._queue, self._batch
        with self._lock:
            while queue:
                count = min(len(queue), size)
                batch = [queue.popleft() for _ in range(count)]
                try:
                    self.exporter.export(batch)
                except Exception:  # an exporter's failure must not end the thread
                    _log.exception("exporting %d spans failed", count)

    def force_flush(self) -> None:
        """Export every span queued now, from the calling thread."""
        self._drain()

    def shutdown(self) -> None:
        """Export what is queued, stop the thread, release the exporter."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._thread.join()
        self._drain()
        self.exporter.shutdown()
