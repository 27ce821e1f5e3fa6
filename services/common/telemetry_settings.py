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
    grpc_instrumentation: llmesh      # or opentelemetry; LLMESH_TRACING_GRPC_INSTRUMENTATION
    excluded_urls: ["/healthz$", "/readyz$", "/metrics$"]   # HTTP requests without a span;
                                # OTEL_PYTHON_STARLETTE_EXCLUDED_URLS, OTEL_PYTHON_EXCLUDED_URLS
  metrics:                      # see `llmesh.services.common.metrics_settings`
    enabled: true               # OTEL_METRICS_EXPORTER (otlp, prometheus, none) decides when set
    orchestrator_port: 9464     # the orchestrator's /metrics port (processor_port: 9465)
    otlp: false                 # also push over OTLP (OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT)
  logs:
    calls: true                 # one record per call (LLMESH_CALL_LOG)
    levels: {orchestrator: DEBUG}   # LLMESH_<SERVICE>_LOG_LEVEL wins
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from llmesh.services.common.config_fields import (
    ConfigError,
    FieldError,
    bounded,
    build,
    check_fields,
)
from llmesh.services.common.metrics_settings import (
    OTLP_PROTOCOLS,
    MetricsSettings,
    call_log_enabled,
    metrics_settings,
)

__all__ = [
    "EXCLUDED_URLS",
    "GRPC_INSTRUMENTATIONS",
    "OTLP_PROTOCOLS",
    "SAMPLERS",
    "LogSettings",
    "MetricsSettings",
    "TelemetrySettings",
    "TracingSettings",
    "parse_telemetry",
]

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

GRPC_INSTRUMENTATIONS = ("llmesh", "opentelemetry")
"""Who makes the gRPC spans: llmesh's own server interceptor and channel wrapper, or
opentelemetry-instrumentation-grpc's aio interceptors."""

_GRPC_INSTRUMENTATION_VAR = "LLMESH_TRACING_GRPC_INSTRUMENTATION"

EXCLUDED_URLS = ("/healthz$", "/readyz$", "/metrics$")
"""The gateway's HTTP requests that get no span by default: liveness and readiness probes and
metrics scrapes, which a cluster makes every few seconds and which say nothing about calls
(the gRPC health checks and reflection get none either)."""

_EXCLUDED_URLS_VARS = ("OTEL_PYTHON_STARLETTE_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS")
"""The variables of OpenTelemetry's Python instrumentations that list URLs left untraced
(the gateway is a Starlette app: its own variable first, then the generic one)."""


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
    grpc_instrumentation: str = "llmesh"
    """One of `GRPC_INSTRUMENTATIONS`: ``llmesh`` (its own server interceptor and channel
    wrapper, the cheaper) or ``opentelemetry`` (opentelemetry-instrumentation-grpc's aio
    server interceptor and client interceptors); the spans are the same."""
    excluded_urls: tuple[str, ...] = EXCLUDED_URLS
    """Regular expressions: an HTTP request to the gateway whose URL (``scheme://host:port``
    and the path, no query) one of them matches anywhere (`re.search`, as OpenTelemetry's
    instrumentations match them) gets no span. An empty list traces every request."""

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
        if self.grpc_instrumentation not in GRPC_INSTRUMENTATIONS:
            raise FieldError(
                "grpc_instrumentation",
                f"one of {GRPC_INSTRUMENTATIONS}, got {self.grpc_instrumentation!r}",
            )
        problem = _bad_pattern(self.excluded_urls)
        if problem is not None:
            raise FieldError("excluded_urls", problem)


def _bad_pattern(patterns: tuple[str, ...]) -> str | None:
    """What is wrong with the first of `patterns` that is not a regular expression, if any."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"{pattern!r} is not a regular expression: {exc}"
    return None


@dataclass(frozen=True)
class LogSettings:
    """The ``telemetry.logs`` subsection: the call log and the log levels from the file."""

    calls: bool = False
    """Write one record per call on the ``llmesh.calls`` logger (``LLMESH_CALL_LOG`` wins);
    off by default: it costs about a tenth of a unary call's CPU (README, Telemetry)."""
    level: str | None = None
    """Every service's level (``LLMESH_LOG_LEVEL`` wins)."""
    levels: Mapping[str, str] = field(default_factory=dict)
    """One service's level, by service name (``LLMESH_<SERVICE>_LOG_LEVEL`` wins)."""


