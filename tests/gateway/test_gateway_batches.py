"""OpenAI's files and batches endpoints on the gateway, driven by the official openai SDK
unchanged, against a fake BatchService (`tests.gateway.batch_fakes`)."""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from google.protobuf import json_format

from llmesh.gateway import GatewaySettings, RunningGateway, start
from llmesh.v1 import batches_pb2, embeddings_pb2
from tests.gateway.batch_fakes import FAIL_MODEL, FakeBatchServer, start_fake_batches, vector

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
        max_body_bytes=64 * 1024,
        max_batch_file_bytes=3 * 1024 * 1024,
        ready_service="llmesh.v1.BatchService",
        shutdown_grace=5,
    )
    running = await start(settings)
    yield running
    await running.stop()


def _client(gateway: RunningGateway, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0, timeout=10)


@pytest.fixture
async def client(batch_gateway: RunningGateway) -> AsyncIterator[openai.AsyncOpenAI]:
    c = _client(batch_gateway, TENANT_A)
    yield c
    await c.close()


@pytest.fixture
async def other(batch_gateway: RunningGateway) -> AsyncIterator[openai.AsyncOpenAI]:
    c = _client(batch_gateway, TENANT_B)
    yield c
    await c.close()


def chat_line(custom_id: str, text: str, model: str = "fake/model", **extra: Any) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def embed_line(custom_id: str, inputs: list[str], **extra: Any) -> dict[str, Any]:
    body = {"model": "fake/embedder", "input": inputs, **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": body}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


async def upload(client: openai.AsyncOpenAI, lines: list[dict[str, Any]]) -> str:
    file = await client.files.create(file=("in.jsonl", jsonl(lines)), purpose="batch")
    return file.id


async def finished(client: openai.AsyncOpenAI, batch_id: str) -> Any:
    """The batch once it reached a final status (bounded polling)."""
    for _ in range(2400):  # bounded: a minute at most
        batch = await client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        await asyncio.sleep(0.025)
    raise AssertionError(f"batch {batch_id} did not finish: {batch.status}")


async def lines_of(client: openai.AsyncOpenAI, file_id: str) -> dict[str, Any]:
    content = await client.files.content(file_id)
    out = {}
    for raw in content.content.splitlines():
        line = orjson.loads(raw)
        out[line["custom_id"]] = line
    return out


async def test_chat_batch_upload_create_poll_download(
    client: openai.AsyncOpenAI, batch_server: FakeBatchServer
) -> None:
    file_id = await upload(client, [chat_line("a", "hello"), chat_line("b", "world")])
    stored = await client.files.retrieve(file_id)
    assert (stored.purpose, stored.filename, stored.status) == ("batch", "in.jsonl", "processed")
    # every line reached the service as a BatchItem translated by the chat parser
    sent = batch_server.service.uploads[0].decode().splitlines()
    item = json_format.Parse(sent[0], batches_pb2.BatchItem())
    assert item.custom_id == "a"
    assert item.chat.model == "fake/model"
    assert item.chat.messages[0].content == "hello"

    batch = await client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"job": "nightly"},
    )
    assert batch.object == "batch"
    assert batch.input_file_id == file_id
    assert batch.metadata == {"job": "nightly"}
    assert batch.endpoint == "/v1/chat/completions"
    done = await finished(client, batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (2, 2)
    assert done.completed_at is not None
    assert done.error_file_id is None
    assert done.output_file_id is not None

    out = await lines_of(client, done.output_file_id)
    assert set(out) == {"a", "b"}
    line = out["b"]
    assert line["error"] is None
    assert line["id"].startswith("batch_req_")
    response = line["response"]
    assert response["status_code"] == 200
    assert response["request_id"] == "req-b"
    body = response["body"]
    assert body["object"] == "chat.completion"
    assert body["id"] == "chatcmpl-req-b"
    assert body["choices"][0]["message"]["content"] == "echo: world"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 7
    # the body parses as the SDK's own chat completion
    assert openai.types.chat.ChatCompletion.model_validate(body).choices[0].message.content

    output = await client.files.retrieve(done.output_file_id)
    assert output.purpose == "batch_output"
    raw = (await client.files.content(done.output_file_id)).content
    assert output.bytes == len(raw)


async def test_embeddings_batch_keeps_each_lines_encoding(
    client: openai.AsyncOpenAI, batch_server: FakeBatchServer
) -> None:
    file_id = await upload(
        client,
        [embed_line("f", ["x", "y"]), embed_line("b", ["z"], encoding_format="base64")],
    )
    sent = [
        json_format.Parse(raw, batches_pb2.BatchItem())
        for raw in batch_server.service.uploads[0].decode().splitlines()
    ]
    assert sent[0].embed.encoding == embeddings_pb2.EMBEDDING_ENCODING_FLOAT
    assert sent[1].embed.encoding == embeddings_pb2.EMBEDDING_ENCODING_BASE64
    batch = await client.batches.create(
        input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h"
    )
    done = await finished(client, batch.id)
    assert done.endpoint == "/v1/embeddings"
    out = await lines_of(client, done.output_file_id)
    floats = out["f"]["response"]["body"]
    assert floats["object"] == "list"
    assert [d["embedding"] for d in floats["data"]] == [vector(0), vector(1)]
    assert floats["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    packed = out["b"]["response"]["body"]["data"][0]["embedding"]
    assert list(struct.unpack("<3f", base64.b64decode(packed))) == vector(0)


async def test_failed_items_go_to_the_error_file(client: openai.AsyncOpenAI) -> None:
    file_id = await upload(client, [chat_line("ok", "hi"), chat_line("bad", "hi", FAIL_MODEL)])
    batch = await client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = await finished(client, batch.id)
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 1)
    assert set(await lines_of(client, done.output_file_id)) == {"ok"}
    errors = await lines_of(client, done.error_file_id)
    line = errors["bad"]
    assert line["response"]["status_code"] == 400
    assert line["response"]["request_id"] == "req-bad"
    error = line["response"]["body"]["error"]
    assert error["message"] == "the provider refused the request"
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (chat_line("a", "hi") | {"method": "GET"}, "method"),
        (chat_line("a", "hi") | {"url": "/v1/responses"}, "url"),
        ({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions"}, "body"),
        (chat_line("a", "hi", temperature="hot"), "body.temperature"),
        (chat_line("a", "hi", stream=True), "body.stream"),
        (chat_line("a", "hi", n=2), "body.n"),
        (embed_line("a", []), "body.input"),
        (chat_line("", "hi"), "custom_id"),
    ],
)
async def test_a_bad_line_is_a_400_naming_it(
    client: openai.AsyncOpenAI, batch_server: FakeBatchServer, line: dict[str, Any], needle: str
) -> None:
    first = embed_line("first", ["ok"]) if line.get("url") == "/v1/embeddings" else None
    with pytest.raises(openai.BadRequestError) as caught:
        await upload(client, [first or chat_line("first", "ok"), line])
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["message"].startswith("line 2: ")
    assert needle in body["message"]
    assert batch_server.service.files == {}  # nothing was stored


async def test_a_bom_crlf_lines_and_blank_lines_are_read_as_editors_write_them(
    client: openai.AsyncOpenAI, batch_server: FakeBatchServer
) -> None:
    text = b"\xef\xbb\xbf" + orjson.dumps(chat_line("a", "x")) + b"\r\n\r\n"
    text += orjson.dumps(chat_line("b", "y")) + b"\r\n" + orjson.dumps(chat_line("c", "z"))
    await client.files.create(file=("in.jsonl", text), purpose="batch")
    sent = batch_server.service.uploads[0].decode().splitlines()
    assert [json_format.Parse(raw, batches_pb2.BatchItem()).custom_id for raw in sent] == [
        "a",
        "b",
        "c",
    ]
    with pytest.raises(openai.BadRequestError, match="line 6: "):  # blank lines count
        await client.files.create(file=("in.jsonl", text + b"\n\n[]"), purpose="batch")


async def test_duplicate_ids_mixed_urls_and_bad_json_are_refused(
    client: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await upload(client, [chat_line("a", "x"), chat_line("a", "y")])
    assert caught.value.code == "duplicate_custom_id"
    with pytest.raises(openai.BadRequestError, match="line 2: url"):
        await upload(client, [chat_line("a", "x"), embed_line("b", ["y"])])
    with pytest.raises(openai.BadRequestError, match="line 1: the body is not valid JSON"):
        await client.files.create(file=("in.jsonl", b"{nope\n"), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="no request lines"):
        await client.files.create(file=("in.jsonl", b"\n\n"), purpose="batch")
    with pytest.raises(openai.BadRequestError, match="purpose"):
        await client.files.create(
            file=("in.jsonl", jsonl([chat_line("a", "x")])), purpose="user_data"
        )


async def test_large_files_are_sent_in_chunks_and_too_large_ones_refused(
    client: openai.AsyncOpenAI, batch_server: FakeBatchServer
) -> None:
    lines = [chat_line(f"id-{i}", "x" * 900) for i in range(2000)]  # about 2.1 MB
    file_id = await upload(client, lines)
    received = batch_server.service.uploads[0]
    assert batch_server.service.chunks[0] == -(-len(received) // (1 << 20))  # 1 MiB each
    assert (await client.files.retrieve(file_id)).bytes == len(received)
    assert (await client.files.retrieve(file_id)).filename == "in.jsonl"
    items = [json_format.Parse(raw, batches_pb2.BatchItem()) for raw in received.splitlines()]
    assert [i.custom_id for i in items] == [f"id-{i}" for i in range(2000)]
    with pytest.raises(openai.APIStatusError) as caught:
        await upload(client, [chat_line(f"id-{i}", "x" * 900) for i in range(3500)])  # > 3 MiB
    assert caught.value.status_code == 413
    long_line = chat_line("long", "y" * 70_000)  # over the 64 KiB line (body) limit
    with pytest.raises(openai.BadRequestError, match="line 2: line: is larger than 65536 bytes"):
        await upload(client, [chat_line("a", "x"), long_line, chat_line("b", "x")])
    with pytest.raises(openai.BadRequestError, match="line 2001: custom_id"):
        await upload(client, [*lines, chat_line("id-0", "again")])
    assert len(batch_server.service.uploads) == 1  # nothing of a refused file was sent


async def test_cancel_a_running_batch(
    client: openai.AsyncOpenAI, batch_server: FakeBatchServer
) -> None:
    batch_server.service.hold.clear()
    file_id = await upload(client, [chat_line("a", "x"), chat_line("b", "y")])
    batch = await client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    cancelled = await client.batches.cancel(batch.id)
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None
    assert cancelled.output_file_id is None
    batch_server.service.hold.set()
    with pytest.raises(openai.ConflictError):
        await client.batches.cancel(batch.id)


async def test_a_tenant_sees_only_its_own_batches_and_files(
    client: openai.AsyncOpenAI, other: openai.AsyncOpenAI
) -> None:
    file_id = await upload(client, [chat_line("a", "x")])
    batch = await client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = await finished(client, batch.id)
    with pytest.raises(openai.NotFoundError):
        await other.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        await other.files.retrieve(file_id)
    with pytest.raises(openai.NotFoundError):
        await other.files.content(done.output_file_id)
    with pytest.raises(openai.NotFoundError):
        await other.batches.cancel(batch.id)
    with pytest.raises(openai.NotFoundError):
        await other.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert [b.id async for b in other.batches.list()] == []
    assert [b.id async for b in client.batches.list()] == [batch.id]


async def test_list_pages_by_the_last_id(client: openai.AsyncOpenAI) -> None:
    file_id = await upload(client, [chat_line("a", "x")])
    made = []
    for _ in range(5):
        batch = await client.batches.create(
            input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        made.append(batch.id)
    page = await client.batches.list(limit=2)
    assert [b.id for b in page.data] == made[::-1][:2]
    assert page.has_more
    assert [b.id async for b in client.batches.list(limit=2)] == made[::-1]
    last = await client.batches.list(limit=2, after=made[1])
    assert [b.id for b in last.data] == [made[0]]
    assert not last.has_more


async def test_output_files_exist_only_once_the_batch_ended(
    client: openai.AsyncOpenAI, batch_server: FakeBatchServer
) -> None:
    batch_server.service.hold.clear()
    file_id = await upload(client, [chat_line("a", "x")])
    batch = await client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    assert batch.status == "in_progress"
    assert batch.output_file_id is None
    with pytest.raises(openai.NotFoundError):
        await client.files.content(f"file-output-{batch.id}")
    batch_server.service.hold.set()
    await finished(client, batch.id)
    with pytest.raises(openai.NotFoundError):  # no item failed: no error file
        await client.files.content(f"file-errors-{batch.id}")
    with pytest.raises(openai.BadRequestError, match="purpose: batch"):
        await client.files.content(file_id)  # input files are not downloadable, as at OpenAI


async def test_a_broken_result_stream_is_resumed_at_its_cursor(
    client: openai.AsyncOpenAI, batch_server: FakeBatchServer
) -> None:
    file_id = await upload(client, [chat_line(f"i{n}", "x") for n in range(4)])
    batch = await client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = await finished(client, batch.id)
    batch_server.service.cut_after = 2
    out = await lines_of(client, done.output_file_id)
    assert batch_server.service.cut_after is None  # the stream was cut, once
    assert sorted(out) == ["i0", "i1", "i2", "i3"]


async def test_a_stream_that_keeps_breaking_cuts_the_download(
    client: openai.AsyncOpenAI, batch_server: FakeBatchServer, batch_gateway: RunningGateway
) -> None:
    file_id = await upload(client, [chat_line(f"i{n}", "x") for n in range(4)])
    batch = await client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = await finished(client, batch.id)
    batch_server.service.cut_after, batch_server.service.cut_always = 2, True
    headers = {"authorization": f"Bearer {TENANT_A}"}
    async with httpx.AsyncClient(base_url=batch_gateway.url, headers=headers) as http:
        got = b""
        with pytest.raises(httpx.RemoteProtocolError):  # cut: never a whole-looking file
            async with http.stream("GET", f"/v1/files/{done.output_file_id}/content") as reply:
                assert reply.status_code == 200
                async for chunk in reply.aiter_bytes():
                    got += chunk
    assert [orjson.loads(line)["custom_id"] for line in got.splitlines()] == ["i0", "i1"]
    batch_server.service.cut_after = 0  # broken before the first line: a plain error
    with pytest.raises(openai.InternalServerError):
        await client.files.content(done.output_file_id)


async def test_create_checks_its_body(client: openai.AsyncOpenAI) -> None:
    file_id = await upload(client, [chat_line("a", "x")])
    with pytest.raises(openai.BadRequestError, match="endpoint"):
        await client.batches.create(
            input_file_id=file_id, endpoint="/v1/completions", completion_window="24h"
        )
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        await client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window="48h",  # type: ignore[arg-type]
        )
    with pytest.raises(openai.BadRequestError, match="mode"):
        await client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            extra_body={"mode": "fastest"},
        )


async def test_mode_is_sent_to_the_service(
    client: openai.AsyncOpenAI, batch_server: FakeBatchServer
) -> None:
    file_id = await upload(client, [chat_line("a", "x")])
    await client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        extra_body={"mode": "provider_native"},
    )
    await client.batches.create(
        input_file_id=file_id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    modes = [r.mode for r in batch_server.service.created]
    assert modes == [batches_pb2.BATCH_MODE_PROVIDER_NATIVE, batches_pb2.BATCH_MODE_AUTO]


async def test_not_a_multipart_upload_is_a_400(batch_gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=batch_gateway.url) as http:
        reply = await http.post("/v1/files", json={"purpose": "batch"})
    assert reply.status_code == 400
    assert reply.json()["error"]["type"] == "invalid_request_error"
