"""gRPC server and client spans: the instrumentation's span shape, parents across the wire,
statuses as the gRPC conventions set them, and the calls' own results left intact, the same
whichever makes them (llmesh's own spans or opentelemetry-instrumentation-grpc's)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import grpc
import pytest
from opentelemetry import baggage, context
from opentelemetry.trace import SpanKind, StatusCode

from llmesh.services.common.request_decoding import safe_handler
from llmesh.services.telemetry import tracing
from llmesh.services.telemetry.lean_trace import LeanSpan, LeanTracerProvider
from llmesh.services.telemetry.settings import GRPC_INSTRUMENTATIONS, TelemetrySettings
from tests.telemetry.conftest import TRACING_ON, MemorySpans

SERVICE = "llmesh.v1.TestService"

pytestmark = pytest.mark.parametrize("mode", GRPC_INSTRUMENTATIONS)
"""Every test runs with each of the two instrumentations making the gRPC spans."""


SCOPES = {"llmesh": "llmesh.grpc", "opentelemetry": "opentelemetry.instrumentation.grpc"}
"""The instrumentation scope of each mode's spans."""


def _settings(mode: str) -> TelemetrySettings:
    return replace(TRACING_ON, tracing=replace(TRACING_ON.tracing, grpc_instrumentation=mode))


_HANDLER_STARTED: list[bool] = []
"""Set when a `hang` call's handler has started."""
_HANDLER_CANCELLED: list[bool] = []
"""Set when a `hang` call's handler saw its call cancelled."""


async def _hang() -> None:
    _HANDLER_STARTED.append(True)
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        _HANDLER_CANCELLED.append(True)
        raise


