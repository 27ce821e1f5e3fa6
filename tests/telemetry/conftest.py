"""Fixtures: the process's tracer provider, exporting to memory, and a traced mesh.

OpenTelemetry lets a process set its global tracer provider once, so every test here
shares one, with a `SimpleSpanProcessor` (spans are exported as they end) into an
`InMemorySpanExporter`; `spans` empties it before each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmesh.services.common.config import RouteConfig
from llmesh.services.telemetry.settings import TelemetrySettings, TracingSettings
from tests.support.mesh import Mesh
from tests.support.tracing import global_provider

TRACING_ON = TelemetrySettings(tracing=TracingSettings(enabled=True))
"""Telemetry with tracing on (where spans go is the process's provider's business)."""

_EXPORTER = InMemorySpanExporter()
_PROVIDER: TracerProvider | None = None


def _global_provider() -> TracerProvider:
    global _PROVIDER
    if _PROVIDER is None:  # another test may have set the process's provider already
        _PROVIDER = global_provider()
        _PROVIDER.add_span_processor(SimpleSpanProcessor(_EXPORTER))
    return _PROVIDER


@pytest.fixture
def provider() -> TracerProvider:
    """The process's tracer provider (set on first use)."""
    return _global_provider()


@pytest.fixture
def spans(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    """The exporter every span of the process ends in, emptied for this test."""
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


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
