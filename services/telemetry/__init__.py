"""What the mesh shows of itself: OpenTelemetry traces and metrics, Prometheus, call logs."""

from llmesh.services.common.metrics_settings import MetricsSettings
from llmesh.services.telemetry.calllog import CALL_LOGGER, CallLog
from llmesh.services.telemetry.histogram import BucketHistogram
from llmesh.services.telemetry.metrics import Metrics, build_metrics
from llmesh.services.telemetry.metrics_calls import CallEnd, CallMetrics, Labels
from llmesh.services.telemetry.metrics_http import MetricsServer, start_metrics_server
from llmesh.services.telemetry.readiness import Readiness
from llmesh.services.telemetry.tally import Tally

__all__ = [
    "CALL_LOGGER",
    "BucketHistogram",
    "CallEnd",
    "CallLog",
    "CallMetrics",
    "Labels",
    "Metrics",
    "MetricsServer",
    "MetricsSettings",
    "Readiness",
    "Tally",
    "build_metrics",
    "start_metrics_server",
]
