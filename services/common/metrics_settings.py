"""The metrics settings: the ``telemetry.metrics`` section of the file and the environment.

Metrics are off unless asked for: ``telemetry.metrics.enabled: true`` in the file, or
``OTEL_METRICS_EXPORTER`` naming ``prometheus`` and/or ``otlp`` (``none`` turns them off,
as does ``OTEL_SDK_DISABLED=true``). Once on, the gateway answers ``GET /metrics`` on its
HTTP port and the orchestrator and processor on a port of their own; with ``otlp`` the
same instruments are also pushed to the OTLP endpoint of the standard ``OTEL_EXPORTER_OTLP_*``
variables every `export_interval` seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from llmesh.services.common.config_fields import ConfigError

__all__ = ["OTLP_PROTOCOLS", "MetricsSettings", "call_log_enabled", "metrics_settings"]

OTLP_PROTOCOLS = ("grpc", "http/protobuf")
"""The OTLP transports an exporter may use."""


@dataclass(frozen=True)
class MetricsSettings:
    """Whether and where the mesh's metrics are exposed (``telemetry.metrics``)."""

    enabled: bool = False
    """Record metrics at all; off, the call path records nothing and costs nothing."""
    prometheus: bool = True
    """Serve ``/metrics`` in Prometheus text format (when `enabled`)."""
    otlp: bool = False
    """Also push metrics over OTLP (endpoint and protocol from ``OTEL_EXPORTER_OTLP_*``)."""
    export_interval: float = 60.0
    """Seconds between OTLP pushes (``OTEL_METRIC_EXPORT_INTERVAL`` is in milliseconds)."""
    host: str = "127.0.0.1"
    """Interface the orchestrator's and processor's metrics servers bind."""
    orchestrator_port: int = 9464
    """The orchestrator's ``/metrics`` port (``LLMESH_ORCHESTRATOR_METRICS_PORT``); 0: none."""
    processor_port: int = 9465
    """The processor's ``/metrics`` port (``LLMESH_PROCESSOR_METRICS_PORT``); 0: none."""
    tenants: frozenset[str] = field(default_factory=frozenset)
    """Tenants given their own label value; every other tenant is counted as ``other``."""
    endpoint: str | None = None
    """The OTLP endpoint metrics are pushed to (``telemetry.metrics.endpoint``,
    ``OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT``); None: the protocol's default."""
    protocol: str = "grpc"
    """The OTLP transport: ``grpc`` or ``http/protobuf``
    (``OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL``)."""

    def tenant_label(self, tenant: str) -> str:
        """`tenant` if it is one of the configured `tenants`, else ``other``."""
        return tenant if tenant in self.tenants else "other"


_VARS = {
    "orchestrator_port": "LLMESH_ORCHESTRATOR_METRICS_PORT",
    "processor_port": "LLMESH_PROCESSOR_METRICS_PORT",
    "host": "LLMESH_METRICS_HOST",
}


def metrics_settings(section: Any, env: Mapping[str, str]) -> MetricsSettings:
    """The settings from the ``telemetry`` section of the file (its ``metrics`` mapping) and
    the environment, which wins; a bad value raises `ConfigError` naming the key."""
    raw = _mapping(section, "telemetry")
    values = dict(_mapping(raw.get("metrics"), "telemetry.metrics"))
    known = {f.name for f in fields(MetricsSettings)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"telemetry.metrics: unknown keys {sorted(map(str, unknown))}")
    default = MetricsSettings()
    out: dict[str, Any] = {}
    for name in ("enabled", "prometheus", "otlp"):
        value = values.get(name, getattr(default, name))
        if not isinstance(value, bool):
            raise ConfigError(f"telemetry.metrics.{name}: expected true or false, got {value!r}")
        out[name] = value
    for name in ("orchestrator_port", "processor_port"):
        out[name] = _port(values.get(name, getattr(default, name)), f"telemetry.metrics.{name}")
    out["export_interval"] = _seconds(values.get("export_interval", default.export_interval))
    host = values.get("host", default.host)
    if not isinstance(host, str) or not host:
        raise ConfigError(f"telemetry.metrics.host: expected an interface, got {host!r}")
    out["host"] = host
    tenants = values.get("tenants") or []
    if not isinstance(tenants, list) or not all(isinstance(t, str) and t for t in tenants):
        raise ConfigError(f"telemetry.metrics.tenants: expected a list of names, got {tenants!r}")
    out["tenants"] = frozenset(tenants)
    endpoint = values.get("endpoint")
    if endpoint is not None and (not isinstance(endpoint, str) or not endpoint):
        raise ConfigError(f"telemetry.metrics.endpoint: expected a URL, got {endpoint!r}")
    out["endpoint"] = endpoint
    protocol = values.get("protocol", default.protocol)
    if protocol not in OTLP_PROTOCOLS:
        raise ConfigError(f"telemetry.metrics.protocol: one of {OTLP_PROTOCOLS}, got {protocol!r}")
    out["protocol"] = protocol
    _from_env(out, env)
    return MetricsSettings(**out)


