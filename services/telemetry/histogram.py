"""Histograms kept as plain bucket arrays on the call path, made into points at collection.

An OpenTelemetry SDK histogram measurement validates, copies and hashes its attributes,
takes two locks and offers the value to an exemplar reservoir (6 to 9 us apiece); a
plain call made six. A `BucketHistogram` keeps, per label set, the same cumulative state
the SDK's explicit-bucket aggregation keeps (bucket counts found by bisection on fixed
boundaries, sum, min, max) in one list: recording is a dict lookup, a bisection and a few
list updates. A `HistogramProducer` turns them into the SDK's histogram points, with the
same name, unit, description, boundaries and attributes, each time a reader collects (a
Prometheus scrape, an OTLP export), and adds them to what the SDK collected.

The SDK (1.45) has no metric producer to register (the specification's MetricProducer is
not implemented in Python), so `HistogramProducer.attach` wraps the collect callback the
meter provider gives each reader: every reader, whatever it is, then receives the SDK's
metrics and these histograms in one batch. The points are cumulative, as Prometheus wants
and OTLP exporters ask by default.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from itertools import pairwise
from time import time_ns
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import Exemplar, ExemplarFilter
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricReader,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

__all__ = ["BucketHistogram", "HistogramProducer", "Label"]

Label = str | int
"""A label value: a string, or an integer (an HTTP status code), as the attribute's."""


class BucketHistogram:
    """An explicit-bucket histogram by label values, in the order of `names`.

    A label value ``""`` leaves its attribute out of the point (an optional attribute, as
    ``error.type`` on a success). Recorded on the event loop's thread; read from a reader's
    thread too (each cell is copied in one step, so a point never mixes two cells; a
    measurement recorded during the copy may show in its count but not yet its sum, and is
    whole in the next collection).
    """

    __slots__ = (
        "bounds",
        "cells",
        "description",
        "exemplar_filter",
        "name",
        "names",
        "samples",
        "started",
        "unit",
    )

    def __init__(
        self,
        name: str,
        unit: str,
        description: str,
        bounds: Sequence[float],
        *names: str,
        exemplar_filter: ExemplarFilter | None = None,
    ) -> None:
        """`exemplar_filter`: which measurements become exemplars (the last one per bucket
        and label set since a reader's previous collection, as the SDK's aligned-bucket
        reservoir keeps); None: none do, and recording never looks at the context."""
        if any(b >= c for b, c in pairwise(bounds)):
            raise ValueError(f"{name}: boundaries must be strictly increasing")
        self.name = name
        self.unit = unit
        self.description = description
        self.bounds = tuple(bounds)
        self.names = names
        """The attribute names, one per label value."""
        self.exemplar_filter = exemplar_filter
        self.cells: dict[tuple[Label, ...], list[Any]] = {}
        """Each label set's cell: ``[sum, min, max, count of each bucket...]``."""
        self.started: dict[tuple[Label, ...], int] = {}
        """When each label set was first recorded (the points' start time)."""
        self.samples: dict[tuple[Label, ...], list[Exemplar | None]] = {}
        """Each label set's latest exemplar per bucket."""

    def record(self, value: float, *labels: Label) -> None:
        """Count `value` for `labels` (one value per name, in order)."""
        cell = self.cells.get(labels)
        if cell is None:
            cell = self._open(labels)
        index = bisect_left(self.bounds, value)
        cell[3 + index] += 1  # indexed by literals: a global lookup costs more
        cell[0] += value
        if value < cell[1]:
            cell[1] = value
        if value > cell[2]:
            cell[2] = value
        if self.exemplar_filter is not None:
            self._offer(value, labels, index)

    def _open(self, labels: tuple[Label, ...]) -> list[Any]:
        if len(labels) != len(self.names):
            raise ValueError(f"{self.name}: {len(self.names)} label values, got {labels!r}")
        self.started[labels] = time_ns()
        cell: list[Any] = [0, math.inf, -math.inf, *([0] * (len(self.bounds) + 1))]
        self.cells[labels] = cell
        return cell

    def _offer(self, value: float, labels: tuple[Label, ...], index: int) -> None:
        """Keep the measurement as its bucket's exemplar if the filter says so (the trace
        and span of the current span, when there is one)."""
        assert self.exemplar_filter is not None
        context = otel_context.get_current()
        now = time_ns()
        if not self.exemplar_filter.should_sample(value, now, None, context):
            return
        span = trace.get_current_span(context)
        span_id = trace_id = None
        if span is not trace.INVALID_SPAN:
            ids = span.get_span_context()
            span_id, trace_id = ids.span_id, ids.trace_id
        samples = self.samples.get(labels)
        if samples is None:
            samples = self.samples[labels] = [None] * (len(self.bounds) + 1)
        samples[index] = Exemplar({}, value, now, span_id, trace_id)

    def points(self, now: int, since: int) -> list[HistogramDataPoint]:
        """One cumulative point per label set, with the exemplars taken after `since`."""
        names, bounds = self.names, self.bounds
        points = []
        for labels, cell in list(self.cells.items()):
            sum_, min_, max_, *counts = list(cell)
            samples = self.samples.get(labels)
            exemplars = (
                [e for e in samples if e is not None and e.time_unix_nano > since]
                if samples is not None
                else []
            )
            points.append(
                HistogramDataPoint(
                    attributes={n: v for n, v in zip(names, labels, strict=True) if v != ""},
                    start_time_unix_nano=self.started[labels],
                    time_unix_nano=now,
                    count=sum(counts),
                    sum=sum_,
                    bucket_counts=tuple(counts),
                    explicit_bounds=bounds,
                    min=min_,
                    max=max_,
                    exemplars=exemplars,
                )
            )
        return points

    def metric(self, now: int, since: int) -> Metric | None:
        """The histogram as a metric (None before anything was recorded)."""
        points = self.points(now, since)
        if not points:
            return None
        data = Histogram(points, AggregationTemporality.CUMULATIVE)
        return Metric(self.name, self.description, self.unit, data)


