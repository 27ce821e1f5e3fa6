"""OpenAI's Files and Batch APIs on the emulator, through the official SDK."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import openai
import pytest
from openai.types import Batch

TERMINAL = ("completed", "failed", "expired", "cancelled")


def _line(custom_id: str, text: str, model: str = "gpt-4o-mini", **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}], **body},
    }


async def _upload(oai: openai.AsyncOpenAI, lines: list[Any]) -> str:
    raw = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    uploaded = await oai.files.create(file=("input.jsonl", raw.encode()), purpose="batch")
    return uploaded.id


async def _create(
    oai: openai.AsyncOpenAI, lines: list[Any], endpoint: str = "/v1/chat/completions"
) -> Batch:
    file_id = await _upload(oai, lines)
    return await oai.batches.create(
        input_file_id=file_id,
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
    )


async def _until(oai: openai.AsyncOpenAI, batch_id: str, statuses: tuple[str, ...]) -> Batch:
    """Poll the batch until its status is one of `statuses` (for up to ten seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        batch = await oai.batches.retrieve(batch_id)
        if batch.status in statuses or loop.time() > deadline:
            return batch
        await asyncio.sleep(0.01)


async def _jsonl(oai: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    content = await oai.files.content(file_id)
    return [json.loads(line) for line in content.text.splitlines()]


async def _timing(http: httpx.AsyncClient, **values: float) -> None:
    resp = await http.post("/emulator/batches", json=values)
    assert resp.status_code == 200, resp.text


async def test_batch_waits_its_delay_then_answers_like_the_chat_endpoint(
    oai: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    await _timing(http, delay_s=3600)
    created = await _create(oai, [_line("a", "The quick brown fox"), _line("b", "hello there")])
    assert created.status == "validating"
    assert created.completion_window == "24h"
    assert created.expires_at == created.created_at + 86400
    running = await _until(oai, created.id, ("in_progress",))
    assert running.status == "in_progress"
    assert running.request_counts is not None
    assert running.request_counts.total == 2
    assert running.request_counts.completed == 0
    assert running.output_file_id is None
    await _timing(http, delay_s=0)  # wakes the waiting batch
    done = await _until(oai, created.id, TERMINAL)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 0)
    assert done.completed_at is not None and done.in_progress_at is not None
    assert done.error_file_id is None
    assert done.model == "gpt-4o-mini"
    lines = await _jsonl(oai, done.output_file_id)
    assert [line["custom_id"] for line in lines] == ["a", "b"]
    direct = await oai.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "The quick brown fox"}]
    )
    first = lines[0]
    assert first["id"].startswith("batch_req_")
    assert first["error"] is None
    assert first["response"]["status_code"] == 200
    assert first["response"]["request_id"].startswith("req_")
    body = first["response"]["body"]
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == direct.choices[0].message.content
    assert direct.usage is not None
    assert body["usage"]["prompt_tokens"] == direct.usage.prompt_tokens
    assert body["usage"]["completion_tokens"] == direct.usage.completion_tokens
    assert done.usage is not None
    assert done.usage.output_tokens == sum(
        line["response"]["body"]["usage"]["completion_tokens"] for line in lines
    )
    output = await oai.files.retrieve(done.output_file_id or "")
    assert output.purpose == "batch_output"
    assert output.filename == f"batch_{done.id}_output.jsonl"


async def test_embeddings_batch_gives_the_endpoint_s_vectors(oai: openai.AsyncOpenAI) -> None:
    line = {
        "custom_id": "e1",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": "text-embedding-3-small", "input": ["hello", "world"]},
    }
    created = await _create(oai, [line], endpoint="/v1/embeddings")
    done = await _until(oai, created.id, TERMINAL)
    assert done.status == "completed"
    (result,) = await _jsonl(oai, done.output_file_id)
    body = result["response"]["body"]
    direct = await oai.embeddings.create(
        model="text-embedding-3-small", input=["hello", "world"], encoding_format="float"
    )
    assert [d["embedding"] for d in body["data"]] == [d.embedding for d in direct.data]
    assert body["usage"]["prompt_tokens"] == direct.usage.prompt_tokens


async def test_faults_and_invalid_bodies_fail_single_items(
    oai: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    rule = {"model": "gpt-4o-mini", "fault": "rate_limit", "times": 1}
    assert (await http.post("/emulator/faults", json=rule)).status_code == 200
    cut = {"model": "cut-model", "fault": "cut"}
    assert (await http.post("/emulator/faults", json=cut)).status_code == 200
    created = await _create(
        oai,
        [
            _line("limited", "one"),
            _line("fine", "two"),
            {**_line("bad", "x"), "body": {"model": "gpt-4o-mini"}},
            _line("cut", "three", model="cut-model"),
        ],
    )
    done = await _until(oai, created.id, TERMINAL)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 3)
    ok = await _jsonl(oai, done.output_file_id)
    assert [line["custom_id"] for line in ok] == ["fine"]
    failed = {line["custom_id"]: line for line in await _jsonl(oai, done.error_file_id)}
    assert set(failed) == {"limited", "bad", "cut"}
    limited = failed["limited"]["response"]
    assert limited["status_code"] == 429
    assert limited["body"]["error"]["code"] == "rate_limit_exceeded"
    assert failed["bad"]["response"]["status_code"] == 400
    assert failed["bad"]["response"]["body"]["error"]["param"] == "messages"
    assert failed["cut"]["response"]["status_code"] == 500
    assert failed["cut"]["response"]["body"]["error"]["type"] == "server_error"
    assert all(line["error"] is None for line in failed.values())
    stats = (await http.get("/emulator/stats")).json()
    assert stats["by_model"]["gpt-4o-mini"]["requests"] == 3  # each item counted as a call
    assert stats["by_model"]["cut-model"]["requests"] == 1