def _logs(section: Mapping[str, Any], env: Mapping[str, str]) -> LogSettings:
    logs = section.get("logs") or {}
    if not isinstance(logs, Mapping):
        raise ConfigError(f"telemetry.logs: expected a mapping, got {logs!r}")
    unknown = set(logs) - {"calls", "level", "levels"}
    if unknown:
        raise ConfigError(f"telemetry.logs: unknown keys {sorted(map(str, unknown))}")
    level = logs.get("level")
    if level is not None and not isinstance(level, str):
        raise ConfigError(f"telemetry.logs.level: expected a level name, got {level!r}")
    levels = logs.get("levels") or {}
    if not isinstance(levels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in levels.items()
    ):
        raise ConfigError(f"telemetry.logs.levels: expected service: level, got {levels!r}")
    return LogSettings(call_log_enabled(section, env), level, dict(levels))


@dataclass(frozen=True)
class TelemetrySettings:
    """Traces and metrics of every service (the ``telemetry`` section and ``OTEL_*``)."""

    service_name: str | None = None
    """The ``service.name`` resource attribute; None: ``llmesh-<service>`` per process."""
    tracing: TracingSettings = field(default_factory=TracingSettings)
    """Spans (the ``tracing`` subsection)."""
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    """Metrics (the ``metrics`` subsection)."""
    logs: LogSettings = field(default_factory=LogSettings)
    """The call log and log levels (the ``logs`` subsection)."""

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


def _excluded_urls(env: Mapping[str, str], file: tuple[str, ...]) -> tuple[str, ...]:
    """The URL patterns of the first excluded-URLs variable set (comma-separated, as
    OpenTelemetry reads them), else the file's."""
    for var in _EXCLUDED_URLS_VARS:
        raw = _var(env, var)
        if raw is not None:
            patterns = tuple(p.strip() for p in raw.split(",") if p.strip())
            problem = _bad_pattern(patterns)
            if problem is not None:
                raise FieldError(var, problem)
            return patterns
    return file


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
    instrumentation = _var(env, _GRPC_INSTRUMENTATION_VAR)
    if instrumentation is not None and instrumentation.lower() not in GRPC_INSTRUMENTATIONS:
        raise FieldError(
            _GRPC_INSTRUMENTATION_VAR, f"one of {GRPC_INSTRUMENTATIONS}, got {instrumentation!r}"
        )
    excluded_urls = _excluded_urls(env, file.excluded_urls)
    try:
        return TracingSettings(
            enabled=enabled,
            endpoint=endpoint,
            protocol=protocol,
            exporter=exporter,
            sampler=sampler,
            sampler_arg=sampler_arg,
            capture_content=file.capture_content if capture is None else _true(capture),
            grpc_instrumentation=(instrumentation or file.grpc_instrumentation).lower(),
            excluded_urls=excluded_urls,
        )
    except FieldError as exc:  # a value that came from the environment
        raise FieldError(f"OTEL_TRACES_{exc.key.upper()}", exc.problem) from None


def parse_telemetry(raw: object, env: Mapping[str, str]) -> TelemetrySettings:
    """The ``telemetry`` section (None: absent) with the ``OTEL_*`` variables of `env` applied.

    ``OTEL_SDK_DISABLED=true`` turns traces and metrics off whatever the file says. A bad
    value raises `ConfigError` naming the key (``telemetry.tracing.sampler``) or the variable.
    """
    body: Mapping[str, Any] = {} if raw is None else raw  # type: ignore[assignment]
    if not isinstance(body, Mapping):
        raise FieldError("telemetry", f"expected a mapping, got {raw!r}")
    unknown = set(body) - {f.name for f in fields(TelemetrySettings)}
    if unknown:
        raise FieldError("telemetry", f"unknown keys {sorted(map(str, unknown))}")
    service_name = body.get("service_name")
    if service_name is not None and (not isinstance(service_name, str) or not service_name):
        raise FieldError("telemetry.service_name", f"expected a name, got {service_name!r}")
    try:
        tracing = build(TracingSettings, body.get("tracing"))
    except FieldError as exc:
        raise exc.under("telemetry.tracing") from None
    disabled = _true(env.get("OTEL_SDK_DISABLED", ""))
    if not disabled:  # first, so a bad OTLP variable is named as tracing reads it
        tracing = _tracing(tracing, body.get("tracing") or {}, env)
    metrics = metrics_settings(body, env)
    logs = _logs(body, env)
    if disabled:
        return TelemetrySettings(service_name=service_name, metrics=metrics, logs=logs)
    return TelemetrySettings(
        service_name=_var(env, "OTEL_SERVICE_NAME") or service_name,
        tracing=tracing,
        metrics=metrics,
        logs=logs,
    )
