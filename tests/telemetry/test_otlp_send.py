"""The wire exporters: spans reach a real OTLP/gRPC receiver and an OTLP/HTTP endpoint, with
the ``OTEL_EXPORTER_OTLP_*`` headers and compression, and passing failures are retried."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from llmesh.services.telemetry.lean_trace import LeanSpan, LeanTracerProvider
from llmesh.services.telemetry.otlp import OtlpReceiver
from llmesh.services.telemetry.otlp_send import GrpcSpanExporter, HttpSpanExporter, wire_exporter
from llmesh.services.telemetry.settings import TracingSettings
from tests.telemetry.conftest import MemorySpans

RESOURCE = {"service.name": "llmesh-gateway"}


def _spans(count: int) -> list[LeanSpan]:
    sink = MemorySpans()
    tracer = LeanTracerProvider(RESOURCE, sink).get_tracer("llmesh.gateway")
    for i in range(count):
        tracer.start_span(f"span {i}", attributes={"i": i}).end()
    return list(sink.get_finished_spans())


async def test_spans_reach_an_otlp_grpc_receiver() -> None:
    receiver = await OtlpReceiver().start()
    exporter = GrpcSpanExporter(receiver.endpoint, RESOURCE, {})
    try:
        assert await asyncio.to_thread(exporter.export, _spans(3))
        received = await receiver.wait_for(lambda s: len(s) == 3)
    finally:
        exporter.shutdown()
        await receiver.stop()
    assert [(s.service, s.name, s.attributes) for s in received] == [
        ("llmesh-gateway", f"span {i}", {"i": i}) for i in range(3)
    ]


def test_nothing_listening_is_a_failed_export_after_the_timeout() -> None:
    exporter = GrpcSpanExporter("127.0.0.1:1", RESOURCE, {"OTEL_EXPORTER_OTLP_TIMEOUT": "0.5"})
    try:
        assert exporter.export(_spans(1)) is False
    finally:
        exporter.shutdown()


class _Collector(BaseHTTPRequestHandler):
    requests: list[tuple[str, dict[str, str], bytes]] = []
    statuses: list[int] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append((self.path, dict(self.headers), body))
        status = self.statuses.pop(0) if self.statuses else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.requests, _Collector.statuses = [], []
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/v1/traces"
    finally:
        server.shutdown()
        server.server_close()


def test_spans_are_posted_as_protobuf_with_the_configured_headers(collector: str) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=acme",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "authorization=Bearer%20abc",  # the signal's wins
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
    }
    exporter = HttpSpanExporter(collector, RESOURCE, env)
    try:
        assert exporter.export(_spans(2)) and exporter.export(_spans(1))
    finally:
        exporter.shutdown()
    (path, headers, body), _second = _Collector.requests
    assert path == "/v1/traces"
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["Content-Encoding"] == "gzip"
    assert headers["authorization"] == "Bearer abc" and "x-tenant" not in headers
    request = ExportTraceServiceRequest.FromString(gzip.decompress(body))
    names = [s.name for s in request.resource_spans[0].scope_spans[0].spans]
    assert names == ["span 0", "span 1"]


def test_a_busy_collector_is_retried_and_a_refusal_is_not(collector: str) -> None:
    _Collector.statuses = [503, 200, 400]
    exporter = HttpSpanExporter(collector, RESOURCE, {})
    try:
        assert exporter.export(_spans(1)) is True  # 503, then 200 a second later
        assert exporter.export(_spans(1)) is False  # 400: dropped at once
    finally:
        exporter.shutdown()
    assert len(_Collector.requests) == 3


def test_the_protocol_picks_the_exporter_and_endpoints_default_per_protocol() -> None:
    grpc_exporter = wire_exporter(TracingSettings(enabled=True), RESOURCE, {})
    assert isinstance(grpc_exporter, GrpcSpanExporter) and grpc_exporter.target == "localhost:4317"
    http = wire_exporter(TracingSettings(enabled=True, protocol="http/protobuf"), RESOURCE, {})
    assert isinstance(http, HttpSpanExporter)
    assert http.endpoint == "http://localhost:4318/v1/traces"
    bare = wire_exporter(TracingSettings(enabled=True, endpoint="collector:4317"), RESOURCE, {})
    assert isinstance(bare, GrpcSpanExporter) and bare.target == "collector:4317"
    for exporter in (grpc_exporter, http, bare):
        exporter.shutdown()
