"""A tally's sums reach a reader as the points of an observable counter, one per label set."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from llmesh.services.telemetry.tally import Tally


def _points(reader: InMemoryMetricReader) -> dict[tuple[tuple[str, object], ...], object]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        tuple(sorted(p.attributes.items())): p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
    }


def test_sums_by_label_set_are_read_at_collection() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    tally = Tally("outcome", "target")
    provider.get_meter("t").create_observable_counter("calls", callbacks=[tally.observe])
    tally.add(1, "ok", "a/m")
    tally.add(2, "ok", "a/m")
    tally.add(1, "error", "b/m")
    assert _points(reader) == {
        (("outcome", "ok"), ("target", "a/m")): 3,
        (("outcome", "error"), ("target", "b/m")): 1,
    }
    tally.add(1, "error", "b/m")
    assert _points(reader)[(("outcome", "error"), ("target", "b/m"))] == 2  # cumulative
    provider.shutdown()


def test_an_up_down_tally_goes_back_to_zero() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    tally = Tally("op")
    meter = provider.get_meter("t")
    meter.create_observable_up_down_counter("in_flight", callbacks=[tally.observe])
    tally.add(1, "chat")
    tally.add(1, "chat")
    assert _points(reader) == {(("op", "chat"),): 2}
    tally.add(-1, "chat")
    tally.add(-1, "chat")
    assert _points(reader) == {(("op", "chat"),): 0}
    provider.shutdown()
