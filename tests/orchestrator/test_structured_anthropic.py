"""Structured output to Anthropic over gRPC, against the emulator: a model with native
structured output gets ``output_config.format`` and answers in text; another model gets the
forced ``json_response`` tool. Either way the caller sees JSON text and one ledger record."""

from __future__ import annotations

import json
from typing import Any

import grpc
import jsonschema
import pytest

from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh

NATIVE = "anthropic/claude-haiku-4-5"
OLD = "anthropic/claude-3-haiku-20240307"  # no native structured output

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["city", "unit", "days"],
}


def _input(model: str, text: str, schema: dict[str, Any] | None = SCHEMA) -> chat_pb2.ChatInput:
    inp = chat_pb2.ChatInput(
        model=model, messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=text)]
    )
    if schema is not None:
        inp.response_format.CopyFrom(
            chat_pb2.ResponseFormat(
                type=chat_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
                name="forecast",
                schema=json.dumps(schema),
            )
        )
    return inp


async def _chat(mesh: Mesh, inp: chat_pb2.ChatInput) -> orchestrator_pb2.ChatResponse:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        reply: orchestrator_pb2.ChatResponse = await stub.Chat(
            orchestrator_pb2.ChatRequest(input=inp), timeout=10
        )
        return reply


@pytest.mark.parametrize(("model", "provider_reason"), [(NATIVE, "end_turn"), (OLD, "tool_use")])
async def test_json_schema_reply_by_the_path_of_the_model(
    mesh: Mesh, model: str, provider_reason: str
) -> None:
    text = f"Forecast {provider_reason}"
    reply = await _chat(mesh, _input(model, text))
    plain = await _chat(mesh, _input(model, text, None))
    value = json.loads(reply.message.content)
    jsonschema.validate(value, SCHEMA)
    assert value["city"] == text
    assert not reply.message.tool_calls
    assert reply.finish_reason == chat_pb2.FINISH_REASON_STOP
    # end_turn: the emulator answered in text, which it does for output_config, not for a
    # forced tool; and only a tool definition adds prompt tokens to the plain call's
    assert reply.provider_finish_reason == provider_reason
    if provider_reason == "end_turn":
        assert reply.usage.input_tokens == plain.usage.input_tokens
    else:
        assert reply.usage.input_tokens > plain.usage.input_tokens
    record = await ledger_record(mesh.config.database_url, reply.request_id)  # type: ignore[union-attr]
    assert (record.provider, record.model) == tuple(model.split("/"))
    assert (record.input_tokens, record.output_tokens) == (
        reply.usage.input_tokens,
        reply.usage.output_tokens,
    )


async def test_a_schema_outside_the_native_subset_takes_the_tool(mesh: Mesh) -> None:
    bounded = {
        **SCHEMA,
        "properties": {**SCHEMA["properties"], "days": {"type": "integer", "minimum": 1}},
    }
    reply = await _chat(mesh, _input(NATIVE, "Forecast bounded", bounded))
    jsonschema.validate(json.loads(reply.message.content), bounded)
    assert reply.provider_finish_reason == "tool_use"


async def test_streamed_native_reply_is_text_deltas_then_finish(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        request = orchestrator_pb2.StreamChatRequest(input=_input(NATIVE, "Forecast streamed"))
        events = [e async for e in stub.StreamChat(request, timeout=10)]
    kinds = {e.WhichOneof("event") for e in events}
    assert "tool_call_delta" not in kinds
    text = "".join(e.text_delta.text for e in events if e.HasField("text_delta"))
    jsonschema.validate(json.loads(text), SCHEMA)
    finish = events[-1].finish
    assert finish.provider_reason == "end_turn" and finish.usage.output_tokens > 0
