"""The gateway's ASGI application: routes, error handlers and the upstream channels' lifetime."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from llmesh.gateway import (
    anthropic,
    batches,
    console,
    console_api,
    console_batches,
    council,
    native,
    observability,
    openai_embeddings,
    openai_routes,
    openapi,
    responses_api,
    templates_api,
    ws,
)
from llmesh.gateway.errors import http_exception_handler, unexpected_error_handler
from llmesh.gateway.observability import GatewayMetrics, HttpMetrics
from llmesh.gateway.settings import GatewaySettings
from llmesh.gateway.upstream import Upstream
from llmesh.services.telemetry.trace_http import TracingMiddleware


def create_app(
    settings: GatewaySettings, upstream: Callable[[GatewaySettings], Upstream] = Upstream.open
) -> Starlette:
    """Build the app; its gRPC channels open at startup and close at shutdown.

    Nothing connects before the ASGI lifespan starts, so building an app has no side effects.
    `upstream` opens the upstream services' stubs (`Upstream.in_process` for the direct
    HTTP path).
    """

    gateway_metrics = GatewayMetrics(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        stubs = upstream(settings)
        responses = responses_api.ResponseStorage.create(settings)
        gateway_metrics.open()
        try:
            yield {"upstream": stubs, "responses": responses}
        finally:
            await stubs.close()
            if responses is not None:
                await responses.aclose()
            gateway_metrics.close()

    middleware = []  # off: no middleware, no per-request work at all
    if settings.telemetry.tracing.enabled:
        excluded = settings.telemetry.tracing.excluded_urls
        middleware.append(Middleware(TracingMiddleware, excluded=excluded))
    if settings.metrics.enabled:
        middleware.append(Middleware(HttpMetrics, holder=gateway_metrics))
    app = Starlette(
        # The OpenAI-compatible routes first: they carry most calls, and routes match in order.
        routes=[
            *openai_routes.routes(),
            *openai_embeddings.routes(),
            *responses_api.routes(),
            *anthropic.routes(),
            *batches.routes(),
            *native.routes(),
            *templates_api.routes(),
            *council.routes(),
            *console_api.routes(),
            *console_batches.routes(),
            *console.routes(),
            *ws.routes(),
            *observability.routes(),
            *openapi.routes(),
        ],
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            HTTPException: http_exception_handler,
            Exception: unexpected_error_handler,
        },
    )
    app.state.gateway_metrics = gateway_metrics
    return app
