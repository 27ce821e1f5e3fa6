"""Fixtures: the process's tracer provider, keeping spans in memory, and a traced mesh.

OpenTelemetry lets a process set its global tracer provider once, so every test here
shares one: llmesh's lean provider (what the services run when they export over OTLP),
its spans kept in a `MemorySpans` as they end; `spans` empties it before each test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from llmesh.services.common.config import RouteConfig
from llmesh.services.telemetry.lean_trace import LeanTracerProvider
from llmesh.services.telemetry.settings import TelemetrySettings, TracingSettings
from tests.support.mesh import Mesh
from tests.support.tracing import SPANS, MemorySpans, global_provider

TRACING_ON = TelemetrySettings(tracing=TracingSettings(enabled=True))
"""Telemetry with tracing on (where spans go is the process's provider's business)."""


def _global_provider() -> LeanTracerProvider:
    return global_provider()


@pytest.fixture
def provider() -> LeanTracerProvider:
    """The process's tracer provider (set on first use)."""
    return _global_provider()


@pytest.fixture
def spans(provider: LeanTracerProvider) -> Iterator[MemorySpans]:
    """Where every span of the process ends, emptied for this test."""
    SPANS.clear()
    yield SPANS
    SPANS.clear()


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
