"""What the mesh shows of itself: OpenTelemetry traces and metrics, Prometheus, call logs."""

from llmesh.services.telemetry.calllog import CALL_LOGGER, CallLog
from llmesh.services.telemetry.metrics import Metrics, build_metrics
from llmesh.services.telemetry.metrics_calls import CallEnd, CallMetrics, Labels
from llmesh.services.telemetry.metrics_http import MetricsServer, start_metrics_server
from llmesh.services.telemetry.metrics_settings import MetricsSettings, metrics_settings
from llmesh.services.telemetry.readiness import Readiness

__all__ = [
    "CALL_LOGGER",
    "CallEnd",
    "CallLog",
    "CallMetrics",
    "Labels",
    "Metrics",
    "MetricsServer",
    "MetricsSettings",
    "Readiness",
    "build_metrics",
    "metrics_settings",
    "start_metrics_server",
]
