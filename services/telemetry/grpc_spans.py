"""gRPC server and client spans, as opentelemetry-instrumentation-grpc's aio interceptors
make them, for a fraction of their cost: a server interceptor (`ServerSpans`) and a channel
wrapper (`TracedChannel`).

The spans are the instrumentation's: named by the full method, ``rpc.system``,
``rpc.service``, ``rpc.method``, ``rpc.grpc.status_code``; on the server ``net.peer.ip`` /
``net.peer.port`` / ``net.peer.name`` and ``rpc.user_agent``, the caller's W3C context
(``traceparent``, ``tracestate``, ``baggage`` in the metadata) as parent, and an error
status only for the codes the gRPC conventions call server errors (``UNKNOWN``,
``DEADLINE_EXCEEDED``, ``UNIMPLEMENTED``, ``INTERNAL``, ``UNAVAILABLE``, ``DATA_LOSS``); on
the client the span's context sent in the metadata, and an error status for any code
but OK. What the instrumentation does per call and this does once per method: parse the
method name, build the wrapped handler; what it does twice and this once: read the
metadata, attach a context (the caller's and the span's together). The servicer context is
left as it is: the status ``abort`` or ``set_code`` left on it is read once the handler is
done (``context.code()`` / ``details()``), instead of each call's context being wrapped to
watch for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from functools import lru_cache, partial
from typing import Any
from urllib.parse import unquote

import grpc
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from llmesh.services.telemetry import w3c
from llmesh.services.telemetry.current import attach_span, detach

__all__ = ["ServerSpans", "TracedChannel", "note_call_status", "traced_channel"]

SCOPE = "llmesh.grpc"
"""The instrumentation scope of the gRPC spans."""
SCHEMA = "https://opentelemetry.io/schemas/1.11.0"
"""The semantic conventions' version the attribute names follow (the instrumentation's)."""

_STATUS_CODE = "rpc.grpc.status_code"
_OK = grpc.StatusCode.OK
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)

Untraced = Callable[[str], bool]
"""Whether a method (its full name) gets no span."""


def _served(span: Span, code: grpc.StatusCode, context: Any) -> None:
    """The call's status `code` (what ``abort`` or ``set_code`` left on the servicer context,
    read once the handler is done; the handlers read it and call this only when it is set
    and not OK) on its SERVER span, and an error status for the codes the conventions call
    server errors."""
    span.set_attribute(_STATUS_CODE, code.value[0])
    if code in _SERVER_ERRORS:
        span.set_status(Status(StatusCode.ERROR, f"{code}:{context.details() or code.value[1]}"))


@lru_cache(maxsize=1024)  # a connection's calls share its peer
def _peer(peer: str) -> tuple[tuple[str, str], ...]:
    """``net.peer.*`` from a gRPC peer (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``)."""
    if peer.startswith("unix:"):
        return ()
    try:
        ip, port = peer.split(",")[0].split(":", 1)[1].rsplit(":", 1)
    except (IndexError, ValueError):
        return ()
    ip = unquote(ip)
    if ip in ("[::1]", "127.0.0.1"):
        return (("net.peer.ip", ip), ("net.peer.port", port), ("net.peer.name", "localhost"))
    return (("net.peer.ip", ip), ("net.peer.port", port))


class ServerSpans(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """A SERVER span around every call of a method `untraced` does not exclude."""

    def __init__(self, untraced: Untraced) -> None:
        self._untraced = untraced
        self._tracer = trace.get_tracer(SCOPE, schema_url=SCHEMA)
        self._handlers: dict[str, tuple[Any, Any]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method  # type: ignore[attr-defined]
        if isinstance(method, bytes):
            method = method.decode()
        if handler is None or self._untraced(method):
            return handler
        known = self._handlers.get(method)
        if known is None or known[0] is not handler:  # wrapped once per method
            known = (handler, self._wrap(handler, method))
            self._handlers[method] = known
        return known[1]

    def wrap_handler(self, handler: Any, method: str) -> Any:
        """`handler` of `method` (``/package.Service/Method``) with its calls as SERVER spans,
        unchanged for an untraced method. A server's registrar applies this once, when the
        method is registered (`llmesh.services.common.request_decoding.SafeRegistrar`): the
        spans are then the same, and no interceptor runs on each call (grpc.aio runs an
        interceptor through a coroutine, a continuation and a handler lookup of its own)."""
        if self._untraced(method):
            return handler
        return self._wrap(handler, method)

    def _wrap(self, handler: Any, method: str) -> Any:
        service, _, name = method.lstrip("/").partition("/")
        base = {"rpc.system": "grpc", _STATUS_CODE: 0, "rpc.method": name, "rpc.service": service}
        start = self._starter(method, base)
        shapes = {
            (False, False): (handler.unary_unary, grpc.unary_unary_rpc_method_handler),
            (True, False): (handler.stream_unary, grpc.stream_unary_rpc_method_handler),
            (False, True): (handler.unary_stream, grpc.unary_stream_rpc_method_handler),
            (True, True): (handler.stream_stream, grpc.stream_stream_rpc_method_handler),
        }
        behavior, factory = shapes[(handler.request_streaming, handler.response_streaming)]
        wrapped = (
            _streamed(behavior, start) if handler.response_streaming else _awaited(behavior, start)
        )
        return factory(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _starter(self, method: str, base: dict[str, Any]) -> Callable[[Any], tuple[Span, object]]:
        tracer = self._tracer

        def start(context: Any) -> tuple[Span, object]:
            attributes = dict(base)
            metadata = context.invocation_metadata()
            parent = None
            if metadata:
                carrier = dict(metadata)
                parent = w3c.extract_global(carrier)
                agent = carrier.get("user-agent")
                if agent is not None:
                    attributes["rpc.user_agent"] = agent
            attributes.update(_peer(context.peer()))
            span = tracer.start_span(
                method,
                parent,
                SpanKind.SERVER,
                attributes,
                record_exception=False,
                set_status_on_exception=False,
            )
            return span, attach_span(span, parent)

        return start


def _failed(span: Span, error: Exception) -> None:
    if span.is_recording():
        span.record_exception(error)


def _awaited(behavior: Any, start: Callable[[Any], tuple[Span, object]]) -> Any:
    async def traced(request: Any, context: Any) -> Any:
        span, token = start(context)
        try:
            return await behavior(request, context)
        except Exception as error:
            _failed(span, error)
            raise
        finally:
            detach(token)  # type: ignore[arg-type]
            code = context.code()
            if code is not None and code is not _OK:
                _served(span, code, context)
            span.end()

    return traced


def _streamed(behavior: Any, start: Callable[[Any], tuple[Span, object]]) -> Any:
    async def traced(request: Any, context: Any) -> AsyncIterator[Any]:
        span, token = start(context)
        try:
            async for response in behavior(request, context):
                yield response
        except Exception as error:
            _failed(span, error)
            raise
        finally:
            detach(token)  # type: ignore[arg-type]
            code = context.code()
            if code is not None and code is not _OK:
                _served(span, code, context)
            span.end()

    return traced


def _channel_method(kind: str) -> Callable[..., Any]:
    """`grpc.aio.Channel`'s method `kind` (``unary_unary`` ...) for `TracedChannel`: the
    wrapped channel's callable for a method, traced unless the method is untraced."""

    def method_callable(
        self: TracedChannel,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        _registered_method: bool | None = False,
    ) -> Any:
        inner = getattr(self._channel, kind)(
            method, request_serializer, response_deserializer, _registered_method
        )
        return self._wrapped(inner, method)

    method_callable.__name__ = kind
    method_callable.__qualname__ = f"TracedChannel.{kind}"
    return method_callable


