"""What a service holds of its telemetry while it runs, and how it lets go of it."""

from __future__ import annotations

from dataclasses import dataclass

from llmesh.services.telemetry.metrics import Metrics
from llmesh.services.telemetry.metrics_http import MetricsServer, start_metrics_server
from llmesh.services.telemetry.readiness import Readiness

__all__ = ["Telemetry", "start_metrics_server"]


@dataclass
class Telemetry:
    """A service's metrics (None when off), readiness checks and metrics server."""

    metrics: Metrics | None
    readiness: Readiness | None = None
    server: MetricsServer | None = None

    async def readiness_aclose(self) -> None:
        """Stop checking readiness (first, at shutdown: the service leaves SERVING itself)."""
        if self.readiness is not None:
            await self.readiness.aclose()

    async def aclose(self) -> None:
        """Stop the checks and the metrics server; push the last OTLP metrics."""
        await self.readiness_aclose()
        if self.server is not None:
            await self.server.aclose()
            self.server = None
        if self.metrics is not None:
            self.metrics.shutdown()
            self.metrics = None
