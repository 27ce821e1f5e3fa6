"""The process's tracer provider for tests that keep spans in memory.

OpenTelemetry lets a process set its global tracer provider once; every test that wants
spans adds its own span processor to the one provider `global_provider` returns.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider


def global_provider() -> TracerProvider:
    """The process's SDK tracer provider, set now unless one already is."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    provider = TracerProvider()
    trace.set_tracer_provider(provider)
    return provider
