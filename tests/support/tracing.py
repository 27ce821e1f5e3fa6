"""The process's tracer provider for tests that keep spans in memory.

OpenTelemetry lets a process set its global tracer provider once, so every test that wants
spans shares one: llmesh's lean provider (what the services run when they export over
OTLP), its spans kept in `SPANS` as they end; tests empty it before they look.
"""

from __future__ import annotations

import threading

from opentelemetry import trace

from llmesh.services.telemetry.lean_trace import LeanSpan, LeanTracerProvider


class MemorySpans:
    """A span sink keeping every span as it ends (what `InMemorySpanExporter` is to the SDK)."""

    def __init__(self) -> None:
        self._spans: list[LeanSpan] = []
        self._lock = threading.Lock()

    def add(self, span: LeanSpan) -> None:
        with self._lock:
            self._spans.append(span)

    def get_finished_spans(self) -> tuple[LeanSpan, ...]:
        """The spans ended so far, in order."""
        with self._lock:
            return tuple(self._spans)

    def clear(self) -> None:
        with self._lock:
            self._spans.clear()

    def force_flush(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


SPANS = MemorySpans()
"""Where every span of the test process ends."""

_PROVIDER: list[LeanTracerProvider] = []


def global_provider() -> LeanTracerProvider:
    """The process's lean tracer provider, its spans going to `SPANS`; set on first use."""
    if not _PROVIDER:
        _PROVIDER.append(LeanTracerProvider({"service.name": "llmesh-tests"}, SPANS))
        trace.set_tracer_provider(_PROVIDER[0])
    return _PROVIDER[0]
