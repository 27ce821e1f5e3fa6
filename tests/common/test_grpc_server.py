"""Servers built by `start_server` answer undecodable requests with INVALID_ARGUMENT."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from llmesh.services.common.errors import Reason
from llmesh.services.common.grpc_server import RunningServer, ServiceBinding, start_server
from llmesh.services.common.request_decoding import SafeRegistrar
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.v1 import (
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    processor_pb2,
    processor_pb2_grpc,
)

GARBAGE = b"\xff\xff\xff\xff\x0f\x00garbage"


class _Orchestrator(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    async def Chat(self, request: Any, context: Any) -> orchestrator_pb2.ChatResponse:
        return orchestrator_pb2.ChatResponse(request_id="ok:" + request.input.model)

    async def StreamChat(
        self, request: Any, context: Any
    ) -> AsyncIterator[orchestrator_pb2.StreamChatResponse]:
        for _ in range(2):
            yield orchestrator_pb2.StreamChatResponse(
                text_delta=orchestrator_pb2.TextDelta(text=request.input.model)
            )


class _Processor(processor_pb2_grpc.ProcessorServiceServicer):
    async def CountTokens(self, request: Any, context: Any) -> processor_pb2.CountTokensResponse:
        return processor_pb2.CountTokensResponse(tokens=7)


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    bindings = [
        ServiceBinding(
            orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server,
            _Orchestrator(),
            "llmesh.v1.OrchestratorService",
        ),
        ServiceBinding(
            processor_pb2_grpc.add_ProcessorServiceServicer_to_server,
            _Processor(),
            "llmesh.v1.ProcessorService",
        ),
    ]
    running = await start_server(bindings, "127.0.0.1:0")
    try:
        yield running
    finally:
        await running.server.stop(None)


def _nested_tool_schema(depth: int) -> bytes:
    """ChatRequest bytes whose tool's parameters (a Struct) nest `depth` levels deep."""
    struct = b""
    for _ in range(depth):
        value = _field(5, struct)  # Value.struct_value
        struct = _field(1, _field(1, b"x") + _field(2, value))  # Struct.fields entry
    tool = _field(1, b"t") + _field(3, struct)  # Tool.name, Tool.parameters
    return _field(1, _field(1, b"m") + _field(3, tool))  # ChatRequest.input{model, tools}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _method(channel: grpc.aio.Channel, path: str, stream: bool) -> Any:
    if stream:
        return channel.unary_stream(path)
    return channel.unary_unary(path)


CASES = [
    ("/llmesh.v1.OrchestratorService/Chat", False, GARBAGE, "llmesh.v1.ChatRequest"),
    ("/llmesh.v1.OrchestratorService/StreamChat", True, GARBAGE, "llmesh.v1.StreamChatRequest"),
    (
        "/llmesh.v1.OrchestratorService/StreamCouncil",
        True,
        GARBAGE,
        "llmesh.v1.StreamCouncilRequest",
    ),
    ("/llmesh.v1.OrchestratorService/GetUsage", False, GARBAGE, "llmesh.v1.GetUsageRequest"),
    ("/llmesh.v1.ProcessorService/CountTokens", False, GARBAGE, "llmesh.v1.CountTokensRequest"),
    # field 1 of ChatRequest.input is `model`: invalid UTF-8 in a string field
    ("/llmesh.v1.OrchestratorService/Chat", False, _field(1, _field(1, b"\xff\xfe")), ""),
    ("/llmesh.v1.OrchestratorService/Chat", False, _nested_tool_schema(40), ""),
]


