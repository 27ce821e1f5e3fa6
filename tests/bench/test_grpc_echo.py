"""The gRPC floor server answers a ``Prepare`` with the request's messages, unchanged."""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from bench.grpc_echo import serve
from bench.ports import free_port
from llmesh.v1 import chat_pb2, processor_pb2, processor_pb2_grpc


async def test_prepare_answers_the_messages_back() -> None:
    port = free_port()
    server = asyncio.create_task(serve(port))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await asyncio.wait_for(channel.channel_ready(), 10)
            stub = processor_pb2_grpc.ProcessorServiceStub(channel)
            messages = [chat_pb2.Message(role=chat_pb2.ROLE_USER, content="x" * 2048)]
            answer = await stub.Prepare(processor_pb2.PrepareRequest(messages=messages), timeout=5)
        assert list(answer.messages) == messages
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
