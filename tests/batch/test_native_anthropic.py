"""The Anthropic batch client end to end against the emulator."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import (
    ChatRequest,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
    Tool,
)
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.orchestrator.batch_native import (
    AnthropicBatches,
    NativeItem,
    NativeResult,
    NativeState,
    native_batches_for,
)
from llmesh.v1 import chat_pb2
from tests.batch.conftest import Until, resolved

MODEL = "claude-haiku-4-5"


def chat(custom_id: str, text: str, model: str = MODEL, **fields: object) -> NativeItem:
    values: dict[str, object] = {"max_tokens": 64, **fields}
    request = ChatRequest((Message(Role.USER, text),), **values)  # type: ignore[arg-type]
    return NativeItem(custom_id, request, model)


@pytest.fixture
async def client(emulator: str) -> AsyncIterator[AnthropicBatches]:
    batches = native_batches_for(resolved("anthropic", emulator))
    assert isinstance(batches, AnthropicBatches)
    try:
        yield batches
    finally:
        await batches.aclose()


async def _all(client: AnthropicBatches, batch_id: str) -> dict[str, NativeResult]:
    return {r.custom_id: r async for r in client.results(batch_id)}


async def test_chat_batch_submit_status_results(
    client: AnthropicBatches, admin: httpx.AsyncClient, until: Until
) -> None:
    await admin.post("/emulator/batches", json={"delay_s": 3600})
    batch_id = await client.submit([chat("a", "The quick brown fox"), chat("b", "hi")])
    running = await client.status(batch_id)
    assert (running.state, running.total, running.completed) == (NativeState.IN_PROGRESS, 2, 0)
    with pytest.raises(LlmeshError) as early:
        await _all(client, batch_id)
    assert early.value.reason is Reason.INVALID_REQUEST
    await admin.post("/emulator/batches", json={"delay_s": 0})
    done = await until(client, batch_id, NativeState.COMPLETED)
    assert (done.total, done.completed, done.failed) == (2, 2, 0)
    results = await _all(client, batch_id)
    a = results["a"]
    assert a.error is None and a.chat is not None
    assert a.chat.message.content == "The quick brown fox"
    assert a.chat.request_id == "a"
    assert a.chat.provider == "anthropic"
    assert a.chat.model == MODEL
    assert a.chat.finish_reason == chat_pb2.FINISH_REASON_STOP
    assert a.usage is not None
    assert (a.usage.input_tokens, a.usage.output_tokens) == (10, 4)
    assert results["b"].chat is not None and results["b"].chat.message.content == "hi"


async def test_structured_output_through_the_tool_comes_back_as_text(
    client: AnthropicBatches, until: Until
) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    fmt = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "reply", schema)
    item = chat("s", "forty two", model="claude-3-haiku-20240307", response_format=fmt)
    batch_id = await client.submit([item])
    await until(client, batch_id, NativeState.COMPLETED)
    (result,) = [r async for r in client.results(batch_id)]
    assert result.chat is not None
    assert json.loads(result.chat.message.content) == {"answer": "forty two"}
    assert not result.chat.message.tool_calls


async def test_item_failures_become_errors_with_reasons(
    client: AnthropicBatches, admin: httpx.AsyncClient, until: Until
) -> None:
    rule = {"model": "busy", "fault": "overloaded", "times": 1}
    assert (await admin.post("/emulator/faults", json=rule)).status_code == 200
    batch_id = await client.submit(
        [chat("busy", "x", model="busy"), chat("fine", "y", model="busy")]
    )
    done = await until(client, batch_id, NativeState.COMPLETED)
    assert (done.completed, done.failed) == (1, 1)
    results = await _all(client, batch_id)
    busy = results["busy"].error
    assert busy is not None and busy.reason is Reason.OVERLOADED
    assert results["fine"].chat is not None


async def test_cancel_and_expiry(
    client: AnthropicBatches, admin: httpx.AsyncClient, until: Until
) -> None:
    await admin.post("/emulator/batches", json={"delay_s": 3600})
    cancelled = await client.submit([chat("a", "x")])
    await client.cancel(cancelled)
    done = await until(client, cancelled, NativeState.CANCELLED)
    assert (done.state, done.failed) == (NativeState.CANCELLED, 1)
    (result,) = [r async for r in client.results(cancelled)]
    assert result.error is not None and result.error.reason is Reason.CANCELLED
    await client.cancel(cancelled)  # ended: nothing to do
    await admin.post("/emulator/batches", json={"expiry_s": 0.05})
    expired = await client.submit([chat("b", "x")])
    done = await until(client, expired, NativeState.EXPIRED)
    assert done.state is NativeState.EXPIRED
    (result,) = [r async for r in client.results(expired)]
    assert result.error is not None and result.error.reason is Reason.DEADLINE_EXCEEDED


async def test_submit_refuses_embeddings_and_bad_ids(client: AnthropicBatches) -> None:
    embed = NativeItem("e", EmbeddingRequest(("x",)), "voyage")
    for items in ([embed], [chat("not valid!", "x")], []):
        with pytest.raises(LlmeshError) as refused:
            await client.submit(items)
        assert refused.value.reason is Reason.INVALID_REQUEST


async def test_beta_features_of_the_items_reach_the_batch(
    client: AnthropicBatches, until: Until
) -> None:
    item = chat(
        "t",
        "call get_weather for Paris",
        max_tokens=2048,
        thinking_budget_tokens=1024,
        tools=(Tool("get_weather", parameters={"type": "object", "properties": {}}),),
        anthropic_beta=("interleaved-thinking-2025-05-14",),
    )
    batch_id = await client.submit([item, chat("plain", "x")])
    await until(client, batch_id, NativeState.COMPLETED)
    results = await _all(client, batch_id)
    reply = results["t"].chat
    assert reply is not None
    assert len(reply.message.thinking) == 2  # thinking again after the call: the beta's
    assert [c.name for c in reply.message.tool_calls] == ["get_weather"]
    assert reply.message.content == "Calling get_weather."


async def test_a_batch_the_provider_does_not_know_is_batch_not_found(
    client: AnthropicBatches,
) -> None:
    calls = (
        lambda: client.status("msgbatch_nope"),
        lambda: _all(client, "msgbatch_nope"),
        lambda: client.cancel("msgbatch_nope"),
    )
    for call in calls:
        with pytest.raises(LlmeshError) as missing:
            await call()
        assert missing.value.reason is Reason.BATCH_NOT_FOUND
        assert "msgbatch_nope" in missing.value.message


async def test_find_tells_a_batch_by_its_time_and_size(client: AnthropicBatches) -> None:
    key = f"llmesh-submit-{int(time.time())}-abc"
    batch_id = await client.submit([chat("a", "x"), chat("b", "y"), chat("c", "z")], key)
    assert await client.find(key, 3) == batch_id
    assert await client.find(key, 7) is None  # no batch of that size
    later = f"llmesh-submit-{int(time.time()) + 3600}-abc"
    assert await client.find(later, 3) is None  # none made since