@pytest.mark.parametrize(("path", "stream", "payload", "type_name"), CASES)
async def test_undecodable_request_is_invalid_argument(
    server: RunningServer,
    caplog: pytest.LogCaptureFixture,
    path: str,
    stream: bool,
    payload: bytes,
    type_name: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = _method(channel, path, stream)(payload, timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            if stream:
                async for _ in call:
                    pass
            else:
                await call
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = from_rpc_error(info.value)
    assert err.reason is Reason.INVALID_REQUEST
    assert "could not be decoded" in err.message
    assert type_name in err.message
    assert "class" not in err.message and "DecodeError" not in err.message
    assert not [r for r in caplog.records if r.exc_info or "Unexpected" in r.getMessage()]


async def test_valid_requests_still_served(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        reply = await stub.Chat(orchestrator_pb2.ChatRequest(input={"model": "m"}), timeout=5)
        events = [
            e
            async for e in stub.StreamChat(
                orchestrator_pb2.StreamChatRequest(input={"model": "s"}), timeout=5
            )
        ]
        by_path = await channel.unary_unary(
            "/llmesh.v1.OrchestratorService/Chat",
            request_serializer=orchestrator_pb2.ChatRequest.SerializeToString,
            response_deserializer=orchestrator_pb2.ChatResponse.FromString,
        )(orchestrator_pb2.ChatRequest(input={"model": "p"}), timeout=5)
        tokens = await processor_pb2_grpc.ProcessorServiceStub(channel).CountTokens(
            processor_pb2.CountTokensRequest(model="m", text="x"), timeout=5
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:  # the generated base class's stub
            await stub.ListModels(orchestrator_pb2.ListModelsRequest(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert reply.request_id == "ok:m" and by_path.request_id == "ok:p"
    assert [e.text_delta.text for e in events] == ["s", "s"]
    assert tokens.tokens == 7


class _Wrapping(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """An interceptor that can also wrap handlers: it counts wraps, wrapped calls and the
    calls it intercepts (none should reach it: it wraps at registration instead)."""

    def __init__(self) -> None:
        self.wrapped: list[str] = []
        self.calls: list[str] = []
        self.intercepted = 0

    def wrap_handler(self, handler: Any, method: str) -> Any:
        self.wrapped.append(method)
        if handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        async def counted(request: Any, context: Any) -> Any:
            self.calls.append(method)
            return await inner(request, context)

        return handler._replace(unary_unary=counted)

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        self.intercepted += 1
        return await continuation(details)


async def test_an_interceptor_that_wraps_handlers_wraps_each_method_once() -> None:
    wrapping = _Wrapping()
    binding = ServiceBinding(
        orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server,
        _Orchestrator(),
        "llmesh.v1.OrchestratorService",
    )
    running = await start_server([binding], "127.0.0.1:0", interceptors=[wrapping])
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
            for model in ("a", "b"):
                reply = await stub.Chat(
                    orchestrator_pb2.ChatRequest(input={"model": model}), timeout=5
                )
                assert reply.request_id == f"ok:{model}"
            with pytest.raises(grpc.aio.AioRpcError) as info:  # a bad request: still wrapped
                await channel.unary_unary("/llmesh.v1.OrchestratorService/Chat")(GARBAGE, timeout=5)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await running.server.stop(None)
    assert wrapping.wrapped.count("/llmesh.v1.OrchestratorService/Chat") == 1
    assert "/llmesh.v1.OrchestratorService/StreamChat" in wrapping.wrapped
    assert "/grpc.health.v1.Health/Check" in wrapping.wrapped
    assert wrapping.calls == ["/llmesh.v1.OrchestratorService/Chat"] * 3
    assert wrapping.intercepted == 0


class _RecordingServer:
    """What a registrar hands a server: generic handlers and registered methods."""

    def __init__(self) -> None:
        self.generic: list[grpc.GenericRpcHandler] = []
        self.registered: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        self.registered.append(service)


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def test_methods_are_served_by_path_not_as_registered_methods() -> None:
    """grpc.aio waits on one pending request per registered method for every call it
    accepts; the registrar gives the server one generic handler per service instead."""
    server = _RecordingServer()
    registrar = SafeRegistrar(server)  # type: ignore[arg-type]
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(_Orchestrator(), registrar)  # type: ignore[arg-type]
    registrar.finish()
    assert server.registered == []
    (generic,) = server.generic
    for method in ("Chat", "StreamChat"):
        handler = generic.service(_Details(f"/llmesh.v1.OrchestratorService/{method}"))
        assert handler is not None
    assert generic.service(_Details("/llmesh.v1.OrchestratorService/Nope")) is None
