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
