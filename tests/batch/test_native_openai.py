"""The OpenAI batch client end to end against the emulator: chat and embeddings."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ChatRequest, Message, Role, ThinkingBlock
from llmesh.services.core.embeddings import EmbeddingEncoding, EmbeddingRequest
from llmesh.services.emulator.embedding_vectors import embed_text
from llmesh.services.orchestrator.batch_native import (
    NativeItem,
    NativeResult,
    NativeState,
    OpenAIBatches,
    native_batches_for,
)
from llmesh.v1 import chat_pb2
from tests.batch.conftest import Until, resolved

MODEL = "gpt-4o-mini"


def chat(custom_id: str, text: str, model: str = MODEL) -> NativeItem:
    return NativeItem(custom_id, ChatRequest((Message(Role.USER, text),)), model)


@pytest.fixture
async def client(emulator: str) -> AsyncIterator[OpenAIBatches]:
    batches = native_batches_for(resolved("openai", f"{emulator}/v1"))
    assert isinstance(batches, OpenAIBatches)
    try:
        yield batches
    finally:
        await batches.aclose()


async def _all(client: OpenAIBatches, batch_id: str) -> dict[str, NativeResult]:
    return {r.custom_id: r async for r in client.results(batch_id)}


async def test_chat_batch_submit_status_results(
    client: OpenAIBatches, admin: httpx.AsyncClient, until: Until
) -> None:
    await admin.post("/emulator/batches", json={"delay_s": 3600})
    batch_id = await client.submit([chat("a", "The quick brown fox"), chat("b", "hello there")])
    running = await until(client, batch_id, NativeState.IN_PROGRESS)
    assert running.state is NativeState.IN_PROGRESS
    with pytest.raises(LlmeshError) as early:
        await _all(client, batch_id)
    assert early.value.reason is Reason.INVALID_REQUEST
    await admin.post("/emulator/batches", json={"delay_s": 0})
    done = await until(client, batch_id, NativeState.COMPLETED)
    assert (done.state, done.total, done.completed, done.failed) == (
        NativeState.COMPLETED,
        2,
        2,
        0,
    )
    results = await _all(client, batch_id)
    assert set(results) == {"a", "b"}
    a = results["a"]
    assert a.error is None and a.embed is None and a.chat is not None
    assert a.chat.message.content == "The quick brown fox"
    assert a.chat.request_id == "a"
    assert a.chat.provider == "openai"
    assert a.chat.model == MODEL
    assert a.chat.finish_reason == chat_pb2.FINISH_REASON_STOP
    assert a.usage is not None
    assert (a.usage.input_tokens, a.usage.output_tokens) == (10, 4)  # (3 + 4) + 3 priming
    assert a.chat.usage.output_tokens == 4
    assert results["b"].chat is not None and results["b"].chat.message.content == "hello there"


async def test_chat_item_fields_reach_the_provider(client: OpenAIBatches, until: Until) -> None:
    short = ChatRequest((Message(Role.USER, "The quick brown fox"),), max_tokens=2, stop=("z",))
    batch_id = await client.submit([NativeItem("short", short, MODEL)])
    await until(client, batch_id, NativeState.COMPLETED)
    (result,) = [r async for r in client.results(batch_id)]
    assert result.chat is not None
    assert result.chat.message.content == "The quick"  # max_completion_tokens: 2
    assert result.chat.finish_reason == chat_pb2.FINISH_REASON_LENGTH


async def test_embeddings_batch_floats_and_base64(client: OpenAIBatches, until: Until) -> None:
    floats = await client.submit(
        [NativeItem("f", EmbeddingRequest(("hello", "world")), "text-embedding-3-small")]
    )
    packed = await client.submit(
        [
            NativeItem(
                "p",
                EmbeddingRequest(("hello",), encoding=EmbeddingEncoding.BASE64),
                "text-embedding-3-small",
            )
        ]
    )
    assert (await until(client, floats, NativeState.COMPLETED)).completed == 1
    assert (await until(client, packed, NativeState.COMPLETED)).completed == 1
    (f,) = [r async for r in client.results(floats)]
    assert f.embed is not None and f.error is None
    assert [e.index for e in f.embed.embeddings] == [0, 1]
    expected = embed_text("text-embedding-3-small", "world", None)
    assert list(f.embed.embeddings[1].values) == pytest.approx(list(expected), rel=1e-6)
    assert f.usage is not None and f.usage.input_tokens == 2
    (p,) = [r async for r in client.results(packed)]
    assert p.embed is not None
    vector = embed_text("text-embedding-3-small", "hello", None)
    hello = struct.pack(f"<{len(vector)}f", *vector)
    assert p.embed.embeddings[0].data == hello


async def test_item_failures_become_errors_with_reasons(
    client: OpenAIBatches, admin: httpx.AsyncClient, until: Until
) -> None:
    rule = {"model": "limited", "fault": "rate_limit", "times": 1}
    assert (await admin.post("/emulator/faults", json=rule)).status_code == 200
    rule = {"model": "too-long", "fault": "context_length"}
    assert (await admin.post("/emulator/faults", json=rule)).status_code == 200
    # one model per batch, as OpenAI requires
    batch_id = await client.submit(
        [chat("limited", "x", model="limited"), chat("fine", "x", model="limited")]
    )
    long_id = await client.submit([chat("long", "x", model="too-long")])
    done = await until(client, batch_id, NativeState.COMPLETED)
    assert (done.completed, done.failed) == (1, 1)
    long_done = await until(client, long_id, NativeState.COMPLETED)
    assert (long_done.completed, long_done.failed) == (0, 1)
    results = await _all(client, batch_id) | await _all(client, long_id)
    limited, long = results["limited"].error, results["long"].error
    assert limited is not None and limited.reason is Reason.RATE_LIMITED
    assert long is not None and long.reason is Reason.CONTEXT_TOO_LONG
    assert results["limited"].chat is None and results["limited"].usage is None
    assert results["fine"].chat is not None


async def test_expired_items_are_deadline_errors(
    client: OpenAIBatches, admin: httpx.AsyncClient, until: Until
) -> None:
    await admin.post("/emulator/batches", json={"delay_s": 3600, "expiry_s": 0.05})
    batch_id = await client.submit([chat("a", "x")])
    done = await until(client, batch_id, NativeState.EXPIRED)
    assert (done.state, done.failed) == (NativeState.EXPIRED, 1)
    (result,) = [r async for r in client.results(batch_id)]
    assert result.error is not None and result.error.reason is Reason.DEADLINE_EXCEEDED


async def test_cancel_cancels_the_items_not_run(
    client: OpenAIBatches, admin: httpx.AsyncClient, until: Until
) -> None:
    await admin.post("/emulator/batches", json={"delay_s": 3600})
    batch_id = await client.submit([chat("a", "x"), chat("b", "y")])
    await client.cancel(batch_id)
    done = await until(client, batch_id, NativeState.CANCELLED)
    assert (done.state, done.completed, done.failed) == (NativeState.CANCELLED, 0, 2)
    results = await _all(client, batch_id)
    assert {r.error.reason for r in results.values() if r.error} == {Reason.CANCELLED}
    await client.cancel(batch_id)  # ended: nothing to do


async def test_submit_refuses_what_one_batch_cannot_carry(client: OpenAIBatches) -> None:
    embed = NativeItem("e", EmbeddingRequest(("x",)), "text-embedding-3-small")
    cases = [[], [chat("a", "x"), embed], [chat("a", "x"), chat("a", "y")]]
    for items in cases:
        with pytest.raises(LlmeshError) as refused:
            await client.submit(items)
        assert refused.value.reason is Reason.INVALID_REQUEST


async def test_an_item_that_cannot_be_sent_is_named(client: OpenAIBatches) -> None:
    redacted = Message(Role.ASSISTANT, thinking=(ThinkingBlock("", "", "opaque"),))
    item = NativeItem("turn", ChatRequest((Message(Role.USER, "x"), redacted)), MODEL)
    with pytest.raises(LlmeshError) as refused:
        await client.submit([chat("fine", "x"), item])
    assert refused.value.reason is Reason.INVALID_REQUEST
    assert refused.value.metadata["custom_id"] == "turn"


async def test_a_batch_refused_as_a_whole_says_why(
    client: OpenAIBatches, emulator: str, until: Until
) -> None:
    async with openai.AsyncOpenAI(base_url=f"{emulator}/v1", api_key="k", max_retries=0) as sdk:
        uploaded = await sdk.files.create(file=("in.jsonl", b"{not json\n"), purpose="batch")
        batch = await sdk.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert (await until(client, batch.id, NativeState.FAILED)).state is NativeState.FAILED
    with pytest.raises(LlmeshError) as refused:
        await _all(client, batch.id)
    assert refused.value.reason is Reason.UPSTREAM_INVALID_REQUEST
    assert "line 1: This line is not parseable as valid JSON." in refused.value.message


def test_factory_by_kind(emulator: str) -> None:
    assert native_batches_for(resolved("emulator", emulator)) is None
    assert native_batches_for(resolved("openai-compatible", emulator)) is None


async def test_a_batch_the_provider_does_not_know_is_batch_not_found(
    client: OpenAIBatches,
) -> None:
    calls = (
        lambda: client.status("batch_nope"),
        lambda: _all(client, "batch_nope"),
        lambda: client.cancel("batch_nope"),
    )
    for call in calls:
        with pytest.raises(LlmeshError) as missing:
            await call()
        assert missing.value.reason is Reason.BATCH_NOT_FOUND
        assert "batch_nope" in missing.value.message


async def test_one_batch_runs_one_model(client: OpenAIBatches) -> None:
    items = [chat("a", "x"), chat("b", "y", model="gpt-4o")]
    with pytest.raises(LlmeshError) as refused:
        await client.submit(items)
    assert refused.value.reason is Reason.INVALID_REQUEST
    assert "single model" in refused.value.message
    assert "gpt-4o, gpt-4o-mini" in refused.value.message


async def test_find_tells_a_batch_by_its_submission_key(client: OpenAIBatches) -> None:
    key = "llmesh-submit-1-abc"
    batch_id = await client.submit([chat("a", "x"), chat("b", "y")], key)
    await client.submit([chat("c", "z")], "llmesh-submit-1-other")
    assert await client.find(key, 2) == batch_id
    assert await client.find("llmesh-submit-1-never", 2) is None
