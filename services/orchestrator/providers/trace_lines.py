"""The W3C trace context an adapter puts on its upstream request, as header lines."""

from __future__ import annotations

from llmesh.services.telemetry.tracing import trace_headers, trace_line
from llmesh.services.transport import render_headers

__all__ = ["trace_header_lines"]


def trace_header_lines() -> bytes:
    """The current attempt's ``traceparent`` (and ``tracestate``, ``baggage``) as request
    header lines; ``b""`` when no span is being recorded (tracing off). The common case, a
    ``traceparent`` alone, is written straight from the span's ids (`trace_line`); a trace
    state or baggage goes through the header checks (`render_headers`)."""
    line = trace_line()
    return render_headers(trace_headers()) if line is None else line
