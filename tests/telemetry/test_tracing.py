"""The process's tracing set-up: nothing when off; provider, sampler, exporter, interceptors
and W3C headers when on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from types import SimpleNamespace

import grpc
import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.instrumentation.grpc._aio_server import OpenTelemetryAioServerInterceptor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.trace import SpanContext, TraceFlags, TraceState

from llmesh.services.telemetry import tracing
from llmesh.services.telemetry.grpc_spans import ServerSpans, TracedChannel, _TracedCallable
from llmesh.services.telemetry.lean_trace import LeanSpan, LeanTracerProvider, SpanBatcher
from llmesh.services.telemetry.otlp_send import GrpcSpanExporter, HttpSpanExporter
from llmesh.services.telemetry.settings import TelemetrySettings, TracingSettings, parse_telemetry
from llmesh.services.transport import render_headers
from tests.telemetry.conftest import TRACING_ON

OFF = TelemetrySettings()
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


async def test_off_installs_nothing() -> None:
    assert tracing.install_tracing(OFF, "gateway") is None
    assert tracing.server_interceptors(OFF) == []
    assert tracing.server_interceptors(None) == []
    channel = grpc.aio.insecure_channel("127.0.0.1:1")
    assert tracing.traced_channel(channel, OFF) is channel
    assert tracing.traced_channel(channel, None) is channel
    await channel.close()
    assert tracing.trace_headers() == {}  # no span: nothing to send on
    assert tracing.trace_line() == b""
    assert tracing.traceparent() is None


async def test_on_installs_the_server_spans_and_wraps_channels() -> None:
    (interceptor,) = tracing.server_interceptors(TRACING_ON)
    assert isinstance(interceptor, ServerSpans)
    assert tracing.client_interceptors(TRACING_ON) == []  # llmesh's spans: the channel wrapped
    channel = grpc.aio.insecure_channel("127.0.0.1:1")
    async with tracing.traced_channel(channel, TRACING_ON) as traced:
        assert isinstance(traced, TracedChannel)


async def test_the_opentelemetry_mode_installs_the_instrumentations_interceptors() -> None:
    on = replace(
        TRACING_ON, tracing=replace(TRACING_ON.tracing, grpc_instrumentation="opentelemetry")
    )
    (interceptor,) = tracing.server_interceptors(on)
    assert isinstance(interceptor, OpenTelemetryAioServerInterceptor)
    kinds = (
        grpc.aio.UnaryUnaryClientInterceptor,
        grpc.aio.UnaryStreamClientInterceptor,
        grpc.aio.StreamUnaryClientInterceptor,
        grpc.aio.StreamStreamClientInterceptor,
    )
    interceptors = tracing.client_interceptors(on)
    assert [kind for kind in kinds for i in interceptors if isinstance(i, kind)] == list(kinds)
    assert tracing.client_interceptors(OFF) == [] and tracing.client_interceptors(None) == []
    channel = grpc.aio.insecure_channel("127.0.0.1:1", interceptors=interceptors)
    assert tracing.traced_channel(channel, on) is channel  # traced by its interceptors
    await channel.close()


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


class _Kept:
    def __init__(self) -> None:
        self.spans: list[LeanSpan] = []

    def export(self, spans: Sequence[LeanSpan]) -> bool:
        self.spans.extend(spans)
        return True

    def shutdown(self) -> None:
        pass


def test_install_names_the_service_and_exports_through_a_batch(
    provider: LeanTracerProvider,
) -> None:
    # `provider` first: the process's global provider stays the tests' one
    kept = _Kept()
    installed = tracing.install_tracing(TRACING_ON, "orchestrator", exporter=kept)
    assert isinstance(installed, LeanTracerProvider)
    try:
        assert installed.resource["service.name"] == "llmesh-orchestrator"
        assert installed.resource["llmesh.service"] == "orchestrator"
        assert installed.resource["telemetry.sdk.language"] == "python"
        assert installed.sampler_description == "ParentBased{root:AlwaysOnSampler}"
        installed.get_tracer("t").start_span("batched").end()
        assert kept.spans == []  # queued for the batch's thread, not exported on the spot
    finally:
        installed.shutdown()
    assert [s.name for s in kept.spans] == ["batched"]  # exported at shutdown (at exit)
    named = TelemetrySettings(service_name="edge", tracing=TracingSettings(enabled=True))
    other = tracing.install_tracing(named, "gateway", exporter=_Kept())
    assert isinstance(other, LeanTracerProvider)
    try:
        assert other.resource["service.name"] == "edge"
    finally:
        other.shutdown()


def test_the_console_exporter_keeps_the_sdks_provider(provider: LeanTracerProvider) -> None:
    console = TelemetrySettings(tracing=TracingSettings(enabled=True, exporter="console"))
    installed = tracing.install_tracing(console, "cli")
    assert isinstance(installed, TracerProvider)
    installed.shutdown()


@pytest.mark.parametrize(
    ("env", "description", "kept"),
    [
        ({}, "ParentBased{root:AlwaysOnSampler}", 1.0),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, "AlwaysOffSampler", 0.0),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
            "TraceIdRatioBased{0.25}",
            0.25,
        ),
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"},
            "ParentBased{root:TraceIdRatioBased{0.5}}",
            0.5,
        ),
    ],
)
def test_the_lean_samplers_follow_the_settings(
    env: dict[str, str], description: str, kept: float
) -> None:
    settings = parse_telemetry({"tracing": {"enabled": True}}, env).tracing
    sampler, described = tracing._lean_sampler(settings)
    assert described == description
    ids = [(i * 0x9E3779B97F4A7C15_F39CC0605CEDC834) % (1 << 128) for i in range(1, 4001)]
    share = sum(sampler(None, i) for i in ids) / len(ids)
    assert abs(share - kept) < 0.05


def test_batch_variables_are_read_as_the_sdk_reads_them() -> None:
    assert tracing._batch_options({}) == {"delay": 5.0, "batch": 512, "capacity": 2048}
    env = {"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "x"}
    assert tracing._batch_options(env) == {"delay": 0.2, "batch": 512, "capacity": 2048}


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


def test_otlp_exports_from_the_lean_provider_over_the_configured_protocol(
    provider: LeanTracerProvider,
) -> None:
    for protocol, kind in (("grpc", GrpcSpanExporter), ("http/protobuf", HttpSpanExporter)):
        settings = TelemetrySettings(tracing=TracingSettings(enabled=True, protocol=protocol))
        installed = tracing.install_tracing(settings, "gateway")
        assert isinstance(installed, LeanTracerProvider)
        assert isinstance(installed.batcher, SpanBatcher)
        assert isinstance(installed.batcher.exporter, kind)
        installed.shutdown()
    assert isinstance(tracing._console(), ConsoleSpanExporter)


def test_trace_headers_carry_the_current_span_and_baggage(provider: LeanTracerProvider) -> None:
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


def test_the_trace_line_is_the_traceparent_header_alone(provider: LeanTracerProvider) -> None:
    with provider.get_tracer("test").start_as_current_span("attempt"):
        line = tracing.trace_line()
        assert line == f"traceparent: {tracing.traceparent()}\r\n".encode()
        assert render_headers(tracing.trace_headers()) == line
    # baggage, or a caller's trace state, is more than the line: `trace_headers` sends it
    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        with provider.get_tracer("test").start_as_current_span("attempt"):
            assert tracing.trace_line() is None
    finally:
        context.detach(token)
    state = TraceState([("vendor", "v1")])
    caller = SpanContext(int(CALLER_TRACE, 16), 7, True, TraceFlags(1), state)
    parent = trace.set_span_in_context(trace.NonRecordingSpan(caller))
    with provider.get_tracer("test").start_as_current_span("attempt", context=parent):
        assert tracing.trace_line() is None
        assert tracing.trace_headers()["tracestate"] == "vendor=v1"


class _Inner:
    """A channel that hands back, for each kind of call, what it was asked for."""

    def __getattr__(self, kind: str) -> object:
        return lambda *args: (kind, *args)


@pytest.mark.parametrize("kind", ["unary_unary", "unary_stream", "stream_unary", "stream_stream"])
def test_each_kind_of_call_wraps_the_inner_channels_callable(kind: str) -> None:
    channel = TracedChannel(_Inner(), lambda name: name.startswith("/grpc.health"))
    traced = getattr(channel, kind)("/llmesh.v1.OrchestratorService/Chat", "ser", "de", True)
    assert isinstance(traced, _TracedCallable)
    assert traced._inner == (kind, "/llmesh.v1.OrchestratorService/Chat", "ser", "de", True)
    untraced = getattr(channel, kind)(b"/grpc.health.v1.Health/Check")
    assert untraced == (kind, b"/grpc.health.v1.Health/Check", None, None, False)


def test_a_calls_trace_id_is_its_spans_else_its_callers(provider: LeanTracerProvider) -> None:
    sent = [("authorization", "Bearer k"), ("traceparent", TRACEPARENT)]
    # tracing off (no span): the caller's traceparent names the trace
    assert tracing.call_trace_id(sent) == CALLER_TRACE
    # ...unless there is none or it is not a valid one (then there is no trace id)
    assert tracing.call_trace_id(None) == tracing.call_trace_id([]) == ""
    for bad in ("junk", f"00-{'0' * 32}-00f067aa0ba902b7-01", TRACEPARENT.upper()):
        assert tracing.call_trace_id([("traceparent", bad)]) == ""
    # tracing on: the span's trace, which continues the caller's or starts its own
    with provider.get_tracer("test").start_as_current_span("call") as span:
        own = f"{span.get_span_context().trace_id:032x}"
        assert tracing.call_trace_id(sent) == own != CALLER_TRACE
