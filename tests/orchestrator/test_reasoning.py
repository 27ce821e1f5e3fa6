"""Reasoning over gRPC against the emulator: Anthropic extended thinking kept losslessly,
OpenAI reasoning tokens counted in the ledger."""

from __future__ import annotations

import grpc
import pytest

from llmesh.services.common.errors import Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.emulator.thinking import sign
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh

MODEL = "anthropic/claude-sonnet-4-6"


def _thinking_input(*messages: chat_pb2.Message) -> chat_pb2.ChatInput:
    return chat_pb2.ChatInput(
        model=MODEL, messages=messages, max_tokens=2048, thinking_budget_tokens=1024
    )


def _user(text: str) -> chat_pb2.Message:
    return chat_pb2.Message(role=chat_pb2.ROLE_USER, content=text)


async def test_thinking_streams_as_its_own_events(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        request = orchestrator_pb2.StreamChatRequest(input=_thinking_input(_user("hello there")))
        events = [e async for e in stub.StreamChat(request, timeout=10)]
    kinds = [e.WhichOneof("event") for e in events]
    assert "reasoning_delta" in kinds
    assert kinds.index("reasoning_delta") < kinds.index("text_delta")  # thinking comes first
    deltas = [e.reasoning_delta for e in events if e.HasField("reasoning_delta")]
    thought = "".join(d.text for d in deltas)
    signatures = [d.signature for d in deltas if d.signature]
    assert thought and signatures == [sign(thought)]
    assert {d.index for d in deltas} == {0}
    text = "".join(e.text_delta.text for e in events if e.HasField("text_delta"))
    assert text == "hello there"  # the answer alone, no reasoning mixed in
    assert events[-1].HasField("finish")


async def test_thinking_blocks_go_back_on_the_next_turn(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        first = await stub.Chat(
            orchestrator_pb2.ChatRequest(input=_thinking_input(_user("hello there"))), timeout=10
        )
        (block,) = first.message.thinking
        assert block.thinking and block.signature == sign(block.thinking)
        assert first.message.content == "hello there"

        # the reply sent back as it came: the emulator verifies the signature as Anthropic does
        history = (_user("hello there"), first.message, _user("and again"))
        second = await stub.Chat(
            orchestrator_pb2.ChatRequest(input=_thinking_input(*history)), timeout=10
        )
        assert second.message.content == "and again"
        assert len(second.message.thinking) == 1

        tampered = chat_pb2.Message()
        tampered.CopyFrom(first.message)
        tampered.thinking[0].signature = sign("something else")
        bad = (_user("hello there"), tampered, _user("and again"))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Chat(orchestrator_pb2.ChatRequest(input=_thinking_input(*bad)), timeout=10)
    err = from_rpc_error(info.value)
    assert err.reason is Reason.UPSTREAM_INVALID_REQUEST
    assert "signature" in err.message


async def test_thinking_settings_are_checked_before_any_call(mesh: Mesh) -> None:
    low_max = _thinking_input(_user("hi"))
    low_max.max_tokens = 1024  # must exceed the budget
    small = _thinking_input(_user("hi"))
    small.thinking_budget_tokens = 100
    on_user = _thinking_input(_user("hi"))
    on_user.messages[0].thinking.add(thinking="x", signature="y")
    fields = []
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        for inp in (low_max, small, on_user):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.Chat(orchestrator_pb2.ChatRequest(input=inp), timeout=10)
            err = from_rpc_error(info.value)
            assert err.reason is Reason.INVALID_REQUEST
            fields.append(err.violations[0].field)
    assert fields == [
        "input.thinking_budget_tokens",
        "input.thinking_budget_tokens",
        "input.messages[0].thinking",
    ]


async def test_reasoning_tokens_reach_the_ledger(mesh: Mesh) -> None:
    assert mesh.config is not None
    inp = chat_pb2.ChatInput(
        model="openai/o4-mini",
        messages=[_user("hello there")],
        reasoning_effort=chat_pb2.REASONING_EFFORT_HIGH,
    )
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        reply = await stub.Chat(orchestrator_pb2.ChatRequest(input=inp), timeout=10)
    assert reply.message.content == "hello there"
    assert not reply.message.thinking  # OpenAI keeps its reasoning hidden
    assert 0 < reply.usage.reasoning_tokens < reply.usage.output_tokens
    record = await ledger_record(mesh.config.database_url, reply.request_id)
    assert record.reasoning_tokens == reply.usage.reasoning_tokens
    assert record.output_tokens == reply.usage.output_tokens
