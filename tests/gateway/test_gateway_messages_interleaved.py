"""Interleaved thinking over two turns through llmesh, with the official ``anthropic`` SDK
and over gRPC: the emulator answers thinking, tool_use, thinking, text (beta header
``interleaved-thinking-2025-05-14``, which the route allows), and refuses the next turn
unless that turn comes back in the same order; streamed and whole replies keep it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import grpc
import pytest

from llmesh.services.emulator.thinking import INTERLEAVED_BETA
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.gateway.conftest import INTERLEAVED_ROUTE as ROUTE
from tests.support.mesh import Mesh

THINKING: Any = {"type": "enabled", "budget_tokens": 1024}
WEATHER: Any = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ASK: list[Any] = [{"role": "user", "content": "call get_weather for Paris"}]
BETA = {"anthropic-beta": INTERLEAVED_BETA}
INTERLEAVED = ["thinking", "tool_use", "thinking", "text"]


@pytest.fixture
async def client(interleaved_mesh: Mesh) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=interleaved_mesh.gateway_url, api_key="unused", max_retries=0, timeout=20
    ) as c:
        yield c


async def _turn(
    client: anthropic.AsyncAnthropic, messages: list[Any], stream: bool
) -> anthropic.types.Message:
    kwargs: Any = {
        "model": ROUTE,
        "max_tokens": 2048,
        "messages": messages,
        "tools": [WEATHER],
        "thinking": THINKING,
        "extra_headers": BETA,
    }
    if stream:
        async with client.messages.stream(**kwargs) as s:
            return await s.get_final_message()
    return await client.messages.create(**kwargs)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_two_turns_of_interleaved_thinking(
    client: anthropic.AsyncAnthropic, stream: bool
) -> None:
    first = await _turn(client, ASK, stream)
    assert [b.type for b in first.content] == INTERLEAVED
    assert first.content[3].text == "Calling get_weather."  # type: ignore[union-attr]
    (use,) = [b for b in first.content if b.type == "tool_use"]
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}
    turn2 = [
        *ASK,
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [result]},
    ]
    # The emulator refuses the turn unless each thinking block is where it was produced.
    second = await _turn(client, turn2, stream)
    assert second.content[-1].text == "Tool result: sunny"  # type: ignore[union-attr]


async def test_grpc_replies_carry_the_order_and_take_it_back(interleaved_mesh: Mesh) -> None:
    ask = chat_pb2.ChatInput(
        model=ROUTE,
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=ASK[0]["content"])],
        tools=[chat_pb2.Tool(name="get_weather", description="The weather in a city.")],
        thinking_budget_tokens=1024,
        max_tokens=2048,
        anthropic_beta=[INTERLEAVED_BETA],
    )
    ask.tools[0].parameters.update(WEATHER["input_schema"])
    async with grpc.aio.insecure_channel(interleaved_mesh.orchestrator_address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        first = await stub.Chat(orchestrator_pb2.ChatRequest(input=ask))
        message = first.message
        kinds = [chat_pb2.BlockKind.Name(r.kind) for r in message.block_order]
        assert kinds == [
            "BLOCK_KIND_THINKING",
            "BLOCK_KIND_TOOL_CALL",
            "BLOCK_KIND_THINKING",
            "BLOCK_KIND_TEXT",
        ]
        assert [r.index for r in message.block_order][:3] == [0, 0, 1]
        assert message.content == "Calling get_weather."
        turn2 = chat_pb2.ChatInput()
        turn2.CopyFrom(ask)
        turn2.messages.append(message)
        turn2.messages.add(
            role=chat_pb2.ROLE_TOOL, tool_call_id=message.tool_calls[0].id, content="sunny"
        )
        second = await stub.Chat(orchestrator_pb2.ChatRequest(input=turn2))
        assert second.message.content == "Tool result: sunny"
        del turn2.messages[1].block_order[:]  # the usual order: the emulator refuses it
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Chat(orchestrator_pb2.ChatRequest(input=turn2))
    assert "signature" in (info.value.details() or "")
