"""Bucket histograms: recorded as plain arrays, read by any reader as the SDK's points."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.metrics import (
    AlwaysOnExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from llmesh.services.telemetry.histogram import BucketHistogram, HistogramProducer


def _histogram(**kwargs: Any) -> BucketHistogram:
    return BucketHistogram("d", "s", "Durations.", (0.1, 1.0, 10.0), "op", "error", **kwargs)


def _attached(*histograms: BucketHistogram) -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    resource = Resource.create({"service.name": "t"})
    provider = MeterProvider(metric_readers=[reader], resource=resource)
    producer = HistogramProducer(resource)
    for h in histograms:
        producer.add(h, "llmesh")
    producer.attach(reader)
    return provider, reader


def _points(reader: InMemoryMetricReader, name: str = "d") -> list[HistogramDataPoint]:
    data = reader.get_metrics_data()
    assert data is not None
    found = []
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    assert sm.scope.name == "llmesh"
                    assert (metric.unit, metric.description) == ("s", "Durations.")
                    assert metric.data.aggregation_temporality is AggregationTemporality.CUMULATIVE
                    found += [
                        p for p in metric.data.data_points if isinstance(p, HistogramDataPoint)
                    ]
    return found


def test_points_carry_buckets_sum_count_min_max_by_label_set() -> None:
    h = _histogram()
    provider, reader = _attached(h)
    for value in (0.05, 0.1, 0.5, 20.0):  # 0.1 falls in the (0, 0.1] bucket, as in the SDK
        h.record(value, "chat", "")
    h.record(3.0, "chat", "TIMEOUT")
    points = {tuple(sorted(p.attributes.items())): p for p in _points(reader)}
    ok = points[(("op", "chat"),)]  # "" leaves the attribute out
    assert ok.bucket_counts == (2, 1, 0, 1)
    assert ok.explicit_bounds == (0.1, 1.0, 10.0)
    assert (ok.count, ok.sum, ok.min, ok.max) == (4, pytest.approx(20.65), 0.05, 20.0)
    failed = points[(("error", "TIMEOUT"), ("op", "chat"))]
    assert (failed.bucket_counts, failed.count, failed.sum) == ((0, 0, 1, 0), 1, 3.0)
    h.record(0.5, "chat", "")
    (again,) = [p for p in _points(reader) if p.attributes == {"op": "chat"}]
    assert (again.count, again.bucket_counts) == (5, (2, 2, 0, 1))  # cumulative
    provider.shutdown()


def test_the_points_equal_what_the_sdk_histogram_makes_of_the_same_values() -> None:
    h = _histogram()
    provider, reader = _attached(h)
    sdk = provider.get_meter("sdk").create_histogram(
        "sdk", unit="s", explicit_bucket_boundaries_advisory=(0.1, 1.0, 10.0)
    )
    for value in (0.0, 0.1, 0.10001, 1.0, 7, 10.0, 11.5, 1e9):
        h.record(value, "chat", "")
        sdk.record(value, {"op": "chat"})
    data = reader.get_metrics_data()
    assert data is not None
    by_name = {
        m.name: m.data.data_points[0]
        for sm in data.resource_metrics[0].scope_metrics
        for m in sm.metrics
    }
    ours, theirs = by_name["d"], by_name["sdk"]
    for field in ("attributes", "count", "sum", "bucket_counts", "explicit_bounds", "min", "max"):
        assert getattr(ours, field) == getattr(theirs, field), field
    provider.shutdown()


def test_a_collection_with_nothing_from_the_sdk_still_carries_the_histograms() -> None:
    h = _histogram()
    provider, reader = _attached(h)
    assert reader.get_metrics_data() is None  # nothing recorded anywhere yet
    h.record(1.0, "chat", "")
    data = reader.get_metrics_data()
    assert data is not None
    (rm,) = data.resource_metrics
    assert rm.resource.attributes["service.name"] == "t"
    assert [p.count for p in _points_of(data)] == [1]
    provider.shutdown()


def _points_of(data: Any) -> list[Any]:
    return [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
    ]


def test_a_wrong_number_of_label_values_is_refused() -> None:
    with pytest.raises(ValueError, match="2 label values"):
        _histogram().record(1.0, "chat")
    with pytest.raises(ValueError, match="strictly increasing"):
        BucketHistogram("d", "s", "", (1.0, 1.0))


def test_exemplars_are_the_last_sampled_measurement_per_bucket_once_per_reader() -> None:
    h = _histogram(exemplar_filter=TraceBasedExemplarFilter())
    provider, reader = _attached(h)
    tracer = TracerProvider().get_tracer("t")
    h.record(0.5, "chat", "")  # no span: not sampled
    with tracer.start_as_current_span("call") as span:
        h.record(0.2, "chat", "")
        h.record(0.3, "chat", "")  # the same bucket: replaces 0.2
        h.record(5.0, "chat", "")
    ids = span.get_span_context()
    (point,) = _points(reader)
    assert sorted(e.value for e in point.exemplars) == [0.3, 5.0]
    assert {(e.trace_id, e.span_id) for e in point.exemplars} == {(ids.trace_id, ids.span_id)}
    (point,) = _points(reader)
    assert point.exemplars == []  # each exemplar is exported once by a reader
    provider.shutdown()


def test_without_a_filter_no_exemplar_is_kept_and_always_on_keeps_spanless_ones() -> None:
    off = _histogram()
    on = BucketHistogram("on", "s", "", (1.0,), exemplar_filter=AlwaysOnExemplarFilter())
    provider, reader = _attached(off, on)
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("call"):
        off.record(0.5, "chat", "")
    on.record(0.5)
    data = reader.get_metrics_data()
    points = (
        {
            m.name: m.data.data_points[0]
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
        if data
        else {}
    )
    assert points["d"].exemplars == []
    (exemplar,) = points["on"].exemplars
    assert (exemplar.value, exemplar.trace_id, exemplar.span_id) == (0.5, None, None)
    provider.shutdown()
