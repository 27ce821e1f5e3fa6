"""The span encoder's remembered attributes never stand in for a different value."""

from __future__ import annotations

import math

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmesh.services.telemetry.lean_trace import LeanTracerProvider
from llmesh.services.telemetry.otlp_wire import SpanEncoder
from tests.support.tracing import MemorySpans

RESOURCE = {"service.name": "llmesh-orchestrator"}


def test_python_remembers_no_float_zero_for_the_other() -> None:
    """``0.0 == -0.0`` (one hash): remembered by value, one would be written for the other."""
    sink = MemorySpans()
    tracer = LeanTracerProvider(RESOURCE, sink).get_tracer("t")
    encoder = SpanEncoder(RESOURCE)
    for first, second in ((0.0, -0.0), (-0.0, 0.0)):
        sink.clear()
        tracer.start_span("a", attributes={"x": first}).end()
        tracer.start_span("b", attributes={"x": second}).end()
        request = ExportTraceServiceRequest.FromString(encoder.encode(sink.get_finished_spans()))
        signs = [
            math.copysign(1.0, span.attributes[0].value.double_value)
            for span in request.resource_spans[0].scope_spans[0].spans
        ]
        assert signs == [math.copysign(1.0, first), math.copysign(1.0, second)]
