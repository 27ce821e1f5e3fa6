"""Anthropic's Message Batches on the emulator, through the official SDK."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse

from llmesh.services.emulator import anthropic_api
from llmesh.services.emulator.thinking import INTERLEAVED_BETA

MODEL = "claude-haiku-4-5"


def _request(custom_id: str, text: str, model: str = MODEL, **params: Any) -> Any:
    return {
        "custom_id": custom_id,
        "params": {
            "model": model,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": text}],
            **params,
        },
    }


async def _until_ended(ant: anthropic.AsyncAnthropic, batch_id: str) -> MessageBatch:
    """Poll the batch until it has ended (for up to ten seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        batch = await ant.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended" or loop.time() > deadline:
            return batch
        await asyncio.sleep(0.01)


async def _results(
    ant: anthropic.AsyncAnthropic, batch_id: str
) -> dict[str, MessageBatchIndividualResponse]:
    return {r.custom_id: r async for r in await ant.messages.batches.results(batch_id)}


async def _timing(http: httpx.AsyncClient, **values: float) -> None:
    resp = await http.post("/emulator/batches", json=values)
    assert resp.status_code == 200, resp.text


async def test_batch_waits_its_delay_then_answers_like_messages(
    ant: anthropic.AsyncAnthropic, http: httpx.AsyncClient, emulator: str
) -> None:
    await _timing(http, delay_s=3600)
    created = await ant.messages.batches.create(
        requests=[_request("a", "The quick brown fox"), _request("b", "hello there")]
    )
    assert created.id.startswith("msgbatch_")
    assert created.type == "message_batch"
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 2
    assert created.results_url is None
    assert (created.expires_at - created.created_at).total_seconds() == pytest.approx(86400)
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        await ant.messages.batches.results(created.id)  # not ended: no results yet
    await _timing(http, delay_s=0)
    done = await _until_ended(ant, created.id)
    assert done.processing_status == "ended"
    assert done.ended_at is not None
    assert done.request_counts.succeeded == 2 and done.request_counts.processing == 0
    assert done.results_url == f"{emulator}/v1/messages/batches/{done.id}/results"
    results = await _results(ant, done.id)
    assert set(results) == {"a", "b"}
    direct = await ant.messages.create(
        model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "The quick brown fox"}]
    )
    first = results["a"].result
    assert first.type == "succeeded"
    assert first.message.content == direct.content
    assert first.message.usage.input_tokens == direct.usage.input_tokens
    assert first.message.usage.output_tokens == direct.usage.output_tokens
    assert first.message.stop_reason == "end_turn"


async def test_faults_and_invalid_params_error_single_requests(
    ant: anthropic.AsyncAnthropic, http: httpx.AsyncClient
) -> None:
    rule = {"model": "flaky", "fault": "overloaded", "times": 1}
    assert (await http.post("/emulator/faults", json=rule)).status_code == 200
    created = await ant.messages.batches.create(
        requests=[
            _request("overloaded", "one", model="flaky"),
            _request("fine", "two", model="flaky"),
            {"custom_id": "bad", "params": {"model": MODEL, "messages": []}},
        ]
    )
    done = await _until_ended(ant, created.id)
    counts = done.request_counts
    assert (counts.succeeded, counts.errored) == (1, 2)
    results = await _results(ant, done.id)
    assert results["fine"].result.type == "succeeded"
    overloaded = results["overloaded"].result
    assert overloaded.type == "errored"
    assert overloaded.error.type == "error"
    assert overloaded.error.error.type == "overloaded_error"
    bad = results["bad"].result
    assert bad.type == "errored"
    assert bad.error.error.type == "invalid_request_error"
    assert "max_tokens" in bad.error.error.message


async def test_cancel_ends_with_canceled_results(
    ant: anthropic.AsyncAnthropic, http: httpx.AsyncClient
) -> None:
    await _timing(http, delay_s=3600)
    created = await ant.messages.batches.create(requests=[_request("a", "x"), _request("b", "y")])
    canceling = await ant.messages.batches.cancel(created.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    done = await _until_ended(ant, created.id)
    assert done.request_counts.canceled == 2
    results = await _results(ant, done.id)
    assert {r.result.type for r in results.values()} == {"canceled"}
    again = await ant.messages.batches.cancel(created.id)  # an ended batch is answered as is
    assert again.processing_status == "ended"


async def test_a_batch_past_its_window_expires(
    ant: anthropic.AsyncAnthropic, http: httpx.AsyncClient
) -> None:
    await _timing(http, delay_s=3600, expiry_s=0.05)
    created = await ant.messages.batches.create(requests=[_request("a", "x")])
    done = await _until_ended(ant, created.id)
    assert done.request_counts.expired == 1
    results = await _results(ant, done.id)
    assert results["a"].result.type == "expired"


async def test_list_pages_newest_first_and_delete(ant: anthropic.AsyncAnthropic) -> None:
    ids = [
        (await ant.messages.batches.create(requests=[_request("a", str(i))])).id for i in range(3)
    ]
    first = await ant.messages.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2]
    assert first.has_more and first.last_id == ids[1]
    every = [b.id async for b in await ant.messages.batches.list(limit=2)]
    assert every == ids[::-1]
    await _until_ended(ant, ids[0])
    deleted = await ant.messages.batches.delete(ids[0])
    assert deleted.id == ids[0] and deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        await ant.messages.batches.retrieve(ids[0])


async def test_create_validates_the_requests(ant: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="Duplicate custom_id"):
        await ant.messages.batches.create(requests=[_request("a", "x"), _request("a", "y")])
    with pytest.raises(anthropic.BadRequestError, match="custom_id"):
        await ant.messages.batches.create(requests=[_request("not valid!", "x")])
    with pytest.raises(anthropic.BadRequestError, match="at least 1 item"):
        await ant.messages.batches.create(requests=[])
    with pytest.raises(anthropic.NotFoundError):
        await ant.messages.batches.retrieve("msgbatch_nope")


async def test_delete_refuses_a_running_batch(
    ant: anthropic.AsyncAnthropic, http: httpx.AsyncClient
) -> None:
    await _timing(http, delay_s=3600)
    created = await ant.messages.batches.create(requests=[_request("a", "x")])
    with pytest.raises(anthropic.BadRequestError, match="in progress"):
        await ant.messages.batches.delete(created.id)


async def test_an_item_that_breaks_the_emulator_is_a_server_error(
    ant: anthropic.AsyncAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> bytes:
        raise RuntimeError("bug")

    monkeypatch.setattr(anthropic_api.DIALECT, "unary_body", broken)
    created = await ant.messages.batches.create(requests=[_request("a", "x")])
    done = await _until_ended(ant, created.id)
    assert done.request_counts.errored == 1
    result = (await _results(ant, done.id))["a"].result
    assert result.type == "errored"
    assert result.error.error.type == "api_error"


async def test_the_batch_s_beta_header_applies_to_every_item(
    ant: anthropic.AsyncAnthropic,
) -> None:
    weather = {
        "name": "get_weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
    params = {
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [weather],
        "max_tokens": 2048,
    }
    request = _request("a", "call get_weather for Paris", **params)
    created = await ant.messages.batches.create(
        requests=[request],
        extra_headers={"Anthropic-Beta": f"other-beta, {INTERLEAVED_BETA}"},
    )
    done = await _until_ended(ant, created.id)
    result = (await _results(ant, done.id))["a"].result
    assert result.type == "succeeded"
    assert [b.type for b in result.message.content] == ["thinking", "tool_use", "thinking", "text"]
