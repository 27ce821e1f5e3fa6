"""``python -m bench.gateway_span_cost``: tracing's own instructions per gateway-shaped request.

The gateway's twin of `bench.span_cost`. One process, no network: each request goes through
the gateway's `TracingMiddleware` (its HTTP SERVER span, with the default excluded URLs) to
an ASGI app that makes one unary call through `TracedChannel` (the gRPC CLIENT span, its
``traceparent`` in the call's metadata, ended by the call's completion) and answers; the
spans are batched and encoded for OTLP as the export thread does (512-span batches, the
bytes dropped). The channel under it is a stand-in that completes each call on the next turn
of the event loop. With ``--callgrind`` the run is repeated under callgrind (one fixed hash
seed) with two numbers of requests, traced and untraced (``--off``: the same app and calls
without the middleware and the channel wrapper), and the instructions per request printed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator, MutableMapping, Sequence
from typing import Any

from opentelemetry import trace

from bench.span_cost import RESOURCE, _Encoding, harness_main
from llmesh.services.common.telemetry_settings import EXCLUDED_URLS
from llmesh.services.telemetry.grpc_spans import TracedChannel
from llmesh.services.telemetry.lean_trace import LeanTracerProvider, SpanBatcher
from llmesh.services.telemetry.trace_http import TracingMiddleware

METHOD = "/llmesh.v1.OrchestratorService/Chat"
SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "POST",
    "path": "/v1/chat/completions",
    "scheme": "http",
    "server": ("127.0.0.1", 8080),
    "headers": [
        (b"host", b"127.0.0.1:8080"),
        (b"content-type", b"application/json"),
        (b"authorization", b"Bearer sk-bench"),
        (b"user-agent", b"OpenAI/Python 1.0"),
        (b"accept", b"application/json"),
        (b"content-length", b"100"),
    ],
}
"""An SDK's ``POST /v1/chat/completions`` as uvicorn hands it over (no trace context)."""


class _Status:
    def code(self) -> int:
        return 0  # OK

    def details(self) -> str:
        return ""


class _CythonCall:
    _status = _Status()


class _Call:
    """A `grpc.aio` unary call's part the client span reads: done callbacks, the status."""

    _cython_call = _CythonCall()

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Any], None]] = []

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._callbacks.append(callback)

    def __await__(self) -> Generator[Any, None, bytes]:
        yield from asyncio.sleep(0).__await__()
        for callback in self._callbacks:
            callback(self)
        return b"{}"


class _Channel:
    """The channel under `TracedChannel`: each method's callable answers on the next turn."""

    def unary_unary(self, method: str, *_: Any) -> Callable[..., _Call]:
        def call(request: bytes, **_: Any) -> _Call:
            return _Call()

        return call


async def _requests(count: int, off: bool) -> _Encoding:
    exporter = _Encoding(False)
    provider = LeanTracerProvider(RESOURCE, SpanBatcher(exporter, delay=30.0))
    if not off:
        trace.set_tracer_provider(provider)  # once a process: one run a process
    channel: Any = _Channel() if off else TracedChannel(_Channel(), lambda method: False)
    chat = channel.unary_unary(METHOD)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reply = await chat(b"request", timeout=30.0, metadata=(("authorization", "Bearer x"),))
        start = {"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")]}
        await send(start)
        await send({"type": "http.response.body", "body": reply})

    handler: Any = app if off else TracingMiddleware(app, excluded=EXCLUDED_URLS)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    for _ in range(count):
        await handler(dict(SCOPE), receive, send)
    provider.shutdown()
    return exporter


def main(argv: Sequence[str] | None = None) -> None:
    harness_main("bench.gateway_span_cost", __doc__, "requests", _requests, argv)


if __name__ == "__main__":
    main()