def _from_env(out: dict[str, Any], env: Mapping[str, str]) -> None:
    """Apply the environment's overrides to `out` (in place)."""
    exporters = env.get("OTEL_METRICS_EXPORTER")
    if exporters is not None:
        names = {n.strip().lower() for n in exporters.split(",") if n.strip()}
        bad = names - {"prometheus", "otlp", "none", "console"}
        if bad:
            raise ConfigError(f"OTEL_METRICS_EXPORTER: unknown exporters {sorted(bad)}")
        out["prometheus"] = "prometheus" in names
        out["otlp"] = "otlp" in names
        out["enabled"] = out["prometheus"] or out["otlp"]
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        out["enabled"] = False
    interval = env.get("OTEL_METRIC_EXPORT_INTERVAL")
    if interval is not None:
        try:
            out["export_interval"] = _seconds(float(interval) / 1000)
        except (ValueError, ConfigError):
            raise ConfigError(
                f"OTEL_METRIC_EXPORT_INTERVAL: expected milliseconds > 0, got {interval!r}"
            ) from None
    protocol = _env_var(env, "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol is not None:
        if protocol not in OTLP_PROTOCOLS:
            problem = f"one of {OTLP_PROTOCOLS}, got {protocol!r}"
            raise ConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL: {problem}")
        out["protocol"] = protocol
    own = _env_var(env, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    generic = _env_var(env, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if own is not None:
        out["endpoint"] = own
    elif generic is not None:  # the signal's path appended for http/protobuf (OTLP spec)
        http = out["protocol"] == "http/protobuf"
        out["endpoint"] = f"{generic.rstrip('/')}/v1/metrics" if http else generic
    for name, var in _VARS.items():
        if var in env:
            out[name] = env[var] if name == "host" else _port(env[var], var)


def _env_var(env: Mapping[str, str], *names: str) -> str | None:
    """The first of the variables set to a non-empty value."""
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    return value


def _port(value: Any, key: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if isinstance(value, bool | float) or not 0 <= port <= 65535:
        raise ConfigError(f"{key}: expected a port number (0 for none), got {value!r}")
    return port


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"telemetry.metrics.export_interval: expected seconds > 0, got {value!r}")
    return float(value)


def call_log_enabled(section: Any, env: Mapping[str, str]) -> bool:
    """Whether the orchestrator writes the call log: ``telemetry.logs.calls`` (default true),
    ``LLMESH_CALL_LOG`` (``true``/``false``) wins."""
    logs = _mapping(_mapping(section, "telemetry").get("logs"), "telemetry.logs")
    value = logs.get("calls", False)
    if not isinstance(value, bool):
        raise ConfigError(f"telemetry.logs.calls: expected true or false, got {value!r}")
    raw = env.get("LLMESH_CALL_LOG")
    if raw is not None:
        flag = raw.strip().lower()
        if flag not in ("true", "false", "1", "0"):
            raise ConfigError(f"LLMESH_CALL_LOG: expected true or false, got {raw!r}")
        value = flag in ("true", "1")
    return value