class TracedChannel(grpc.aio.Channel):  # type: ignore[misc]
    """A channel whose calls are CLIENT spans, their context sent in each call's metadata.

    Not a client interceptor: gRPC runs a channel's interceptors through a task and call
    objects of their own on every call (counted under callgrind: some 86,000 instructions
    a call for an interceptor that does nothing). This wraps the callables the stubs take
    from the channel, once per method; each call starts its span, adds the span's context
    to the metadata, and hands back gRPC's own call object, whose completion ends the span
    with the call's status (an error status for any code but OK).
    """

    def __init__(self, channel: grpc.aio.Channel, untraced: Untraced) -> None:
        self._channel = channel
        self._untraced = untraced
        self._tracer = trace.get_tracer(SCOPE, schema_url=SCHEMA)

    def _wrapped(self, inner: Any, method: Any) -> Any:
        name = method.decode() if isinstance(method, bytes) else method
        if self._untraced(name):
            return inner
        return _TracedCallable(inner, name, self._tracer)

    unary_unary = _channel_method("unary_unary")
    unary_stream = _channel_method("unary_stream")
    stream_unary = _channel_method("stream_unary")
    stream_stream = _channel_method("stream_stream")

    async def __aenter__(self) -> TracedChannel:
        await self._channel.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self._channel.__aexit__(exc_type, exc_val, exc_tb)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()


class _TracedCallable:
    """One method's callable: each call a span."""

    __slots__ = ("_attributes", "_inner", "_method", "_tracer")

    def __init__(self, inner: Any, method: str, tracer: trace.Tracer) -> None:
        self._inner = inner
        self._method = method
        self._tracer = tracer
        service, _, name = method.lstrip("/").partition("/")
        self._attributes: dict[str, Any] = {
            "rpc.system": "grpc",
            _STATUS_CODE: 0,
            "rpc.method": name,
            "rpc.service": service,
        }

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> Any:
        span = self._tracer.start_span(
            self._method, None, SpanKind.CLIENT, self._attributes, None, None, False, False
        )
        carrier = w3c.carrier_global(span)
        if metadata:
            sent = [(k, v) for k, v in metadata if k not in carrier]
            sent.extend(carrier.items())
        else:
            sent = list(carrier.items())
        try:
            call = self._inner(
                request,
                timeout=timeout,
                metadata=tuple(sent),
                credentials=credentials,
                wait_for_ready=wait_for_ready,
                compression=compression,
            )
        except BaseException as error:
            if isinstance(error, Exception):
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
                span.record_exception(error)
            span.end()
            raise
        call.add_done_callback(partial(_call_done, span))
        return call


def note_call_status(span: Span, call: Any) -> None:
    """Set a finished call's status code on its CLIENT span, and an error status for any code
    but OK (read where gRPC keeps the status once the call is done)."""
    try:
        status = call._cython_call._status
        code = status.code()
    except AttributeError:  # not a grpc.aio call: nothing more to tell
        return
    span.set_attribute(_STATUS_CODE, code)
    if code:
        span.set_status(Status(StatusCode.ERROR, status.details()))


def _call_done(span: Span, call: Any) -> None:
    """End a call's span with the call's status."""
    note_call_status(span, call)
    span.end()


def traced_channel(channel: grpc.aio.Channel, untraced: Untraced) -> TracedChannel:
    """`channel` with a CLIENT span per call of each method `untraced` does not exclude."""
    return TracedChannel(channel, untraced)
