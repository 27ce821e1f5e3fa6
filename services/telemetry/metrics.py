"""One service's OpenTelemetry metrics: its meter provider, readers and llmesh's instruments.

A `Metrics` is built explicitly at start-up (`build_metrics`, None when metrics are off, so
the call path checks one None and records nothing). Its readers: a Prometheus reader into
the service's own `prometheus_client` registry (rendered by `render` for ``/metrics``) and,
when OTLP is configured, a periodic OTLP exporter. The GenAI instruments follow the
semantic conventions (names, units and the spec's bucket boundaries); llmesh's own are
under ``llmesh.``. Gauges read state the services already keep, through sources
registered with `observe`; nothing is polled between scrapes. Nothing on the call path
goes through the SDK's instruments: the counters are `Tally`s (plain sums) and the
histograms `BucketHistogram`s (plain bucket arrays), both turned into points when a reader
collects.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    ExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from llmesh.services.common.metrics_settings import MetricsSettings
from llmesh.services.telemetry.histogram import BucketHistogram, HistogramProducer
from llmesh.services.telemetry.tally import Tally

__all__ = [
    "CONTENT_TYPE",
    "DURATION_BUCKETS",
    "GAUGES",
    "STEP_BUCKETS",
    "TOKEN_BUCKETS",
    "TPOT_BUCKETS",
    "TTFT_BUCKETS",
    "GaugeSource",
    "Metrics",
    "build_metrics",
    "exemplar_filter",
    "histogram_exemplars",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The Prometheus text format's media type."""

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
"""``gen_ai.client.token.usage``'s boundaries from the GenAI semantic conventions (the
spec's list goes on to 67108864; the last two are beyond any context window today)."""
DURATION_BUCKETS = (
    *(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64),
    *(1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92),
)
"""``gen_ai.client.operation.duration`` and ``gen_ai.server.request.duration``."""
TTFT_BUCKETS = (
    *(0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1),
    *(0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0),
)
"""``gen_ai.server.time_to_first_token``."""
STEP_BUCKETS = (
    *(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005),
    *(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
"""``llmesh.step.duration``: processor steps take fractions of a millisecond to a second."""
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
"""``gen_ai.server.time_per_output_token``."""

GaugeSource = Callable[[], Iterable[tuple[float, Mapping[str, str]]]]
"""Reads the current value(s) of a gauge: (value, attributes) pairs."""

GAUGES = {
    "llmesh.breaker.state": ("1", "Circuit breaker state per target: 1 for the current one."),
    "llmesh.target.in_flight": ("{call}", "Attempts holding a concurrency slot of a target."),
    "llmesh.queue.depth": ("{call}", "Attempts waiting for a concurrency slot of a target."),
    "llmesh.ledger.backlog": ("{record}", "Usage records waiting to be written."),
    "llmesh.ledger.lag": ("s", "Age of the oldest usage record waiting to be written."),
    "llmesh.ledger.dropped": ("{record}", "Usage records lost since start."),
    "llmesh.config.reloads": ("{reload}", "Configuration reloads since start, by outcome."),
}
"""The observable gauges, by name: (unit, description). Their values come from sources
registered with `Metrics.observe`."""


class Metrics:
    """A service's meter provider with llmesh's instruments; see the module docstring."""

    def __init__(
        self,
        settings: MetricsSettings,
        service: str,
        *,
        readers: Sequence[MetricReader] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`readers` are added to the configured ones (tests pass an in-memory reader)."""
        env = os.environ if env is None else env
        self.settings = settings
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        """The Prometheus registry `render` exposes (the service's alone), with the
        process's CPU, memory and garbage collector figures."""
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        all_readers = list(readers)
        if settings.prometheus:
            all_readers.append(
                PrometheusMetricReader(registry=self.registry, scope_info_enabled=False)
            )
        if settings.otlp:
            all_readers.append(
                PeriodicExportingMetricReader(
                    _otlp_exporter(settings), export_interval_millis=settings.export_interval * 1000
                )
            )
        name = env.get("OTEL_SERVICE_NAME") or f"llmesh-{service}"
        resource = Resource.create({"service.name": name, "llmesh.service": service})
        self.provider = MeterProvider(
            metric_readers=all_readers,
            shutdown_on_exit=False,  # the service shuts it down, pushing the last batch
            resource=resource,
            exemplar_filter=exemplar_filter(settings, env),
        )
        self._sources: dict[str, list[GaugeSource]] = {name: [] for name in GAUGES}
        self.exemplars = histogram_exemplars(settings, env)
        """Which histogram measurements become exemplars (None: none)."""
        self.histograms = HistogramProducer(resource)
        """The histograms, added to every reader's collections."""
        for reader in all_readers:
            self.histograms.attach(reader)
        meter = self.provider.get_meter("llmesh")
        h = self.histogram
        genai = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model")
        self.operation_duration = h(
            "gen_ai.client.operation.duration",
            "s",
            "GenAI operation duration (one provider attempt).",
            DURATION_BUCKETS,
            (*genai, "error.type"),
        )
        self.token_usage = h(
            "gen_ai.client.token.usage",
            "{token}",
            "Number of input and output tokens used (one provider attempt).",
            TOKEN_BUCKETS,
            (*genai, "error.type", "gen_ai.token.type"),
        )
        self.request_duration = h(
            "gen_ai.server.request.duration",
            "s",
            "Duration of a call through llmesh, to its last event.",
            DURATION_BUCKETS,
            (*genai, "error.type"),
        )
        self.time_to_first_token = h(
            "gen_ai.server.time_to_first_token",
            "s",
            "Time to generate first token for successful responses.",
            TTFT_BUCKETS,
            genai,
        )
        self.time_per_output_token = h(
            "gen_ai.server.time_per_output_token",
            "s",
            "Time per output token generated after the first token for successful responses.",
            TPOT_BUCKETS,
            genai,
        )
        self.call_wait = h(
            "llmesh.call.wait",
            "s",
            "Seconds a call waited on purpose: target queues and retry backoff.",
            TTFT_BUCKETS,
            ("gen_ai.operation.name",),
        )
        self.queue_wait = h(
            "llmesh.queue.wait",
            "s",
            "Seconds a call's attempts waited for target slots (resilience.queue).",
            TTFT_BUCKETS,
            ("llmesh.target", "llmesh.priority"),
        )
        self.step_duration = h(
            "llmesh.step.duration",
            "s",
            "Time a processor step took (pre-call steps in the processor, post-call steps "
            "over the whole reply).",
            STEP_BUCKETS,
            ("llmesh.step",),
        )
        t = self.tally
        self.steps = t(
            "llmesh.steps",
            "{step}",
            "Processor steps run, by step and decision (clean, flag, route, block, mask, ...).",
            ("llmesh.step", "llmesh.decision"),
        )
        self.calls = t(
            "llmesh.calls",
            "{call}",
            "Calls by outcome and reason.",
            (
                *("gen_ai.operation.name", "llmesh.outcome", "llmesh.reason"),
                *("llmesh.target", "llmesh.tenant"),
            ),
        )
        self.attempts = t(
            "llmesh.attempts",
            "{attempt}",
            "Provider attempts by outcome.",
            ("llmesh.target", "gen_ai.provider.name", "llmesh.attempt.outcome", "llmesh.reason"),
        )
        self.retries = t("llmesh.retries", "{attempt}", "Retries of a target.", ("llmesh.target",))
        self.fallbacks = t(
            "llmesh.fallbacks",
            "{attempt}",
            "Moves to the next target.",
            ("llmesh.target", "llmesh.reason"),
        )
        self.switches = t(
            "llmesh.mid_stream.switches",
            "{switch}",
            "Calls moved to another target after output reached the caller.",
            ("llmesh.target",),
        )
        self.cost = t(
            "llmesh.cost.usd",
            "{USD}",
            "What calls cost, in US dollars.",
            ("gen_ai.provider.name", "llmesh.target", "llmesh.tenant"),
        )
        self.prompt_cache_tokens = t(
            "llmesh.prompt_cache.tokens",
            "{token}",
            "Provider prompt-cache tokens read and written.",
            ("gen_ai.provider.name", "gen_ai.request.model", "llmesh.op"),
        )
        self.response_cache_hits = t(
            "llmesh.response_cache.hits",
            "{call}",
            "Calls answered from the response cache.",
            ("gen_ai.operation.name", "llmesh.tenant"),
        )
        self.rejections = t(
            "llmesh.rejections",
            "{call}",
            "Calls refused by llmesh's own limits: rate limits, budgets, queues.",
            ("llmesh.reason", "llmesh.tenant"),
        )
        self.redactions = t(
            "llmesh.redactions",
            "{value}",
            "Sensitive values redacted, per detector (values are never recorded): in the "
            "input by the processor, in replies by the orchestrator.",
            ("llmesh.detector",),
        )
        self.screen_matches = t(
            "llmesh.screen.matches",
            "{call}",
            "Calls whose screening matched a rule, per rule and decision (flag, route, block).",
            ("llmesh.rule", "llmesh.decision"),
        )
        self.in_flight = t(
            "llmesh.calls.in_flight",
            "{call}",
            "Calls streaming now.",
            ("gen_ai.operation.name",),
            up_down=True,
        )
        for gauge, (unit, description) in GAUGES.items():
            meter.create_observable_gauge(
                gauge, callbacks=[self._reader(gauge)], unit=unit, description=description
            )

    def histogram(
        self,
        name: str,
        unit: str,
        description: str,
        bounds: Sequence[float],
        labels: tuple[str, ...],
        *,
        scope: str = "llmesh",
    ) -> BucketHistogram:
        """A histogram kept as bucket arrays (`BucketHistogram`), its points made when a
        reader collects: recorded with one value per name of `labels`, in order."""
        histogram = BucketHistogram(
            name, unit, description, bounds, *labels, exemplar_filter=self.exemplars
        )
        return self.histograms.add(histogram, scope)

    def tally(
        self,
        name: str,
        unit: str,
        description: str,
        labels: tuple[str, ...],
        *,
        up_down: bool = False,
        scope: str = "llmesh",
    ) -> Tally:
        """A counter (or up-down counter) kept as a `Tally`, read at collection."""
        tally = Tally(*labels)
        meter = self.provider.get_meter(scope)
        create = (
            meter.create_observable_up_down_counter if up_down else meter.create_observable_counter
        )
        create(name, callbacks=[tally.observe], unit=unit, description=description)
        return tally

    def observe(self, gauge: str, source: GaugeSource) -> None:
        """Read `gauge` (one of `GAUGES`) from `source` at every collection."""
        self._sources[gauge].append(source)

    def _reader(self, gauge: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def read(options: CallbackOptions) -> Iterable[Observation]:
            for source in self._sources[gauge]:
                for value, attributes in source():
                    yield Observation(value, dict(attributes))

        return read

    def render(self) -> bytes:
        """The service's metrics in Prometheus text format (collects every reader's view)."""
        return generate_latest(self.registry)

    def shutdown(self) -> None:
        """Push the last OTLP batch and stop the readers (idempotent enough: errors logged)."""
        self.provider.shutdown()


def exemplar_filter(settings: MetricsSettings, env: Mapping[str, str]) -> ExemplarFilter | None:
    """No exemplars unless OTLP exports them or ``OTEL_METRICS_EXEMPLAR_FILTER`` asks for
    them (None: the SDK's choice, from that variable; ``trace_based`` by default).

    The Prometheus text format llmesh serves carries no exemplars, yet the SDK's default
    filter offers every measurement taken under a sampled span to a reservoir: with tracing
    on, six measurements per call, each paying for what no reader would export.
    """
    if settings.otlp or env.get("OTEL_METRICS_EXEMPLAR_FILTER", "").strip():
        return None
    return AlwaysOffExemplarFilter()


_FILTERS: dict[str, type[ExemplarFilter]] = {
    "trace_based": TraceBasedExemplarFilter,
    "always_on": AlwaysOnExemplarFilter,
    "always_off": AlwaysOffExemplarFilter,
}


def histogram_exemplars(settings: MetricsSettings, env: Mapping[str, str]) -> ExemplarFilter | None:
    """The filter of the histograms' exemplars (None: no exemplars, and recording never
    looks at the current span): `exemplar_filter`'s choice, else the one
    ``OTEL_METRICS_EXEMPLAR_FILTER`` names (``trace_based`` by default, as the SDK's)."""
    chosen = exemplar_filter(settings, env)
    if chosen is None:
        name = env.get("OTEL_METRICS_EXEMPLAR_FILTER", "").strip() or "trace_based"
        if name not in _FILTERS:
            raise ValueError(f"OTEL_METRICS_EXEMPLAR_FILTER: unknown exemplar filter {name!r}")
        chosen = _FILTERS[name]()
    return None if isinstance(chosen, AlwaysOffExemplarFilter) else chosen


def _otlp_exporter(settings: MetricsSettings) -> Any:
    """The OTLP metric exporter of the settings' protocol and endpoint (None: the exporter's
    default); headers and timeout come from the standard variables the exporter reads."""
    if settings.protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpExporter,
        )

        return HttpExporter(endpoint=settings.endpoint)
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    return OTLPMetricExporter(endpoint=settings.endpoint)


def build_metrics(
    settings: MetricsSettings, service: str, *, env: Mapping[str, str] | None = None
) -> Metrics | None:
    """The service's metrics, or None when they are off."""
    if not settings.enabled:
        return None
    return Metrics(settings, service, env=env)
