"""A service's meter provider: exemplars only where a reader can export them; histograms
scraped as recorded."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

import pytest
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.parser import text_string_to_metric_families

from llmesh.services.common.metrics_settings import MetricsSettings
from llmesh.services.telemetry.metrics import (
    DURATION_BUCKETS,
    TOKEN_BUCKETS,
    Metrics,
    exemplar_filter,
    histogram_exemplars,
)


def _exemplars_under_a_sampled_span(env: Mapping[str, str]) -> tuple[int, list[Any]]:
    """(the span's trace id, the exemplars of two histograms recorded under it; the counters
    are read at collection, outside any span, and so carry none)."""
    reader = InMemoryMetricReader()
    metrics = Metrics(MetricsSettings(enabled=True), "orchestrator", readers=[reader], env=env)
    tracer = TracerProvider().get_tracer("test")
    try:
        with tracer.start_as_current_span("call") as span:
            metrics.calls.add(1, "chat", "ok", "none", "a/m", "acme")
            metrics.time_to_first_token.record(0.01, "chat", "a", "m")
            metrics.request_duration.record(0.01, "chat", "a", "m", "")
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


def test_unknown_exemplar_filters_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="OTEL_METRICS_EXEMPLAR_FILTER"):
        histogram_exemplars(MetricsSettings(enabled=True), {"OTEL_METRICS_EXEMPLAR_FILTER": "x"})
    assert histogram_exemplars(MetricsSettings(enabled=True), {}) is None  # Prometheus alone


def _histograms(text: str) -> dict[str, dict[frozenset[tuple[str, str]], dict[str, float]]]:
    """Each histogram family's samples by labels (without ``le``): ``le`` bucket values,
    ``sum`` and ``count``."""
    out: dict[str, dict[frozenset[tuple[str, str]], dict[str, float]]] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        for s in family.samples:
            labels = {k: v for k, v in s.labels.items() if k != "le"}
            series = out.setdefault(family.name, {}).setdefault(frozenset(labels.items()), {})
            kind = s.name.removeprefix(family.name)
            series[s.labels["le"] if kind == "_bucket" else kind[1:]] = s.value
    return out


def _expected(values: list[float], bounds: tuple[float, ...]) -> dict[str, float]:
    """Prometheus's view of `values` in buckets `bounds`: cumulative counts, sum, count."""
    counts = [0] * (len(bounds) + 1)
    for v in values:
        counts[bisect_left(bounds, v)] += 1
    series: dict[str, float] = {}
    running = 0
    for bound, n in zip([*bounds, "+Inf"], counts, strict=True):
        running += n
        series[str(bound)] = running
    series["sum"], series["count"] = sum(values), len(values)
    return series


def test_the_scraped_histograms_carry_the_recorded_buckets_sum_and_count() -> None:
    metrics = Metrics(MetricsSettings(enabled=True), "orchestrator", env={})
    try:
        ok = [0.003, 0.01, 0.2, 0.2, 1.5, 90.0]  # 0.01 sits on a boundary: its bucket's
        for v in ok:
            metrics.request_duration.record(v, "chat", "a", "m", "")
        metrics.request_duration.record(2.0, "chat", "a", "m", "UPSTREAM_TIMEOUT")
        tokens = [0, 1, 7, 4096, 5000]
        for v in tokens:
            metrics.token_usage.record(v, "chat", "a", "m", "", "input")
        scraped = _histograms(metrics.render().decode())
    finally:
        metrics.shutdown()
    genai = {"gen_ai_operation_name": "chat", "gen_ai_provider_name": "a"}
    genai["gen_ai_request_model"] = "m"
    durations = scraped["gen_ai_server_request_duration_seconds"]
    without_error = frozenset({**genai, "error_type": ""}.items())
    assert durations[without_error] == pytest.approx(_expected(ok, DURATION_BUCKETS))
    failed = frozenset({**genai, "error_type": "UPSTREAM_TIMEOUT"}.items())
    assert durations[failed] == _expected([2.0], DURATION_BUCKETS)
    (series,) = scraped["gen_ai_client_token_usage"].values()
    assert series == _expected(tokens, TOKEN_BUCKETS)
