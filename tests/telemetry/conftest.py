"""Fixtures: the process's tracer provider, keeping spans in memory, and a traced mesh.

OpenTelemetry lets a process set its global tracer provider once, so every test here
shares one: llmesh's lean provider (what the services run when they export over OTLP),
its spans kept in a `MemorySpans` as they end; `spans` empties it before each test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from opentelemetry import trace

from llmesh.services.common.config import RouteConfig
from llmesh.services.telemetry.lean_trace import LeanSpan, LeanTracerProvider
from llmesh.services.telemetry.settings import TelemetrySettings, TracingSettings
from tests.support.mesh import Mesh

TRACING_ON = TelemetrySettings(tracing=TracingSettings(enabled=True))
"""Telemetry with tracing on (where spans go is the process's provider's business)."""


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


_SPANS = MemorySpans()
_PROVIDER: LeanTracerProvider | None = None


def _global_provider() -> LeanTracerProvider:
    global _PROVIDER
    if _PROVIDER is None:
        _PROVIDER = LeanTracerProvider({"service.name": "llmesh-tests"}, _SPANS)
        trace.set_tracer_provider(_PROVIDER)
    return _PROVIDER


@pytest.fixture
def provider() -> LeanTracerProvider:
    """The process's tracer provider (set on first use)."""
    return _global_provider()


@pytest.fixture
def spans(provider: LeanTracerProvider) -> Iterator[MemorySpans]:
    """Where every span of the process ends, emptied for this test."""
    _SPANS.clear()
    yield _SPANS
    _SPANS.clear()


@pytest.fixture(scope="module")
def traced_mesh() -> Iterator[Mesh]:
    """A whole mesh in this process with tracing on (spans go to `spans`)."""
    _global_provider()
    hedged = RouteConfig("hedged", ("emulator/slow-start", "emulator/echo"), hedge_delay=0.05)
    mesh = Mesh().start({"telemetry": TRACING_ON, "routes": {"hedged": hedged}})
    try:
        yield mesh
    finally:
        mesh.stop()
