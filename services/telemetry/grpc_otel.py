"""opentelemetry-instrumentation-grpc's aio interceptors, as the mesh runs them when
``telemetry.tracing.grpc_instrumentation`` is ``opentelemetry``.

The server interceptor is the package's own. Its streaming methods must be async generators
(opentelemetry-python-contrib issue 3066); llmesh's are, even one writing with
``context.write`` (`llmesh.services.common.request_decoding.safe_handler` runs it inside a
generator of its own).

The client interceptors are the package's, two of them wrapped so that a call the caller
cancels ends as it does under llmesh's own spans (`llmesh.services.telemetry.grpc_spans`):
its CLIENT span gets ``rpc.grpc.status_code`` CANCELLED and an error status.

- Unary calls: the package's interceptor awaits the call's status before it hands the call
  back, so a cancel reaches the interceptor's task, not the call: the RPC would run on at the
  server, and its span would never end. The wrapper cancels the call and ends the span.
- Server streams: the package ends the span when the stream's iterator stops, with an error
  status for an exception only; a cancelled call raises ``asyncio.CancelledError``, and the
  span ended with no status. The wrapper notes the cancelled call's status on the span.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from llmesh.services.telemetry.grpc_spans import note_call_status

__all__ = ["client_interceptors", "server_interceptor"]

Traced = Callable[[Any], bool]
"""Whether a call (its `grpc.HandlerCallDetails` or `grpc.aio.ClientCallDetails`) gets a span."""

Continuation = Callable[[Any, Any], Awaitable[Any]]


def server_interceptor(traced: Traced) -> grpc.aio.ServerInterceptor:
    """The instrumentation's aio server interceptor, spanning the calls `traced` accepts."""
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    interceptor: grpc.aio.ServerInterceptor = aio_server_interceptor(filter_=traced)  # type: ignore[no-untyped-call]
    return interceptor


def client_interceptors(traced: Traced) -> list[grpc.aio.ClientInterceptor]:
    """The instrumentation's aio client interceptors, spanning the calls `traced` accepts,
    with a caller's cancel ending unary calls and server streams as described above."""
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    out: list[grpc.aio.ClientInterceptor] = []
    for interceptor in aio_client_interceptors(filter_=traced):  # type: ignore[no-untyped-call]
        if isinstance(interceptor, grpc.aio.UnaryUnaryClientInterceptor):
            out.append(_UnaryCancel(interceptor))
        elif isinstance(interceptor, grpc.aio.UnaryStreamClientInterceptor):
            out.append(_StreamCancel(interceptor))
        else:
            out.append(interceptor)
    return out


class _Started:
    """The span the instrumentation started for one call (none: the call is not traced),
    and the call, once made."""

    __slots__ = ("_outer", "call", "span")

    def __init__(self) -> None:
        self._outer = trace.get_current_span()
        self.span: Span | None = None
        self.call: Any = None

    def continuation(self, continuation: Continuation) -> Continuation:
        """`continuation`, noting the span current when it runs (the instrumentation's, when
        it is not the caller's own) and the call it makes."""

        async def start(details: Any, request: Any) -> Any:
            span = trace.get_current_span()
            if span is not self._outer:
                self.span = span
            self.call = await continuation(details, request)
            return self.call

        return start

    def cancelled(self) -> None:
        """Cancel the call, and end its span with the cancelled call's status."""
        if self.call is not None:
            self.call.cancel()
        span = self.span
        if span is None:
            return
        if self.call is not None:
            note_call_status(span, self.call)
        else:  # cancelled before the call was made
            span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.CANCELLED.value[0])
            span.set_status(Status(StatusCode.ERROR, "cancelled before the call started"))
        span.end()


class _UnaryCancel(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """The instrumentation's unary interceptor; a cancel cancels the call and ends its span."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def intercept_unary_unary(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        started = _Started()
        try:
            return await self._inner.intercept_unary_unary(
                started.continuation(continuation), client_call_details, request
            )
        except asyncio.CancelledError:
            started.cancelled()
            raise


def _note_cancel(span: Span, call: Any) -> None:
    if call.cancelled():
        note_call_status(span, call)


class _StreamCancel(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """The instrumentation's server-stream interceptor; a cancelled call's status is noted
    on its span (which the instrumentation ends when the stream's iterator stops)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def intercept_unary_stream(
        self, continuation: Continuation, client_call_details: Any, request: Any
    ) -> Any:
        started = _Started()
        try:
            responses = await self._inner.intercept_unary_stream(
                started.continuation(continuation), client_call_details, request
            )
        except asyncio.CancelledError:
            started.cancelled()
            raise
        if started.span is not None and started.call is not None:
            started.call.add_done_callback(partial(_note_cancel, started.span))
        return responses
