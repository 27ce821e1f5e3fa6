"""CountTokens counts the tool definitions offered with a text or a conversation: name,
description and JSON schema with the model's tokenizer, plus the documented framing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import struct_pb2

from llmesh.services.common.errors import Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.processor.server import ProcessorServer, serve
from llmesh.services.processor.tokenizers import Tokenizers
from llmesh.services.processor.tool_tokens import TOKENS_PER_TOOL, TOOLS_FRAMING
from llmesh.v1 import chat_pb2, processor_pb2, processor_pb2_grpc

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string", "description": "The city, in English."}},
    "required": ["city"],
}


def _tool(name: str, description: str, schema: dict[str, object] | None) -> chat_pb2.Tool:
    tool = chat_pb2.Tool(name=name, description=description)
    if schema is not None:
        params = struct_pb2.Struct()
        params.update(schema)
        tool.parameters.CopyFrom(params)
    return tool


@pytest.fixture
async def stub(tokenizers: Tokenizers) -> AsyncIterator[processor_pb2_grpc.ProcessorServiceStub]:
    running: ProcessorServer = await serve("127.0.0.1:0", tokenizers=tokenizers)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        yield processor_pb2_grpc.ProcessorServiceStub(channel)
    await running.stop(None)


@pytest.mark.parametrize("model", ["openai/gpt-4o", "anthropic/claude-haiku-4-5"])
async def test_tools_add_their_texts_and_framing(
    stub: processor_pb2_grpc.ProcessorServiceStub, tokenizers: Tokenizers, model: str
) -> None:
    counter = tokenizers.for_model(model)
    messages = [chat_pb2.Message(role=chat_pb2.ROLE_USER, content="weather in Paris?")]
    bare = await stub.CountTokens(processor_pb2.CountTokensRequest(model=model, messages=messages))
    tools = [
        _tool("get_weather", "The weather in a city.", SCHEMA),
        _tool("now", "", None),
    ]
    with_tools = await stub.CountTokens(
        processor_pb2.CountTokensRequest(model=model, messages=messages, tools=tools)
    )
    schema = json.dumps(SCHEMA, separators=(",", ":"), sort_keys=True)
    texts = ["get_weather", "The weather in a city.", schema, "now"]
    expected = TOOLS_FRAMING + 2 * TOKENS_PER_TOOL + sum(counter.count(t) for t in texts)
    assert with_tools.tokens - bare.tokens == expected
    assert (with_tools.tokenizer, with_tools.exact) == (bare.tokenizer, bare.exact)

    text_only = await stub.CountTokens(
        processor_pb2.CountTokensRequest(model=model, text="hello", tools=tools[:1])
    )
    one = TOOLS_FRAMING + TOKENS_PER_TOOL + sum(counter.count(t) for t in texts[:3])
    assert text_only.tokens == counter.count("hello") + one


async def test_a_nameless_tool_is_named_in_the_error(
    stub: processor_pb2_grpc.ProcessorServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.CountTokens(
            processor_pb2.CountTokensRequest(
                model="openai/gpt-4o", text="hi", tools=[_tool("", "x", None)]
            )
        )
    err = from_rpc_error(caught.value)
    assert err.reason is Reason.INVALID_REQUEST
    assert [v.field for v in err.violations] == ["tools[0].name"]
