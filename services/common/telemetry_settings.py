"""The ``telemetry`` configuration section, merged with the standard ``OTEL_*`` variables.

It lives on the ground floor so `load_config` can parse it with the rest of the file (the
telemetry package, above, re-exports it and acts on it). The environment wins over the
file, as OpenTelemetry's own SDKs have it; with neither, telemetry is off and the services
install nothing (no interceptor, no provider, no exporter).

```yaml
telemetry:
  service_name: llmesh          # OTEL_SERVICE_NAME; default: llmesh-<service>
  tracing:
    enabled: true               # OTEL_TRACES_EXPORTER=otlp|console|none decides when set
    endpoint: http://localhost:4317   # OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT
    protocol: grpc              # or http/protobuf; OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL
    sampler: parentbased_always_on    # OTEL_TRACES_SAMPLER
    sampler_arg: 1.0            # OTEL_TRACES_SAMPLER_ARG (ratio samplers)
    capture_content: false      # OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
  metrics:
    enabled: true               # OTEL_METRICS_EXPORTER (otlp, prometheus, none) decides when set
    port: 9464                  # the orchestrator's and processor's /metrics port
    otlp: false                 # also push over OTLP (OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT)
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from llmesh.services.common.config_fields import FieldError, bounded, build, check_fields

__all__ = [
    "OTLP_PROTOCOLS",
    "SAMPLERS",
    "MetricsSettings",
    "TelemetrySettings",
    "TracingSettings",
    "parse_telemetry",
]

OTLP_PROTOCOLS = ("grpc", "http/protobuf")
"""The OTLP transports an exporter may use."""

SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
"""The ``OTEL_TRACES_SAMPLER`` values understood (the SDK's built-in samplers)."""

_TRACE_EXPORTERS = ("otlp", "console", "none")
_METRIC_EXPORTERS = ("otlp", "prometheus", "console", "none")


@dataclass(frozen=True)
class TracingSettings:
    """Whether and where spans are exported, and which are kept."""

    enabled: bool = False
    """Export spans; off unless set here, by ``OTEL_TRACES_EXPORTER``, or by an endpoint."""
    endpoint: str | None = None
    """The OTLP endpoint; None: the protocol's default (``http://localhost:4317`` for grpc,
    ``http://localhost:4318/v1/traces`` for http/protobuf)."""
    protocol: str = "grpc"
    """``grpc`` or ``http/protobuf``."""
    exporter: str = "otlp"
    """``otlp``, or ``console`` (spans printed to stderr, for a look without a collector)."""
    sampler: str = "parentbased_always_on"
    """One of `SAMPLERS`: the root decision, and whether a caller's decision is followed."""
    sampler_arg: float = bounded(1.0, ge=0)
    """The ratio of traces kept by the ``*traceidratio`` samplers (0 to 1)."""
    capture_content: bool = False
    """Record prompts and completions on spans (never by default: they may be private)."""

    def __post_init__(self) -> None:
        check_fields(self)
        if self.protocol not in OTLP_PROTOCOLS:
            raise FieldError("protocol", f"one of {OTLP_PROTOCOLS}, got {self.protocol!r}")
        if self.exporter not in _TRACE_EXPORTERS[:2]:
            raise FieldError("exporter", f"one of {_TRACE_EXPORTERS[:2]}, got {self.exporter!r}")
        if self.sampler not in SAMPLERS:
            raise FieldError("sampler", f"one of {SAMPLERS}, got {self.sampler!r}")
        if self.sampler_arg > 1:
            raise FieldError("sampler_arg", f"a ratio between 0 and 1, got {self.sampler_arg}")


@dataclass(frozen=True)
class MetricsSettings:
    """Whether metrics are kept, where they are scraped and whether they are pushed."""

    enabled: bool = False
    """Keep metrics and serve them at ``/metrics``."""
    port: int = bounded(9464, ge=0)
    """The ``/metrics`` port of the orchestrator and processor (the gateway uses its own)."""
    otlp: bool = False
    """Also export metrics over OTLP."""
    endpoint: str | None = None
    """The OTLP endpoint for metrics; None: the protocol's default."""
    protocol: str = "grpc"
    """``grpc`` or ``http/protobuf``."""

    def __post_init__(self) -> None:
        check_fields(self)
        if self.protocol not in OTLP_PROTOCOLS:
            raise FieldError("protocol", f"one of {OTLP_PROTOCOLS}, got {self.protocol!r}")


@dataclass(frozen=True)
class TelemetrySettings:
    """Traces and metrics of every service (the ``telemetry`` section and ``OTEL_*``)."""

    service_name: str | None = None
    """The ``service.name`` resource attribute; None: ``llmesh-<service>`` per process."""
    tracing: TracingSettings = field(default_factory=TracingSettings)
    """Spans (the ``tracing`` subsection)."""
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    """Metrics (the ``metrics`` subsection)."""

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def enabled(self) -> bool:
        """Whether anything at all is on."""
        return self.tracing.enabled or self.metrics.enabled


def _true(value: str) -> bool:
    return value.strip().lower() == "true"


def _var(env: Mapping[str, str], *names: str) -> str | None:
    """The first of the variables set to a non-empty value."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _exporters(env: Mapping[str, str], var: str, known: tuple[str, ...]) -> set[str] | None:
    raw = _var(env, var)
    if raw is None:
        return None
    chosen = {part.strip().lower() for part in raw.split(",") if part.strip()}
    unknown = chosen - set(known)
    if unknown:
        raise FieldError(var, f"unknown exporters {sorted(unknown)}; known: {known}")
    return chosen


def _signal_endpoint(env: Mapping[str, str], signal: str, protocol: str) -> str | None:
    """The signal's endpoint: its own variable as given, or the generic one (with the
    signal's path appended for http/protobuf, as the OTLP specification says)."""
    own = _var(env, f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT")
    if own is not None:
        return own
    generic = _var(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if generic is None or protocol == "grpc":
        return generic
    return f"{generic.rstrip('/')}/v1/{signal}"


def _protocol(env: Mapping[str, str], signal: str, default: str) -> str:
    var = f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL"
    value = _var(env, var, "OTEL_EXPORTER_OTLP_PROTOCOL") or default
    if value not in OTLP_PROTOCOLS:
        raise FieldError(var, f"one of {OTLP_PROTOCOLS}, got {value!r}")
    return value


def _tracing(
    file: TracingSettings, raw: Mapping[str, Any], env: Mapping[str, str]
) -> TracingSettings:
    protocol = _protocol(env, "traces", file.protocol)
    endpoint = _signal_endpoint(env, "traces", protocol) or file.endpoint
    exporters = _exporters(env, "OTEL_TRACES_EXPORTER", _TRACE_EXPORTERS)
    if exporters is not None:
        enabled = bool(exporters - {"none"})
        exporter = "console" if exporters == {"console"} else "otlp"
    else:
        enabled = file.enabled if "enabled" in raw else endpoint is not None
        exporter = file.exporter
    sampler = (_var(env, "OTEL_TRACES_SAMPLER") or file.sampler).lower()
    arg_text = _var(env, "OTEL_TRACES_SAMPLER_ARG")
    try:
        sampler_arg = file.sampler_arg if arg_text is None else float(arg_text)
    except ValueError:
        raise FieldError("OTEL_TRACES_SAMPLER_ARG", f"a ratio, got {arg_text!r}") from None
    capture = _var(env, "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    try:
        return TracingSettings(
            enabled=enabled,
            endpoint=endpoint,
            protocol=protocol,
            exporter=exporter,
            sampler=sampler,
            sampler_arg=sampler_arg,
            capture_content=file.capture_content if capture is None else _true(capture),
        )
    except FieldError as exc:  # a value that came from the environment
        raise FieldError(f"OTEL_TRACES_{exc.key.upper()}", exc.problem) from None


def _metrics(
    file: MetricsSettings, raw: Mapping[str, Any], env: Mapping[str, str]
) -> MetricsSettings:
    protocol = _protocol(env, "metrics", file.protocol)
    exporters = _exporters(env, "OTEL_METRICS_EXPORTER", _METRIC_EXPORTERS)
    enabled, otlp = file.enabled, file.otlp
    if exporters is not None:
        enabled = bool(exporters - {"none"})
        otlp = "otlp" in exporters
    return replace(
        file,
        enabled=enabled,
        otlp=otlp,
        protocol=protocol,
        endpoint=_signal_endpoint(env, "metrics", protocol) or file.endpoint,
    )


def parse_telemetry(raw: object, env: Mapping[str, str]) -> TelemetrySettings:
    """The ``telemetry`` section (None: absent) with the ``OTEL_*`` variables of `env` applied.

    ``OTEL_SDK_DISABLED=true`` turns everything off whatever the file says. A bad value
    raises `FieldError` naming the key (``telemetry.tracing.sampler``) or the variable.
    """
    try:
        section = build(TelemetrySettings, raw)
    except FieldError as exc:
        raise exc.under("telemetry") from None
    if _true(env.get("OTEL_SDK_DISABLED", "")):
        return TelemetrySettings(service_name=section.service_name)
    body: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    subsections = {f.name: body.get(f.name) or {} for f in fields(TelemetrySettings)}
    return TelemetrySettings(
        service_name=_var(env, "OTEL_SERVICE_NAME") or section.service_name,
        tracing=_tracing(section.tracing, subsections["tracing"], env),
        metrics=_metrics(section.metrics, subsections["metrics"], env),
    )
