"""A service's meter provider: exemplars only where a reader can export them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from llmesh.services.common.metrics_settings import MetricsSettings
from llmesh.services.telemetry.metrics import Metrics, exemplar_filter


def _exemplars_under_a_sampled_span(env: Mapping[str, str]) -> tuple[int, list[Any]]:
    """(the span's trace id, the exemplars of two histograms recorded under it; the counters
    are read at collection, outside any span, and so carry none)."""
    reader = InMemoryMetricReader()
    metrics = Metrics(MetricsSettings(enabled=True), "orchestrator", readers=[reader], env=env)
    tracer = TracerProvider().get_tracer("test")
    try:
        with tracer.start_as_current_span("call") as span:
            metrics.calls.add(1, "chat", "ok", "none", "a/m", "acme")
            metrics.time_to_first_token.record(0.01, {"gen_ai.operation.name": "chat"})
            metrics.request_duration.record(0.01, {"gen_ai.operation.name": "chat"})
        data = reader.get_metrics_data()
    finally:
        metrics.shutdown()
    assert data is not None
    found = [
        exemplar
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
        for point in metric.data.data_points
        for exemplar in point.exemplars
    ]
    return span.get_span_context().trace_id, found


def test_prometheus_alone_takes_no_exemplars() -> None:
    _, exemplars = _exemplars_under_a_sampled_span({})
    assert exemplars == []  # the text format has none, so none are sampled


def test_the_standard_variable_asks_for_exemplars_again() -> None:
    trace_id, exemplars = _exemplars_under_a_sampled_span(
        {"OTEL_METRICS_EXEMPLAR_FILTER": "trace_based"}
    )
    assert len(exemplars) == 2
    assert {e.trace_id for e in exemplars} == {trace_id}


def test_otlp_leaves_exemplars_to_the_sdk() -> None:
    assert exemplar_filter(MetricsSettings(enabled=True, otlp=True), {}) is None
    off = exemplar_filter(MetricsSettings(enabled=True), {})
    assert isinstance(off, AlwaysOffExemplarFilter)
    assert (
        exemplar_filter(MetricsSettings(enabled=True), {"OTEL_METRICS_EXEMPLAR_FILTER": "x"})
        is None
    )