async def _unary(request: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    if request == b"hang":
        await _hang()
    seen = dict(ctx.invocation_metadata() or ())
    ctx.set_trailing_metadata((("x-seen-baggage", seen.get("baggage", "")),))
    if request == b"invalid":
        await ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad request")
    if request == b"down":
        await ctx.abort(grpc.StatusCode.UNAVAILABLE, "provider down")
    if request == b"code":
        ctx.set_code(grpc.StatusCode.INTERNAL)
        ctx.set_details("broke")
        return b""
    return b"ok:" + request


async def _stream(request: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[bytes]:
    yield b"one"
    if request == b"hang":
        await _hang()
    yield b"two"
    if request == b"fail":
        await ctx.abort(grpc.StatusCode.DATA_LOSS, "cut")


async def _written(request: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> None:
    """A streaming handler that writes instead of yielding (what the instrumentation's
    server interceptor cannot run by itself: opentelemetry-python-contrib issue 3066)."""
    await ctx.write(b"one")
    await ctx.write(b"two")
    if request == b"fail":
        await ctx.abort(grpc.StatusCode.DATA_LOSS, "cut")


def _identity(data: bytes) -> bytes:
    return data


@pytest.fixture
async def channel(
    provider: LeanTracerProvider, spans: MemorySpans, mode: str
) -> AsyncIterator[grpc.aio.Channel]:
    settings = _settings(mode)
    server = grpc.aio.server(interceptors=tracing.server_interceptors(settings))
    # llmesh's servers register every method through `safe_handler`, as here for `Written`
    written = grpc.unary_stream_rpc_method_handler(_written, request_deserializer=_identity)
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream),
        "Written": safe_handler(written),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    interceptors = tracing.client_interceptors(settings) or None
    plain = grpc.aio.insecure_channel(f"127.0.0.1:{port}", interceptors=interceptors)
    async with tracing.traced_channel(plain, settings) as traced:
        yield traced
    await server.stop(None)


def _pair(spans: MemorySpans, method: str) -> tuple[LeanSpan, LeanSpan]:
    found = [s for s in spans.get_finished_spans() if s.name == f"/{SERVICE}/{method}"]
    (client,) = [s for s in found if s.kind is SpanKind.CLIENT]
    (server,) = [s for s in found if s.kind is SpanKind.SERVER]
    assert server.parent is not None and server.parent.is_remote
    assert server.parent.span_id == client.context.span_id
    assert server.context.trace_id == client.context.trace_id
    return client, server


async def _wait_for(spans: MemorySpans, count: int) -> None:
    import asyncio

    for _ in range(200):
        if len(spans.get_finished_spans()) >= count:
            return
        await asyncio.sleep(0.01)


async def test_a_call_is_a_client_span_parent_of_the_server_span(
    channel: grpc.aio.Channel, spans: MemorySpans, mode: str
) -> None:
    call = channel.unary_unary(f"/{SERVICE}/Unary")
    token = context.attach(baggage.set_baggage("team", "search"))
    try:
        unary = call(b"hi", timeout=10, metadata=(("x-mine", "kept"),))
        assert await unary == b"ok:hi"
    finally:
        context.detach(token)
    trailers = dict(await unary.trailing_metadata())
    assert trailers["x-seen-baggage"] == "team=search"  # the caller's baggage went along
    await _wait_for(spans, 2)
    client, server = _pair(spans, "Unary")
    assert client.scope.name == server.scope.name == SCOPES[mode]
    assert client.parent is None and client.status.status_code is StatusCode.UNSET
    assert client.attributes == {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "rpc.method": "Unary",
        "rpc.grpc.status_code": 0,
    }
    assert server.attributes["rpc.grpc.status_code"] == 0
    assert server.attributes["net.peer.name"] == "localhost"
    assert server.status.status_code is StatusCode.UNSET


@pytest.mark.parametrize(
    ("request_bytes", "code", "server_error"),
    [
        (b"invalid", grpc.StatusCode.INVALID_ARGUMENT, False),  # the caller's fault
        (b"down", grpc.StatusCode.UNAVAILABLE, True),
        (b"code", grpc.StatusCode.INTERNAL, True),  # set_code, no abort
    ],
)
async def test_a_failed_call_sets_the_codes_and_statuses_the_conventions_say(
    channel: grpc.aio.Channel,
    spans: MemorySpans,
    request_bytes: bytes,
    code: grpc.StatusCode,
    server_error: bool,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await channel.unary_unary(f"/{SERVICE}/Unary")(request_bytes, timeout=10)
    assert info.value.code() is code
    await _wait_for(spans, 2)
    client, server = _pair(spans, "Unary")
    assert client.attributes["rpc.grpc.status_code"] == code.value[0]
    assert client.status.status_code is StatusCode.ERROR  # any code but OK, for the caller
    assert client.status.description == info.value.details()
    assert server.attributes["rpc.grpc.status_code"] == code.value[0]
    expected = StatusCode.ERROR if server_error else StatusCode.UNSET
    assert server.status.status_code is expected
    if server_error:
        assert server.status.description == f"{code}:{info.value.details()}"


@pytest.mark.parametrize("method", ["Stream", "Written"])
async def test_streams_end_their_spans_with_the_streams_outcome(
    channel: grpc.aio.Channel, spans: MemorySpans, method: str
) -> None:
    stream = channel.unary_stream(f"/{SERVICE}/{method}")
    assert [m async for m in stream(b"fine", timeout=10)] == [b"one", b"two"]
    await _wait_for(spans, 2)
    client, server = _pair(spans, method)
    assert client.status.status_code is StatusCode.UNSET
    assert client.attributes["rpc.grpc.status_code"] == 0
    assert server.status.status_code is StatusCode.UNSET
    assert server.attributes["rpc.grpc.status_code"] == 0
    spans.clear()
    with pytest.raises(grpc.aio.AioRpcError):
        async for _ in stream(b"fail", timeout=10):
            pass
    await _wait_for(spans, 2)
    client, server = _pair(spans, method)
    assert client.status.status_code is StatusCode.ERROR
    assert client.attributes["rpc.grpc.status_code"] == grpc.StatusCode.DATA_LOSS.value[0]
    assert server.status.status_code is StatusCode.ERROR
    assert server.status.description == "StatusCode.DATA_LOSS:cut"
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.DATA_LOSS.value[0]
    assert server.events is not None and server.events[0].name == "exception"


async def _started() -> None:
    for _ in range(1000):
        if _HANDLER_STARTED:
            return
        await asyncio.sleep(0.01)


def _cancelled_pair(spans: MemorySpans, method: str) -> None:
    client, server = _pair(spans, method)
    assert _HANDLER_CANCELLED == [True]  # the server's handler was cancelled, not finished
    # the caller gave up: an error for the client (any code but OK), not for the server
    assert client.status.status_code is StatusCode.ERROR
    assert client.status.description == "Locally cancelled by application!"  # gRPC's words
    assert client.attributes["rpc.grpc.status_code"] == grpc.StatusCode.CANCELLED.value[0]
    assert server.status.status_code is StatusCode.UNSET
    assert server.attributes["rpc.grpc.status_code"] == 0


async def test_a_cancelled_call_is_cancelled_at_the_server_and_ends_both_spans(
    channel: grpc.aio.Channel, spans: MemorySpans
) -> None:
    _HANDLER_STARTED.clear()
    _HANDLER_CANCELLED.clear()
    call = channel.unary_unary(f"/{SERVICE}/Unary")(b"hang", timeout=10)
    await _started()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await _wait_for(spans, 2)
    _cancelled_pair(spans, "Unary")


async def test_a_cancelled_stream_is_cancelled_at_the_server_and_ends_both_spans(
    channel: grpc.aio.Channel, spans: MemorySpans
) -> None:
    _HANDLER_STARTED.clear()
    _HANDLER_CANCELLED.clear()
    call = channel.unary_stream(f"/{SERVICE}/Stream")(b"hang", timeout=10)
    assert await call.read() == b"one"
    await _started()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call.read()
    await _wait_for(spans, 2)
    _cancelled_pair(spans, "Stream")


def test_health_checks_get_no_spans(mode: str) -> None:
    assert tracing._untraced("/grpc.health.v1.Health/Check")
    assert not tracing._untraced(f"/{SERVICE}/Unary")
