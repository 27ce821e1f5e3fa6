"""A small OTLP/gRPC receiver: what a collector sees of the mesh, kept in memory.

It serves opentelemetry-proto's ``TraceService`` and ``MetricsService`` on a ``grpc.aio``
server and keeps every span and metrics export it receives, so tests (and the benchmark's
traced runs) can point ``OTEL_EXPORTER_OTLP_ENDPOINT`` at it and read what the services
exported. Not a collector: nothing is forwarded or stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

__all__ = ["OtlpReceiver", "ReceivedSpan", "attribute_value"]


def attribute_value(value: AnyValue) -> Any:
    """An OTLP attribute value as a Python value (arrays as tuples)."""
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(attribute_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return {kv.key: attribute_value(kv.value) for kv in value.kvlist_value.values}
    return None if kind is None else getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: attribute_value(kv.value) for kv in pairs}


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, flattened with its resource's service name."""

    service: str
    """The exporting process's ``service.name``."""
    name: str
    trace_id: str
    """32 hex digits."""
    span_id: str
    """16 hex digits."""
    parent_span_id: str
    """16 hex digits, or empty for a root span."""
    kind: int
    """The OTLP ``Span.SpanKind`` number (2 server, 3 client)."""
    status_code: int
    """The OTLP ``Status.StatusCode`` number (0 unset, 1 ok, 2 error)."""
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, service: str, span: Span) -> ReceivedSpan:
        """The span as received."""
        return cls(
            service=service,
            name=span.name,
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            kind=span.kind,
            status_code=span.status.code,
            attributes=_attributes(span.attributes),
        )


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self._receiver.spans.append(ReceivedSpan.from_proto(service, span))
        self._receiver._changed()
        return trace_service_pb2.ExportTraceServiceResponse()


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, receiver: OtlpReceiver) -> None:
        self._receiver = receiver

    async def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        self._receiver.metrics.append(request)
        self._receiver._changed()
        return metrics_service_pb2.ExportMetricsServiceResponse()


class OtlpReceiver:
    """An OTLP/gRPC endpoint on ``127.0.0.1``; `endpoint` is what exporters point at."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        """Every span received, in arrival order."""
        self.metrics: list[metrics_service_pb2.ExportMetricsServiceRequest] = []
        """Every metrics export received, as sent."""
        self._server: grpc.aio.Server | None = None
        self._port = 0
        self._event = asyncio.Event()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``, for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        return f"http://127.0.0.1:{self._port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> OtlpReceiver:
        """Listen (an ephemeral port by default) and return self."""
        server = grpc.aio.server()
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_Traces(self), server)  # type: ignore[no-untyped-call]
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_Metrics(self), server)  # type: ignore[no-untyped-call]
        self._port = server.add_insecure_port(f"{host}:{port}")
        await server.start()
        self._server = server
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            await self._server.stop(None)
            self._server = None

    def _changed(self) -> None:
        self._event.set()

    async def wait_for(
        self, condition: Callable[[list[ReceivedSpan]], bool], timeout: float = 20.0
    ) -> list[ReceivedSpan]:
        """The spans, once `condition` holds for them; TimeoutError after `timeout` s."""
        async with asyncio.timeout(timeout):
            while not condition(self.spans):
                self._event.clear()
                await self._event.wait()
        return self.spans

    def trace(self, trace_id: str) -> Iterator[ReceivedSpan]:
        """The spans of one trace."""
        return (s for s in self.spans if s.trace_id == trace_id)
