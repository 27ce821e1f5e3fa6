"""The observing layer's call span: made by the same layer as the metrics and the call log."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import SpanKind, StatusCode

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import ChatCall
from llmesh.services.core.chat import ChatRequest, Message, Role
from llmesh.services.orchestrator.assembly import assemble
from llmesh.services.orchestrator.layers.observed import Observed
from llmesh.services.telemetry import CALL_LOGGER, Metrics, MetricsSettings
from llmesh.services.telemetry.lean_trace import LeanTracerProvider
from llmesh.services.telemetry.settings import LogSettings, TelemetrySettings, TracingSettings
from tests.orchestrator.scripted import Scripted
from tests.orchestrator.test_observed import OK, _config, _engine
from tests.support.tracing import MemorySpans

TRACED = TracingSettings(enabled=True)


async def test_tracing_alone_puts_the_observing_layer_on_the_path(
    tmp_path: Path, provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    config = _config(tmp_path, telemetry=TelemetrySettings(tracing=TRACED))
    assembly = await assemble(config, _engine(Scripted("a", OK)), bind_host="127.0.0.1")
    try:
        assert isinstance(assembly.path.handler, Observed)
        _ = [e async for e in assembly.path.stream(ChatCall("a/m", _request()))]
    finally:
        await assembly.aclose()
    (call,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.INTERNAL]
    assert call.name == "call a/m"
    assert call.attributes["llmesh.attempts"] == 1
    assert call.attributes["gen_ai.usage.output_tokens"] == 5


def _request() -> ChatRequest:
    return ChatRequest(messages=(Message(Role.USER, "hi"),))


async def test_one_pass_gives_the_span_the_metrics_and_the_log_record(
    tmp_path: Path,
    provider: LeanTracerProvider,
    spans: MemorySpans,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reader = InMemoryMetricReader()
    metrics = Metrics(MetricsSettings(enabled=True, prometheus=False), "o", readers=[reader])
    on = TelemetrySettings(tracing=TRACED, logs=LogSettings(calls=True))
    down = Scripted("a", [LlmeshError(Reason.UPSTREAM_AUTH_FAILED, "no")])
    engine = _engine(down, Scripted("b", [LlmeshError(Reason.UPSTREAM_AUTH_FAILED, "no")]))
    assembly = await assemble(
        _config(tmp_path, telemetry=on), engine, bind_host="127.0.0.1", metrics=metrics
    )
    tracer = provider.get_tracer("test")
    try:
        with caplog.at_level(logging.INFO, CALL_LOGGER), tracer.start_as_current_span("server"):
            outer = trace.get_current_span().get_span_context()
            with pytest.raises(LlmeshError):
                _ = [e async for e in assembly.path.stream(ChatCall("a/m", _request()))]
    finally:
        await assembly.aclose()
    (call,) = [s for s in spans.get_finished_spans() if s.name == "call a/m"]
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes["error.type"] == "UPSTREAM_AUTH_FAILED"
    assert call.parent is not None and call.parent.span_id == outer.span_id
    (record,) = [r for r in caplog.records if r.name == CALL_LOGGER]
    fields = record.call  # type: ignore[attr-defined]
    # recorded once the call's span has ended: the record names the span around the call
    assert fields["span_id"] == format(outer.span_id, "016x")
    assert fields["reason"] == "UPSTREAM_AUTH_FAILED"
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "llmesh.calls" in names


def _server(tracer: trace.Tracer, method: str) -> trace.Span:
    """A gRPC server span as the servers' span wrapper starts it, for `method`."""
    rpc = {"rpc.system": "grpc", "rpc.service": "llmesh.v1.OrchestratorService"}
    return tracer.start_span(
        f"/llmesh.v1.OrchestratorService/{method}",
        kind=SpanKind.SERVER,
        attributes={**rpc, "rpc.method": method, "rpc.grpc.status_code": 0},
    )


async def test_a_call_that_is_the_whole_request_writes_on_its_server_span(
    tmp_path: Path, provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    config = _config(tmp_path, telemetry=TelemetrySettings(tracing=TRACED))
    assembly = await assemble(config, _engine(Scripted("a", OK)), bind_host="127.0.0.1")
    tracer = provider.get_tracer("test")
    try:
        server = _server(tracer, "Chat")
        with trace.use_span(server, end_on_exit=True):
            _ = [e async for e in assembly.path.stream(ChatCall("a/m", _request()))]
            # a second call under the same request (a summarizing call, say) is its own span
            _ = [e async for e in assembly.path.stream(ChatCall("a/m", _request()))]
    finally:
        await assembly.aclose()
    finished = spans.get_finished_spans()
    (served,) = [s for s in finished if s.kind is SpanKind.SERVER]
    assert served.name == "/llmesh.v1.OrchestratorService/Chat"  # not renamed
    assert served.attributes["llmesh.model"] == "a/m"
    assert served.attributes["llmesh.attempts"] == 1
    assert served.attributes["gen_ai.usage.output_tokens"] == 5
    (second,) = [s for s in finished if s.kind is SpanKind.INTERNAL]
    assert second.name == "call a/m" and second.parent.span_id == served.context.span_id
    assert second.attributes["llmesh.request_id"] != served.attributes["llmesh.request_id"]


async def test_a_failed_call_leaves_its_server_spans_status_to_the_server(
    tmp_path: Path, provider: LeanTracerProvider, spans: MemorySpans
) -> None:
    config = _config(tmp_path, telemetry=TelemetrySettings(tracing=TRACED))
    refused = Scripted("a", [LlmeshError(Reason.UPSTREAM_INVALID_REQUEST, "no")])
    assembly = await assemble(config, _engine(refused), bind_host="127.0.0.1")
    tracer = provider.get_tracer("test")
    try:
        server = _server(tracer, "StreamChat")
        with trace.use_span(server, end_on_exit=True), pytest.raises(LlmeshError):
            _ = [e async for e in assembly.path.stream(ChatCall("a/m", _request()))]
    finally:
        await assembly.aclose()
    (served,) = spans.get_finished_spans()
    assert served.attributes["error.type"] == "UPSTREAM_INVALID_REQUEST"
    # a caller's fault is no server error (gRPC conventions): the server sets the status
    assert served.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize("method", ["StreamCouncil", "ListModels"])
async def test_calls_under_other_methods_get_spans_of_their_own(
    tmp_path: Path, provider: LeanTracerProvider, spans: MemorySpans, method: str
) -> None:
    config = _config(tmp_path, telemetry=TelemetrySettings(tracing=TRACED))
    assembly = await assemble(config, _engine(Scripted("a", OK)), bind_host="127.0.0.1")
    tracer = provider.get_tracer("test")
    try:
        with trace.use_span(_server(tracer, method), end_on_exit=True):
            for _ in range(2):  # a council's branches, each a call
                _ = [e async for e in assembly.path.stream(ChatCall("a/m", _request()))]
    finally:
        await assembly.aclose()
    finished = spans.get_finished_spans()
    (served,) = [s for s in finished if s.kind is SpanKind.SERVER]
    assert "llmesh.request_id" not in served.attributes
    calls = [s for s in finished if s.kind is SpanKind.INTERNAL]
    assert [s.name for s in calls] == ["call a/m", "call a/m"]
    assert all(s.parent.span_id == served.context.span_id for s in calls)
