"""Anthropic's Message Batches on the gateway, driven by the official anthropic SDK
unchanged, against a fake BatchService (`tests.gateway.batch_fakes`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest

from llmesh.gateway import GatewaySettings, RunningGateway, start
from llmesh.v1 import batches_pb2
from tests.gateway.batch_fakes import FAIL_MODEL, FakeBatchServer, start_fake_batches

TENANT_A = "sk-tenant-a"
TENANT_B = "sk-tenant-b"


@pytest.fixture
async def batch_server() -> AsyncIterator[FakeBatchServer]:
    server = await start_fake_batches()
    yield server
    await server.running.server.stop(None)


@pytest.fixture
async def batch_gateway(batch_server: FakeBatchServer) -> AsyncIterator[RunningGateway]:
    settings = GatewaySettings(
        orchestrator_address=batch_server.address,
        processor_address=batch_server.address,
        ready_service="llmesh.v1.BatchService",
        shutdown_grace=5,
    )
    running = await start(settings)
    yield running
    await running.stop()


def _client(gateway: RunningGateway, key: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.url, api_key=key, max_retries=0, timeout=10)


@pytest.fixture
async def client(batch_gateway: RunningGateway) -> AsyncIterator[anthropic.AsyncAnthropic]:
    c = _client(batch_gateway, TENANT_A)
    yield c
    await c.close()


@pytest.fixture
async def other(batch_gateway: RunningGateway) -> AsyncIterator[anthropic.AsyncAnthropic]:
    c = _client(batch_gateway, TENANT_B)
    yield c
    await c.close()


def request(custom_id: str, text: str, model: str = "fake/claude", **extra: Any) -> Any:
    params = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}
    return {"custom_id": custom_id, "params": {**params, **extra}}


async def ended(client: anthropic.AsyncAnthropic, batch_id: str) -> Any:
    for _ in range(2400):  # bounded: a minute at most
        batch = await client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        await asyncio.sleep(0.025)
    raise AssertionError(f"batch {batch_id} did not end")


async def test_create_retrieve_results(
    client: anthropic.AsyncAnthropic, batch_server: FakeBatchServer
) -> None:
    batch = await client.messages.batches.create(
        requests=[request("one", "hello"), request("two", "oops", FAIL_MODEL)]
    )
    assert batch.type == "message_batch"
    created = batch_server.service.created[0]
    assert [i.custom_id for i in created.items] == ["one", "two"]
    assert created.items[0].chat.max_tokens == 64  # parsed by the Messages parser
    assert created.mode == batches_pb2.BATCH_MODE_AUTO

    done = await ended(client, batch.id)
    counts = done.request_counts
    assert (counts.succeeded, counts.errored, counts.processing) == (1, 1, 0)
    assert done.ended_at is not None
    assert done.results_url is not None
    assert done.results_url.endswith(f"/v1/messages/batches/{batch.id}/results")

    results = {r.custom_id: r.result async for r in await client.messages.batches.results(batch.id)}
    ok = results["one"]
    assert ok.type == "succeeded"
    assert ok.message.content[0].type == "text"
    assert ok.message.content[0].text == "echo: hello"
    assert ok.message.id == "msg_req-one"
    assert ok.message.stop_reason == "end_turn"
    assert ok.message.usage.input_tokens == 7
    bad = results["two"]
    assert bad.type == "errored"
    assert bad.error.error.type == "invalid_request_error"
    assert bad.error.error.message == "the provider refused the request"


async def test_the_beta_header_goes_with_every_item(
    client: anthropic.AsyncAnthropic, batch_server: FakeBatchServer
) -> None:
    await client.messages.batches.create(
        requests=[request("a", "x"), request("b", "y")],
        extra_headers={"anthropic-beta": "files-api-2025-04-14, context-1m-2025-08-07"},
    )
    items = batch_server.service.created[0].items
    betas = ["files-api-2025-04-14", "context-1m-2025-08-07"]
    assert [list(i.chat.anthropic_beta) for i in items] == [betas, betas]


async def test_a_bad_request_is_a_400_naming_its_index(
    client: anthropic.AsyncAnthropic, batch_server: FakeBatchServer
) -> None:
    bad = {"custom_id": "b", "params": {"model": "m", "messages": []}}
    with pytest.raises(anthropic.BadRequestError) as caught:
        await client.messages.batches.create(requests=[request("a", "x"), bad])  # type: ignore[list-item]
    assert "requests[1].params.max_tokens" in str(caught.value)
    with pytest.raises(anthropic.BadRequestError, match="used more than once"):
        await client.messages.batches.create(requests=[request("a", "x"), request("a", "y")])
    with pytest.raises(anthropic.BadRequestError, match="custom_id"):
        await client.messages.batches.create(requests=[request("not ok!", "x")])
    with pytest.raises(anthropic.BadRequestError, match="stream"):
        await client.messages.batches.create(requests=[request("a", "x", stream=True)])
    assert batch_server.service.created == []


async def test_cancel_and_results_before_the_end(
    client: anthropic.AsyncAnthropic, batch_server: FakeBatchServer, batch_gateway: RunningGateway
) -> None:
    batch_server.service.hold.clear()
    batch = await client.messages.batches.create(requests=[request("a", "x"), request("b", "y")])
    assert batch.processing_status == "in_progress"
    assert batch.results_url is None
    async with httpx.AsyncClient(base_url=batch_gateway.url) as http:
        early = await http.get(
            f"/v1/messages/batches/{batch.id}/results", headers={"x-api-key": TENANT_A}
        )
    assert early.status_code == 409
    assert early.json()["type"] == "error"
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        await client.messages.batches.results(batch.id)
    cancelled = await client.messages.batches.cancel(batch.id)
    assert cancelled.processing_status == "ended"
    assert cancelled.request_counts.canceled == 2
    batch_server.service.hold.set()


async def test_a_tenant_sees_only_its_own_batches(
    client: anthropic.AsyncAnthropic, other: anthropic.AsyncAnthropic
) -> None:
    batch = await client.messages.batches.create(requests=[request("a", "x")])
    await ended(client, batch.id)
    with pytest.raises(anthropic.NotFoundError):
        await other.messages.batches.retrieve(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        await other.messages.batches.cancel(batch.id)
    assert [b.id async for b in other.messages.batches.list()] == []
    assert [b.id async for b in client.messages.batches.list()] == [batch.id]


async def test_list_pages_both_ways(client: anthropic.AsyncAnthropic) -> None:
    made = [
        (await client.messages.batches.create(requests=[request("a", "x")])).id for _ in range(5)
    ]
    newest_first = made[::-1]
    page = await client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2]
    assert page.has_more
    assert page.first_id == newest_first[0]
    assert [b.id async for b in client.messages.batches.list(limit=2)] == newest_first
    before = await client.messages.batches.list(limit=2, before_id=newest_first[3])
    assert [b.id for b in before.data] == newest_first[1:3]
    assert before.has_more
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.list(after_id="batch-nope")