async def test_invalid_lines_fail_the_batch_with_their_line_numbers(
    oai: openai.AsyncOpenAI,
) -> None:
    embeddings_line = {**_line("c", "x"), "url": "/v1/embeddings"}
    created = await _create(oai, [_line("a", "x"), "{not json", _line("a", "y"), embeddings_line])
    done = await _until(oai, created.id, TERMINAL)
    assert done.status == "failed"
    assert done.failed_at is not None
    assert done.errors is not None and done.errors.data is not None
    assert [(e.code, e.line) for e in done.errors.data] == [
        ("invalid_json_line", 2),
        ("duplicate_custom_id", 3),
        ("invalid_url", 4),
    ]
    assert done.request_counts is not None and done.request_counts.total == 0
    assert done.output_file_id is None and done.error_file_id is None


async def test_cancel_marks_unrun_requests_cancelled(
    oai: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    await _timing(http, delay_s=3600)
    created = await _create(oai, [_line("a", "x"), _line("b", "y")])
    cancelling = await oai.batches.cancel(created.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    done = await _until(oai, created.id, TERMINAL)
    assert done.status == "cancelled"
    assert done.cancelled_at is not None
    assert done.output_file_id is None
    lines = await _jsonl(oai, done.error_file_id)
    assert [(line["custom_id"], line["response"], line["error"]["code"]) for line in lines] == [
        ("a", None, "batch_cancelled"),
        ("b", None, "batch_cancelled"),
    ]
    with pytest.raises(openai.ConflictError):
        await oai.batches.cancel(created.id)


async def test_a_batch_past_its_window_expires(
    oai: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    await _timing(http, delay_s=3600, expiry_s=0.05)
    created = await _create(oai, [_line("a", "x")])
    done = await _until(oai, created.id, TERMINAL)
    assert done.status == "expired"
    assert done.expired_at is not None
    (line,) = await _jsonl(oai, done.error_file_id)
    assert line["custom_id"] == "a"
    assert line["response"] is None
    assert line["error"]["code"] == "batch_expired"
    assert done.request_counts is not None and done.request_counts.failed == 1


async def test_list_pages_newest_first(oai: openai.AsyncOpenAI) -> None:
    ids = [(await _create(oai, [_line("a", str(i))])).id for i in range(3)]
    first = await oai.batches.list(limit=2)
    assert [b.id for b in first.data] == ids[::-1][:2]
    assert first.has_more
    every = [b.id async for b in await oai.batches.list(limit=2)]
    assert every == ids[::-1]


async def test_files_upload_retrieve_content_delete(oai: openai.AsyncOpenAI) -> None:
    uploaded = await oai.files.create(file=("x.jsonl", b'{"a": 1}\n'), purpose="batch")
    assert uploaded.object == "file" and uploaded.bytes == 9 and uploaded.purpose == "batch"
    assert (await oai.files.retrieve(uploaded.id)).filename == "x.jsonl"
    assert (await oai.files.content(uploaded.id)).content == b'{"a": 1}\n'
    deleted = await oai.files.delete(uploaded.id)
    assert deleted.deleted and deleted.id == uploaded.id
    with pytest.raises(openai.NotFoundError):
        await oai.files.retrieve(uploaded.id)
    with pytest.raises(openai.BadRequestError, match="jsonl"):
        await oai.files.create(file=("x.txt", b"{}"), purpose="batch")


async def test_files_list_filters_and_pages(oai: openai.AsyncOpenAI) -> None:
    ids = [
        (await oai.files.create(file=(f"{i}.jsonl", b"{}"), purpose="batch")).id for i in range(3)
    ]
    other = await oai.files.create(file=("v.png", b"png"), purpose="vision")
    first = await oai.files.list(purpose="batch", limit=2)
    assert [f.id for f in first.data] == ids[::-1][:2]
    assert [f.id async for f in await oai.files.list(purpose="batch", limit=2)] == ids[::-1]
    oldest = await oai.files.list(order="asc")
    assert [f.id for f in oldest.data] == [*ids, other.id]


async def test_create_refuses_unknown_files_and_endpoints(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await oai.batches.create(
            input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h"
        )
    file_id = await _upload(oai, [_line("a", "x")])
    with pytest.raises(openai.BadRequestError) as bad:
        await oai.batches.create(
            input_file_id=file_id, endpoint="/v1/moderations", completion_window="24h"
        )
    assert bad.value.param == "endpoint"  # type: ignore[attr-defined]
    with pytest.raises(openai.NotFoundError):
        await oai.batches.retrieve("batch_nope")


async def test_reset_forgets_batches_and_restores_timing(
    oai: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    await _timing(http, delay_s=3600)
    created = await _create(oai, [_line("a", "x")])
    assert (await http.post("/emulator/reset")).status_code == 200
    assert (await http.get("/emulator/batches")).json() == {"delay_s": 0.0, "expiry_s": 86400.0}
    with pytest.raises(openai.NotFoundError):
        await oai.batches.retrieve(created.id)
    bad = await http.post("/emulator/batches", json={"delay_s": -1})
    assert bad.status_code == 400


async def test_a_streaming_item_is_refused(oai: openai.AsyncOpenAI) -> None:
    created = await _create(oai, [_line("s", "x", stream=True)])
    done = await _until(oai, created.id, TERMINAL)
    (line,) = await _jsonl(oai, done.error_file_id)
    assert line["response"]["status_code"] == 400
    assert line["response"]["body"]["error"]["param"] == "stream"
