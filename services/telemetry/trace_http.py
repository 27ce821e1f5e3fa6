"""An ASGI middleware giving every HTTP request a server span, continuing the caller's trace.

The caller's W3C ``traceparent`` / ``tracestate`` / ``baggage`` headers are the span's
parent context; the span is current while the app runs, so the gRPC calls the request
makes (through instrumented channels) are its children and carry the context on. Every
response, errors included, carries the request's own ``traceparent``, so a caller can find
the trace of a failed call. Request and response bodies and headers are never recorded
(no authorization header, no API key reaches a span). Requests whose URL matches one of the
`excluded` patterns (by default the probes and the metrics scrape, `EXCLUDED_URLS`) pass
through without a span.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

from llmesh.services.telemetry.current import attach_span, detach
from llmesh.services.telemetry.tracing import extract
from llmesh.services.telemetry.w3c import traceparent_of

__all__ = ["TracingMiddleware", "request_url"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CONTEXT_HEADERS = (b"traceparent", b"tracestate", b"baggage")
_NO_CALLER = Context()
"""The parent context of a request that carries no trace context: none (a new trace)."""
_VERDICTS = 1024


class TracingMiddleware:
    """A server span per HTTP request or WebSocket session (lifespan events pass through)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        excluded: Sequence[str] = (),
    ):
        """`excluded`: regular expressions; a request whose URL (`request_url`) one of them
        matches anywhere gets no span."""
        self.app = app
        self._tracer = trace.get_tracer("llmesh.gateway", tracer_provider=tracer_provider)
        self._excluded = re.compile("|".join(f"(?:{p})" for p in excluded)) if excluded else None
        self._verdicts: dict[tuple[Any, Any, Any], bool] = {}
        """Whether a URL's parts (scheme, server, path) are excluded, as found (cleared when
        `_VERDICTS` many are kept: the paths are the clients')."""

    def _is_excluded(self, scope: Scope) -> bool:
        key = (scope.get("scheme"), scope.get("server"), scope.get("path"))
        try:
            verdict = self._verdicts.get(key)
        except TypeError:  # a server given as a list (ASGI allows any pair): searched each time
            return self._search(scope)
        if verdict is None:
            verdict = self._search(scope)
            if len(self._verdicts) >= _VERDICTS:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        return verdict

    def _search(self, scope: Scope) -> bool:
        assert self._excluded is not None
        return self._excluded.search(request_url(scope)) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or (
            self._excluded is not None and self._is_excluded(scope)
        ):
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope.get("headers", ())
            if name in _CONTEXT_HEADERS
        }
        # the caller's context (trace and baggage) is the span's parent, and current with
        # the span for the whole request: the baggage travels on with the span's context
        parent = extract(carrier) if carrier else _NO_CALLER
        method = scope.get("method", "GET") if kind == "http" else "GET"
        attributes: dict[str, Any] = {
            "http.request.method": method,
            "url.path": scope.get("path", ""),
            "url.scheme": scope.get("scheme", "http"),
        }
        server = scope.get("server")
        if server:
            attributes["server.address"], attributes["server.port"] = server[0], server[1]
        span = self._tracer.start_span(method, parent, SpanKind.SERVER, attributes)
        token = attach_span(span, parent)
        trace_id, span_id, _, flags, _, _ = span.get_span_context()  # a tuple
        own = traceparent_of(trace_id, span_id, flags).encode()

        async def traced_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_attribute("error.type", str(status))
                    span.set_status(Status(StatusCode.ERROR))
                message["headers"] = [*message.get("headers", ()), (b"traceparent", own)]
            await send(message)

        try:
            await self.app(scope, receive, traced_send)
        except Exception as error:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            raise
        finally:
            detach(token)
            route = getattr(scope.get("route"), "path", None)
            if isinstance(route, str):
                span.set_attribute("http.route", route)
                span.update_name(f"{method} {route}")
            span.end()


def request_url(scope: Scope) -> str:
    """The URL the excluded patterns are matched against: ``scheme://host:port/path`` (the
    address the server listens on, without the port where it has none; no query string)."""
    server = scope.get("server")  # (host, port), (path, None) on a socket file, or None
    if not server:
        address = ""
    elif server[1] is None:
        address = str(server[0])
    else:
        address = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{address}{scope.get('path', '')}"
