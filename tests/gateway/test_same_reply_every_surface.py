"""The same emulator reply reads the same on every surface: the same text and the same
usage through Chat Completions, the Anthropic Messages API, the OpenAI Responses API and
gRPC, streamed or not.

Each surface is one function in `SURFACES` returning the reply's text and its usage as
(input tokens including cache reads and writes, output tokens); a new surface adds one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anthropic
import grpc
import openai
import pytest

from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.mesh import Mesh

SYSTEM = "You answer in few words."
QUESTION = "the quick brown fox jumps"
MAX_TOKENS = 256

Reply = tuple[str, tuple[int, int]]
"""The reply's text and (input tokens with cache reads and writes, output tokens)."""


async def chat_completions(mesh: Mesh, model: str, stream: bool) -> Reply:
    async with openai.AsyncOpenAI(
        base_url=f"{mesh.gateway_url}/v1", api_key="unused", max_retries=0
    ) as client:
        messages: list[dict[str, str]] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": QUESTION},
        ]
        if not stream:
            whole = await client.chat.completions.create(
                model=model,
                messages=messages,
                max_tokens=MAX_TOKENS,  # type: ignore[arg-type]
            )
            assert whole.usage is not None
            text = whole.choices[0].message.content or ""
            return text, (whole.usage.prompt_tokens, whole.usage.completion_tokens)
        chunks = await client.chat.completions.create(
            model=model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
        parts, usage = [], None
        async for chunk in chunks:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
        assert usage is not None
        return "".join(parts), (usage.prompt_tokens, usage.completion_tokens)


async def messages_api(mesh: Mesh, model: str, stream: bool) -> Reply:
    async with anthropic.AsyncAnthropic(
        base_url=mesh.gateway_url, api_key="unused", max_retries=0
    ) as client:
        messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": QUESTION}]
        if stream:
            async with client.messages.stream(
                model=model, system=SYSTEM, max_tokens=MAX_TOKENS, messages=messages
            ) as events:
                reply = await events.get_final_message()
        else:
            reply = await client.messages.create(
                model=model, system=SYSTEM, max_tokens=MAX_TOKENS, messages=messages
            )
    u = reply.usage
    prompt = u.input_tokens + (u.cache_read_input_tokens or 0)
    prompt += u.cache_creation_input_tokens or 0
    text = "".join(b.text for b in reply.content if b.type == "text")
    return text, (prompt, u.output_tokens)


async def responses_api(mesh: Mesh, model: str, stream: bool) -> Reply:
    async with openai.AsyncOpenAI(
        base_url=f"{mesh.gateway_url}/v1", api_key="unused", max_retries=0
    ) as client:
        asked = {
            "model": model,
            "instructions": SYSTEM,
            "input": QUESTION,
            "max_output_tokens": MAX_TOKENS,
            "store": False,
        }
        if stream:
            async with client.responses.stream(**asked) as events:  # type: ignore[arg-type]
                response = await events.get_final_response()
        else:
            response = await client.responses.create(**asked)  # type: ignore[call-overload]
    assert response.usage is not None  # input_tokens includes cached ones, as OpenAI counts
    return response.output_text, (response.usage.input_tokens, response.usage.output_tokens)


async def grpc_chat(mesh: Mesh, model: str, stream: bool) -> Reply:
    chat = chat_pb2.ChatInput(
        model=model,
        max_tokens=MAX_TOKENS,
        messages=[
            chat_pb2.Message(role=chat_pb2.ROLE_SYSTEM, content=SYSTEM),
            chat_pb2.Message(role=chat_pb2.ROLE_USER, content=QUESTION),
        ],
    )
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        if stream:
            parts, usage = [], chat_pb2.Usage()
            async for ev in stub.StreamChat(orchestrator_pb2.StreamChatRequest(input=chat)):
                if ev.WhichOneof("event") == "text_delta":
                    parts.append(ev.text_delta.text)
                elif ev.WhichOneof("event") == "finish":
                    usage = ev.finish.usage
            text = "".join(parts)
        else:
            reply = await stub.Chat(orchestrator_pb2.ChatRequest(input=chat))
            text, usage = reply.message.content, reply.usage
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return text, (prompt, usage.output_tokens)


SURFACES: dict[str, Callable[[Mesh, str, bool], Awaitable[Reply]]] = {
    "chat-completions": chat_completions,
    "messages": messages_api,
    "responses": responses_api,
    "grpc": grpc_chat,
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("model", ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"])
async def test_same_text_and_usage_on_every_surface(mesh: Mesh, model: str, stream: bool) -> None:
    replies = {name: await surface(mesh, model, stream) for name, surface in SURFACES.items()}
    expected = replies["grpc"]
    assert expected[0] == QUESTION and expected[1][0] > 0 and expected[1][1] == 5
    assert replies == dict.fromkeys(SURFACES, expected)
