"""Lean spans as OTLP wire bytes: the very message the SDK's encoder makes of the same spans."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from llmesh.services.telemetry import otlp_wire
from llmesh.services.telemetry.lean_trace import LeanSpan, LeanTracerProvider
from llmesh.services.telemetry.otlp_wire import SpanEncoder
from tests.telemetry.conftest import MemorySpans

RESOURCE = {"service.name": "llmesh-orchestrator", "llmesh.service": "orchestrator", "n": 3}


def _as_sdk(span: LeanSpan) -> ReadableSpan:
    """The SDK's span with the same facts."""
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=Resource(RESOURCE),
        attributes=span.attributes,
        events=[Event(e.name, e.attributes, e.timestamp) for e in span.events or ()],
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=InstrumentationScope(span.scope.name, span.scope.version),
    )


def _spans() -> Sequence[LeanSpan]:
    sink = MemorySpans()
    provider = LeanTracerProvider(RESOURCE, sink)
    grpc_tracer = provider.get_tracer("opentelemetry.instrumentation.grpc", "0.66b2")
    ours = provider.get_tracer("llmesh.orchestrator")
    state = TraceState([("vendor", "v1"), ("other", "x")])
    caller = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0xF067AA0BA902B7, True, None, state)
    remote = set_span_in_context(NonRecordingSpan(caller))
    with grpc_tracer.start_as_current_span(
        "/llmesh.v1.OrchestratorService/Chat",
        context=remote,
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.grpc.status_code": 0, "net.peer.port": "5"},
    ) as server:
        with ours.start_as_current_span("call m", attributes={"llmesh.targets": ["a/b", "c/d"]}):
            attempt = ours.start_span(
                "chat m",
                kind=SpanKind.CLIENT,
                attributes={
                    "gen_ai.request.temperature": 0.5,
                    "gen_ai.usage.input_tokens": 7,
                    "llmesh.attempt.winner": False,
                    "negative": -3,
                    "big": (1 << 63) - 1,
                    "ints": (1, 2, 300),
                    "floats": [0.25, -1e300],
                    "flags": (True, False),
                    "text": "ünïcode " * 40,  # longer than 127 bytes: a two-byte length
                    "bytes": b"\x00\xff",
                    "empty": "",
                },
                links=[Link(caller, {"why": "follows"})],
            )
            attempt.set_status(Status(StatusCode.ERROR, "OVERLOADED"))
            attempt.add_event("retry", {"after_ms": 12.5})
            attempt.end()
        server.set_status(StatusCode.OK)
    return sink.get_finished_spans()


def test_the_request_is_the_one_the_sdk_encodes() -> None:
    spans = _spans()
    assert len(spans) == 3
    ours = ExportTraceServiceRequest.FromString(SpanEncoder(RESOURCE).encode(spans))
    theirs = encode_spans([_as_sdk(s) for s in spans])
    assert ours == theirs
    assert [len(s.spans) for s in ours.resource_spans[0].scope_spans] == [2, 1]


def test_remembered_attributes_encode_the_same_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(otlp_wire, "_CACHE_LIMIT", 4)  # forgets often
    encoder = SpanEncoder(RESOURCE)
    spans = _spans()
    first = encoder.encode(spans)
    assert encoder.encode(spans) == first == SpanEncoder(RESOURCE).encode(spans)
    more = _spans()
    assert ExportTraceServiceRequest.FromString(encoder.encode(more)) == encode_spans(
        [_as_sdk(s) for s in more]
    )


def test_a_value_protobuf_cannot_carry_is_left_out() -> None:
    sink = MemorySpans()
    tracer = LeanTracerProvider(RESOURCE, sink).get_tracer("t")
    tracer.start_span("s", attributes={"huge": 1 << 70, "kept": 1, "odd": object()}).end()
    (span,) = sink.get_finished_spans()
    request = ExportTraceServiceRequest.FromString(SpanEncoder(RESOURCE).encode([span]))
    (encoded,) = request.resource_spans[0].scope_spans[0].spans
    assert [kv.key for kv in encoded.attributes] == ["kept"]
    assert encoded.flags == 0x100 and encoded.kind == encoded.SPAN_KIND_INTERNAL
    assert TraceFlags(encoded.flags & 0xFF) == TraceFlags.DEFAULT


def test_remembered_encodings_keep_their_field_and_type() -> None:
    """An attribute remembered from a span is not reused for an event's (another field
    number), and values equal across types (``1``, ``True``, ``1.0``) keep their types."""
    sink = MemorySpans()
    tracer = LeanTracerProvider(RESOURCE, sink).get_tracer("t")
    span = tracer.start_span("s", attributes={"after_ms": 12.5, "why": "retry"})
    span.add_event("retry", {"after_ms": 12.5, "why": "retry"})
    span.end()
    for value in (1, True, 1.0, "1", (1, 2), (True, False), ("a", "b"), [1.0, 2.0], ["a", "b"]):
        tracer.start_span("s", attributes={"v": value}).end()
    tracer.start_span("s", attributes={"kept": "a", "nested": ([1], [2])}).end()
    spans = sink.get_finished_spans()
    encoder = SpanEncoder(RESOURCE)
    for _ in range(2):  # the second time from what the encoder remembers
        request = ExportTraceServiceRequest.FromString(encoder.encode(spans))
        assert request == encode_spans([_as_sdk(s) for s in spans])


def test_ids_that_never_repeat_are_encoded_without_filling_the_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A key whose values keep changing (a request id, token counts) stops being
    remembered, and its values, encoded each time, are still the SDK's bytes."""
    monkeypatch.setattr(otlp_wire, "NATIVE", None)  # the memory is the Python encoder's
    sink = MemorySpans()
    tracer = LeanTracerProvider(RESOURCE, sink).get_tracer("t")
    for i in range(3 * otlp_wire._FRESH_LIMIT):
        attributes = {
            "llmesh.request_id": f"req-{i}" * (40 if i % 3 == 0 else 1),  # some over 127 bytes
            "gen_ai.usage.input_tokens": i * 1000,
            "rpc.system": "grpc",
        }
        tracer.start_span("s", attributes=attributes).end()
    spans = sink.get_finished_spans()
    encoder = SpanEncoder(RESOURCE)
    for _ in range(2):
        request = ExportTraceServiceRequest.FromString(encoder.encode(spans))
        assert request == encode_spans([_as_sdk(s) for s in spans])
    remembered = encoder._attributes._seen
    assert len(remembered) <= 2 * otlp_wire._FRESH_LIMIT + 1
    assert ("rpc.system", str, "grpc") in remembered
