"""gRPC server and client spans: the instrumentation's span shape, parents across the wire,
statuses as the gRPC conventions set them, and the calls' own results left intact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from opentelemetry import baggage, context
from opentelemetry.trace import SpanKind, StatusCode

from llmesh.services.telemetry import tracing
from llmesh.services.telemetry.lean_trace import LeanSpan, LeanTracerProvider
from tests.telemetry.conftest import TRACING_ON, MemorySpans

SERVICE = "llmesh.v1.TestService"


async def _unary(request: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
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
    yield b"two"
    if request == b"fail":
        await ctx.abort(grpc.StatusCode.DATA_LOSS, "cut")


@pytest.fixture
async def channel(
    provider: LeanTracerProvider, spans: MemorySpans
) -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=tracing.server_interceptors(TRACING_ON))
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    plain = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    async with tracing.traced_channel(plain, TRACING_ON) as traced:
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
    channel: grpc.aio.Channel, spans: MemorySpans
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


async def test_streams_end_their_spans_with_the_streams_outcome(
    channel: grpc.aio.Channel, spans: MemorySpans
) -> None:
    stream = channel.unary_stream(f"/{SERVICE}/Stream")
    assert [m async for m in stream(b"fine", timeout=10)] == [b"one", b"two"]
    await _wait_for(spans, 2)
    client, server = _pair(spans, "Stream")
    assert client.status.status_code is StatusCode.UNSET
    assert server.status.status_code is StatusCode.UNSET
    spans.clear()
    with pytest.raises(grpc.aio.AioRpcError):
        async for _ in stream(b"fail", timeout=10):
            pass
    await _wait_for(spans, 2)
    client, server = _pair(spans, "Stream")
    assert client.status.status_code is StatusCode.ERROR
    assert server.status.status_code is StatusCode.ERROR
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.DATA_LOSS.value[0]
    assert server.events is not None and server.events[0].name == "exception"


def test_health_checks_get_no_spans() -> None:
    assert tracing._untraced("/grpc.health.v1.Health/Check")
    assert not tracing._untraced(f"/{SERVICE}/Unary")
