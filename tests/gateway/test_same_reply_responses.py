"""The same emulator reply yields the same text and usage through Chat Completions, the
Responses API and gRPC, whole and streamed."""

from __future__ import annotations

import grpc
import openai
import pytest

from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.mesh import Mesh

PROMPT = "the same words every time"


def _usage(usage: chat_pb2.Usage) -> tuple[int, int, int]:
    """(input incl. cache reads and writes, output, cached) as the OpenAI shapes count them."""
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return prompt, usage.output_tokens, usage.cache_read_tokens


async def _grpc(mesh: Mesh, model: str) -> list[tuple[str, tuple[int, int, int]]]:
    chat = chat_pb2.ChatInput(
        model=model, messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=PROMPT)]
    )
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        whole = await stub.Chat(orchestrator_pb2.ChatRequest(input=chat))
        text, usage = "", chat_pb2.Usage()
        async for event in stub.StreamChat(orchestrator_pb2.StreamChatRequest(input=chat)):
            text += event.text_delta.text
            if event.HasField("finish"):
                usage = event.finish.usage
    return [(whole.message.content, _usage(whole.usage)), (text, _usage(usage))]


async def _chat(client: openai.AsyncOpenAI, model: str) -> list[tuple[str, tuple[int, int, int]]]:
    messages = [{"role": "user", "content": PROMPT}]
    whole = await client.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
    stream = await client.chat.completions.create(
        model=model,
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    out = []
    for content, usage in (
        (whole.choices[0].message.content or "", whole.usage),
        (text, chunks[-1].usage),
    ):
        assert usage is not None and usage.prompt_tokens_details is not None
        cached = usage.prompt_tokens_details.cached_tokens or 0
        out.append((content, (usage.prompt_tokens, usage.completion_tokens, cached)))
    return out


async def _responses(
    client: openai.AsyncOpenAI, model: str
) -> list[tuple[str, tuple[int, int, int]]]:
    whole = await client.responses.create(model=model, input=PROMPT, store=False)
    async with client.responses.stream(model=model, input=PROMPT, store=False) as stream:
        streamed = await stream.get_final_response()
    out = []
    for response in (whole, streamed):
        usage = response.usage
        assert usage is not None
        cached = usage.input_tokens_details.cached_tokens
        out.append((response.output_text, (usage.input_tokens, usage.output_tokens, cached)))
    return out


@pytest.mark.parametrize("model", ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"])
async def test_the_same_reply_on_every_surface(mesh: Mesh, model: str) -> None:
    async with openai.AsyncOpenAI(
        base_url=f"{mesh.gateway_url}/v1", api_key="unused", max_retries=0
    ) as client:
        seen = {
            "grpc": await _grpc(mesh, model),
            "chat.completions": await _chat(client, model),
            "responses": await _responses(client, model),
        }
    expected = (PROMPT, seen["grpc"][0][1])
    assert expected[1][1] == 5  # five words: five output tokens
    for surface, replies in seen.items():
        assert replies == [expected, expected], surface