Collect = Callable[..., MetricsData | None]


class HistogramProducer:
    """Adds `BucketHistogram`s' points to what each attached reader collects."""

    def __init__(self, resource: Resource) -> None:
        """`resource`: the meter provider's (for a collection where the SDK has nothing)."""
        self.resource = resource
        self.scopes: dict[str, list[BucketHistogram]] = {}
        """The histograms by instrumentation scope name."""
        self._since: dict[int, int] = {}
        """Each reader's previous collection (its exemplars are the ones taken since)."""

    def add(self, histogram: BucketHistogram, scope: str) -> BucketHistogram:
        """Export `histogram` under the instrumentation scope `scope`."""
        self.scopes.setdefault(scope, []).append(histogram)
        return histogram

    def attach(self, reader: MetricReader) -> None:
        """Make `reader`'s collections carry the histograms (after the meter provider has
        registered it)."""
        # The SDK's annotations of the callback disagree with what it passes and returns.
        sdk: Collect | None = reader._collect  # type: ignore[assignment]
        if sdk is None:
            raise ValueError("attach a reader after its meter provider has registered it")

        def collect(
            metric_reader: MetricReader, timeout_millis: float = 10_000
        ) -> MetricsData | None:
            return self.merge(sdk(metric_reader, timeout_millis=timeout_millis), id(reader))

        reader._set_collect_callback(collect)  # type: ignore[arg-type]

    def merge(self, data: MetricsData | None, reader: int) -> MetricsData | None:
        """`data` (what the SDK collected for `reader`) with the histograms' points added
        to their scopes."""
        now = time_ns()
        since = self._since.get(reader, 0)
        self._since[reader] = now
        extra: dict[str, list[Metric]] = {}
        for scope, histograms in list(self.scopes.items()):
            metrics = [m for h in list(histograms) if (m := h.metric(now, since)) is not None]
            if metrics:
                extra[scope] = metrics
        if not extra:
            return data
        if data is None or not data.resource_metrics:
            scopes = [ScopeMetrics(InstrumentationScope(s), ms, "") for s, ms in extra.items()]
            resource = self.resource
            return MetricsData([ResourceMetrics(resource, scopes, resource.schema_url or "")])
        first, *rest = data.resource_metrics
        merged = []
        for sm in first.scope_metrics:
            more = extra.pop(sm.scope.name, None)
            merged.append(
                sm if more is None else ScopeMetrics(sm.scope, [*sm.metrics, *more], sm.schema_url)
            )
        merged += [ScopeMetrics(InstrumentationScope(s), ms, "") for s, ms in extra.items()]
        return MetricsData([ResourceMetrics(first.resource, merged, first.schema_url), *rest])
