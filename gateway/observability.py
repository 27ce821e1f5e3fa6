"""The gateway's own telemetry: HTTP metrics, ``GET /metrics`` and ``GET /readyz``.

``/metrics`` answers the gateway's metrics in Prometheus text format (404 when metrics
are off): HTTP requests by route and status (``http.server.request.duration``, the
semantic conventions' instrument and buckets) and requests in progress. ``/readyz`` is
200 when the orchestrator reports its service SERVING (it does so only while its ledger
database and Redis answer) and the processor's health check says SERVING; else 503, with
each one's status in the body. ``/healthz`` (in `native`) stays the liveness check.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmesh.gateway.responses import OrjsonResponse
from llmesh.gateway.settings import GatewaySettings
from llmesh.gateway.upstream import upstream_of
from llmesh.services.telemetry import BucketHistogram, Metrics, Tally, build_metrics
from llmesh.services.telemetry.metrics import CONTENT_TYPE

__all__ = ["HTTP_BUCKETS", "GatewayMetrics", "HttpMetrics", "routes"]

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
"""``http.server.request.duration``'s boundaries from the HTTP semantic conventions."""


class GatewayMetrics:
    """The gateway's metrics, built when the app starts (its lifespan) and shut down after."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings
        self.metrics: Metrics | None = None
        self.duration: Any = None
        """``http.server.request.duration`` by method, route and status code."""
        self.active: Any = None
        """``http.server.active_requests`` by method."""

    def open(self) -> None:
        """Build the meter provider and the HTTP instruments (nothing when metrics are off).
        Both are kept as plain arrays and sums, made into points when a reader collects."""
        metrics = build_metrics(self._settings.metrics, "gateway")
        if metrics is None:
            return
        self.duration = metrics.histogram(
            "http.server.request.duration",
            "s",
            "Duration of HTTP server requests, to the end of the response body.",
            HTTP_BUCKETS,
            ("http.request.method", "http.route", "http.response.status_code"),
            scope="llmesh.gateway",
        )
        self.active = metrics.tally(
            "http.server.active_requests",
            "{request}",
            "HTTP requests in progress, streams included.",
            ("http.request.method",),
            up_down=True,
            scope="llmesh.gateway",
        )
        self.metrics = metrics

    def close(self) -> None:
        """Push the last OTLP batch and stop the readers."""
        if self.metrics is not None:
            self.metrics.shutdown()
            self.metrics = None


class HttpMetrics:
    """ASGI middleware timing each HTTP request by method, route template and status."""

    def __init__(self, app: ASGIApp, holder: GatewayMetrics) -> None:
        self.app = app
        self.holder = holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        holder = self.holder
        if scope["type"] != "http" or holder.metrics is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        method = scope["method"] if scope["method"] in _METHODS else "_OTHER"

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        active: Tally = holder.active
        active.add(1, method)
        try:
            await self.app(scope, receive, sending)
        finally:
            active.add(-1, method)
            route = scope.get("route")
            path = getattr(route, "path", "") or "unmatched"
            duration: BucketHistogram = holder.duration
            duration.record(time.perf_counter() - started, method, path, status)


_METHODS = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"})


def _holder(request: Request) -> GatewayMetrics:
    holder: GatewayMetrics = request.app.state.gateway_metrics
    return holder


async def metrics(request: Request) -> Response:
    """``GET /metrics``: the gateway's metrics in Prometheus text format; 404 when off."""
    m = _holder(request).metrics
    if m is None or not m.settings.prometheus:
        return OrjsonResponse(
            {
                "error": {
                    "message": "metrics are off (telemetry.metrics.enabled)",
                    "type": "not_found",
                }
            },
            status_code=404,
        )
    return Response(m.render(), media_type=CONTENT_TYPE)


async def readyz(request: Request) -> Response:
    """``GET /readyz``: 200 when the orchestrator and the processor are ready, else 503."""
    upstream = upstream_of(request)
    settings = upstream.settings
    orchestrator, processor = await asyncio.gather(
        _status(upstream.health, settings.ready_service, settings.health_timeout),
        _status(
            health_pb2_grpc.HealthStub(upstream.processor_channel),
            settings.processor_ready_service,
            settings.health_timeout,
        ),
    )
    ready = orchestrator == processor == "SERVING"
    body = {
        "status": "SERVING" if ready else "NOT_SERVING",
        "orchestrator": orchestrator,
        "processor": processor,
    }
    return OrjsonResponse(body, status_code=200 if ready else 503)


async def _status(stub: health_pb2_grpc.HealthStub, service: str, timeout: float) -> str:
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    except grpc.aio.AioRpcError as exc:
        return "UNREACHABLE" if exc.code() is not grpc.StatusCode.NOT_FOUND else "UNKNOWN"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def routes() -> list[BaseRoute]:
    """``/metrics`` and ``/readyz``."""
    return [
        Route("/metrics", metrics, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
