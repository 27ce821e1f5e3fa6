"""The process's tracing set-up: nothing when off; provider, sampler, exporter, interceptors
and W3C headers when on."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llmesh.services.telemetry import tracing
from llmesh.services.telemetry.settings import TelemetrySettings, TracingSettings, parse_telemetry
from tests.telemetry.conftest import TRACING_ON

OFF = TelemetrySettings()


def test_off_installs_nothing() -> None:
    assert tracing.install_tracing(OFF, "gateway") is None
    assert tracing.server_interceptors(OFF) == []
    assert tracing.server_interceptors(None) == []
    assert tracing.client_interceptors(OFF) == []
    assert tracing.trace_headers() == {}  # no span: nothing to send on
    assert tracing.traceparent() is None


def test_on_installs_the_instrumentations_interceptors() -> None:
    assert len(tracing.server_interceptors(TRACING_ON)) == 1
    assert len(tracing.client_interceptors(TRACING_ON)) == 4  # one per RPC shape


@pytest.mark.parametrize(
    ("method", "traced"),
    [
        ("/llmesh.v1.OrchestratorService/Chat", True),
        (b"/llmesh.v1.OrchestratorService/StreamChat", True),  # grpc.aio clients: bytes
        ("/llmesh.v1.ProcessorService/Process", True),
        ("/grpc.health.v1.Health/Check", False),
        (b"/grpc.health.v1.Health/Watch", False),
        ("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", False),
        ("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", False),
    ],
)
def test_every_method_but_health_and_reflection_is_traced(
    method: str | bytes, traced: bool
) -> None:
    assert tracing.traced_method(SimpleNamespace(method=method)) is traced


def test_install_names_the_service_and_exports_through_a_batch(provider: TracerProvider) -> None:
    # `provider` first: the process's global provider stays the tests' one
    installed = tracing.install_tracing(TRACING_ON, "orchestrator", exporter=InMemorySpanExporter())
    assert installed is not None
    try:
        resource = installed.resource.attributes
        assert resource["service.name"] == "llmesh-orchestrator"
        assert resource["llmesh.service"] == "orchestrator"
        assert installed.sampler.get_description().startswith("ParentBased{root:AlwaysOnSampler")
    finally:
        installed.shutdown()
    named = TelemetrySettings(service_name="edge", tracing=TracingSettings(enabled=True))
    other = tracing.install_tracing(named, "gateway", exporter=InMemorySpanExporter())
    assert other is not None
    try:
        assert other.resource.attributes["service.name"] == "edge"
    finally:
        other.shutdown()


@pytest.mark.parametrize(
    ("env", "description"),
    [
        ({}, "ParentBased{root:AlwaysOnSampler"),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, "AlwaysOffSampler"),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
            "TraceIdRatioBased{0.25}",
        ),
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"},
            "ParentBased{root:TraceIdRatioBased{1.0}",
        ),
    ],
)
def test_samplers_follow_the_settings(env: dict[str, str], description: str) -> None:
    settings = parse_telemetry({"tracing": {"enabled": True}}, env).tracing
    assert tracing._sampler(settings).get_description().startswith(description)


def test_exporters_follow_protocol_and_endpoint() -> None:
    grpc_exporter = tracing._exporter(TracingSettings(enabled=True, endpoint="http://c:4317"))
    assert isinstance(grpc_exporter, GrpcExporter)
    http = tracing._exporter(
        TracingSettings(enabled=True, protocol="http/protobuf", endpoint="http://c:4318/v1/traces")
    )
    assert isinstance(http, HttpExporter) and http._endpoint == "http://c:4318/v1/traces"
    assert isinstance(tracing._exporter(TracingSettings(exporter="console")), ConsoleSpanExporter)
    for exporter in (grpc_exporter, http):
        exporter.shutdown()


def test_trace_headers_carry_the_current_span_and_baggage(provider: TracerProvider) -> None:
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with provider.get_tracer("test").start_as_current_span("attempt") as span:
            headers = tracing.trace_headers({"x-other": "kept"})
            ids = span.get_span_context()
    finally:
        context.detach(token)
    assert headers["x-other"] == "kept"
    assert (
        headers["traceparent"] == f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{ids.trace_flags:02x}"
    )
    assert headers["baggage"] == "tenant=acme"
    with provider.get_tracer("test").start_as_current_span("other") as span:
        assert tracing.traceparent() == tracing.trace_headers()["traceparent"]
    assert trace.get_current_span() is trace.INVALID_SPAN
