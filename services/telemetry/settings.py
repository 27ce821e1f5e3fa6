"""The telemetry settings, as `load_config` parsed them (``Config.telemetry``).

Defined on the ground floor (`llmesh.services.common.telemetry_settings`) so the
configuration loader can parse them; the telemetry package takes them from here.
"""

from __future__ import annotations

from llmesh.services.common.telemetry_settings import (
    GRPC_INSTRUMENTATIONS,
    OTLP_PROTOCOLS,
    SAMPLERS,
    LogSettings,
    MetricsSettings,
    TelemetrySettings,
    TracingSettings,
    parse_telemetry,
)

__all__ = [
    "GRPC_INSTRUMENTATIONS",
    "OTLP_PROTOCOLS",
    "SAMPLERS",
    "LogSettings",
    "MetricsSettings",
    "TelemetrySettings",
    "TracingSettings",
    "parse_telemetry",
]
