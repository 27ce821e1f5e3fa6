"""Batch jobs over HTTP end to end: the official openai and anthropic SDKs, unchanged,
against the gateway, a real orchestrator running the batches through its call path (mesh
mode) on its ledger database, and the emulator; two API keys of two tenants."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from llmesh.gateway import GatewaySettings, RunningGateway, start
from llmesh.services.auth import open_key_store
from llmesh.services.batch.native_seam import NativeFactory
from llmesh.services.common.batch_settings import BatchConfig
from llmesh.services.orchestrator.server import serve
from tests.batch.test_executor import MemoryBatches
from tests.support.mesh import Mesh

# the gateway's own orchestrator is started here: the direct-path variant adds nothing
pytestmark = pytest.mark.parametrize("mesh", ["gateway"], indirect=True)


@dataclass
class BatchMesh:
    gateway: RunningGateway
    keys: dict[str, str]
    """An API key per tenant."""
    clients: list[openai.AsyncOpenAI | anthropic.AsyncAnthropic] = field(default_factory=list)
    """The clients made, closed with the mesh."""

    def openai(self, tenant: str = "acme") -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(
            base_url=f"{self.gateway.url}/v1", api_key=self.keys[tenant], max_retries=0, timeout=30
        )
        self.clients.append(client)
        return client

    def anthropic(self, tenant: str = "acme") -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(
            base_url=self.gateway.url, api_key=self.keys[tenant], max_retries=0, timeout=30
        )
        self.clients.append(client)
        return client


async def _keys(url: str, tenants: list[str]) -> dict[str, str]:
    store = await open_key_store(url)
    try:
        return {tenant: (await store.create(tenant))[1] for tenant in tenants}
    finally:
        await store.aclose()


@asynccontextmanager
async def _batch_mesh(
    mesh: Mesh, tmp_path: Path, native: NativeFactory | None = None, **batch: Any
) -> AsyncIterator[BatchMesh]:
    """An orchestrator on its own ledger database (with a key for each of two tenants) and
    a gateway in front of it, on the session mesh's emulator and processor; `native` gives
    the providers' batch APIs."""
    assert mesh.config is not None
    url = f"sqlite:///{tmp_path}/ledger.db"
    keys = await _keys(url, ["acme", "globex"])
    config = replace(
        mesh.config,
        database_url=url,
        batch=BatchConfig(**{"retry_backoff": 0.0, "poll_interval": 0.1, **batch}),
    )
    orchestrator = await serve(config, address="127.0.0.1:0", env=mesh.env(), native=native)
    gateway = await start(
        GatewaySettings(
            orchestrator_address=f"127.0.0.1:{orchestrator.port}",
            processor_address=mesh.processor_address,
            key_store_url=url,
            shutdown_grace=5,
        )
    )
    running = BatchMesh(gateway, keys)
    try:
        yield running
    finally:
        for client in running.clients:
            await client.close()
        await gateway.stop()
        await orchestrator.stop(1)


@pytest.fixture
async def batch_mesh(mesh: Mesh, tmp_path: Path) -> AsyncIterator[BatchMesh]:
    async with _batch_mesh(mesh, tmp_path) as running:
        yield running


def _line(custom_id: str, url: str, body: dict[str, Any]) -> bytes:
    return orjson.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


async def _finished(client: openai.AsyncOpenAI, batch_id: str) -> Any:
    for _ in range(2400):  # bounded: two minutes at most
        batch = await client.batches.retrieve(batch_id)
        if batch.status in ("completed", "failed", "cancelled", "expired"):
            return batch
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch {batch_id} did not finish: {batch.status}")


async def _output(client: openai.AsyncOpenAI, file_id: str) -> dict[str, Any]:
    content = await client.files.content(file_id)
    lines = [orjson.loads(raw) for raw in content.content.splitlines()]
    return {line["custom_id"]: line for line in lines}


async def test_openai_sdk_chat_batch_runs_on_the_mesh(batch_mesh: BatchMesh) -> None:
    client = batch_mesh.openai()
    chat = "/v1/chat/completions"
    lines = [
        _line(
            f"q{i}",
            chat,
            {"model": "emulator/echo", "messages": [{"role": "user", "content": f"question {i}"}]},
        )
        for i in range(5)
    ]
    file = await client.files.create(file=("chat.jsonl", b"\n".join(lines)), purpose="batch")
    batch = await client.batches.create(
        input_file_id=file.id, endpoint=chat, completion_window="24h", metadata={"run": "e2e"}
    )
    done = await _finished(client, batch.id)
    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (5, 5)
    assert done.metadata == {"run": "e2e"}
    out = await _output(client, done.output_file_id)
    assert sorted(out) == [f"q{i}" for i in range(5)]
    response = out["q3"]["response"]
    assert response["status_code"] == 200
    body = openai.types.chat.ChatCompletion.model_validate(response["body"])
    assert "question 3" in (body.choices[0].message.content or "")
    assert body.id == f"chatcmpl-{response['request_id']}"
    assert body.usage is not None and body.usage.prompt_tokens > 0


async def test_openai_sdk_embeddings_batch_runs_on_the_mesh(batch_mesh: BatchMesh) -> None:
    client = batch_mesh.openai()
    url = "/v1/embeddings"
    model = "openai/text-embedding-3-small"
    lines = [
        _line(
            "floats", url, {"model": model, "input": ["alpha", "beta"], "encoding_format": "float"}
        ),
        _line("packed", url, {"model": model, "input": "gamma", "encoding_format": "base64"}),
    ]
    file = await client.files.create(file=("emb.jsonl", b"\n".join(lines)), purpose="batch")
    batch = await client.batches.create(
        input_file_id=file.id, endpoint=url, completion_window="24h"
    )
    done = await _finished(client, batch.id)
    assert done.status == "completed"
    out = await _output(client, done.output_file_id)
    floats = out["floats"]["response"]["body"]
    assert floats["object"] == "list"
    assert len(floats["data"]) == 2
    assert all(isinstance(x, float) for x in floats["data"][0]["embedding"])
    # the same vector the interactive endpoint gives, in the form asked for
    direct = await client.embeddings.create(model=model, input="gamma", encoding_format="base64")
    assert out["packed"]["response"]["body"]["data"][0]["embedding"] == direct.data[0].embedding


async def test_a_tenant_cannot_read_another_tenants_batch(batch_mesh: BatchMesh) -> None:
    acme, globex = batch_mesh.openai("acme"), batch_mesh.openai("globex")
    line = _line(
        "a",
        "/v1/chat/completions",
        {"model": "emulator/echo", "messages": [{"role": "user", "content": "x"}]},
    )
    file = await acme.files.create(file=("a.jsonl", line), purpose="batch")
    batch = await acme.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    done = await _finished(acme, batch.id)
    with pytest.raises(openai.NotFoundError):
        await globex.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        await globex.files.content(done.output_file_id)
    with pytest.raises(openai.NotFoundError):
        await globex.files.retrieve(file.id)
    assert batch.id not in [b.id async for b in globex.batches.list()]
    assert batch.id in [b.id async for b in acme.batches.list()]
    with pytest.raises(anthropic.NotFoundError):
        await batch_mesh.anthropic("globex").messages.batches.retrieve(batch.id)


async def test_a_line_the_mesh_refuses_fails_the_create_with_a_400(batch_mesh: BatchMesh) -> None:
    client = batch_mesh.openai()
    line = _line(
        "a",
        "/v1/chat/completions",
        {"model": "no-such/model", "messages": [{"role": "user", "content": "x"}]},
    )
    file = await client.files.create(file=("a.jsonl", line), purpose="batch")
    with pytest.raises(openai.APIStatusError) as caught:
        await client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
    assert caught.value.status_code in (400, 404)
    assert "custom_id 'a'" in caught.value.message


async def test_anthropic_sdk_message_batch_runs_on_the_mesh(batch_mesh: BatchMesh) -> None:
    client = batch_mesh.anthropic()
    requests: Any = [
        {
            "custom_id": f"m{i}",
            "params": {
                "model": "emulator/echo",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": f"say {i}"}],
            },
        }
        for i in range(3)
    ]
    batch = await client.messages.batches.create(requests=requests)
    for _ in range(2400):  # bounded: two minutes at most
        batch = await client.messages.batches.retrieve(batch.id)
        if batch.processing_status == "ended":
            break
        await asyncio.sleep(0.05)
    assert batch.processing_status == "ended"
    assert batch.request_counts.succeeded == 3
    results = {r.custom_id: r.result async for r in await client.messages.batches.results(batch.id)}
    assert sorted(results) == ["m0", "m1", "m2"]
    first = results["m1"]
    assert first.type == "succeeded"
    assert first.message.content[0].type == "text"
    assert "say 1" in first.message.content[0].text


async def test_cancel_through_the_sdk(mesh: Mesh, tmp_path: Path) -> None:
    lines = [
        _line(
            f"c{i}",
            "/v1/chat/completions",
            {"model": "emulator/echo", "messages": [{"role": "user", "content": "x"}]},
        )
        for i in range(20)
    ]
    # one item every two seconds: the batch is still running when the cancel comes
    async with _batch_mesh(mesh, tmp_path, concurrency=1, items_per_second=0.5) as running:
        client = running.openai()
        file = await client.files.create(file=("c.jsonl", b"\n".join(lines)), purpose="batch")
        batch = await client.batches.create(
            input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        cancelled = await client.batches.cancel(batch.id)
        assert cancelled.status in ("cancelling", "cancelled")
        done = await _finished(client, batch.id)
        assert done.status == "cancelled"
        assert done.cancelled_at is not None
        assert done.request_counts is not None
        assert done.request_counts.completed < 20
        with pytest.raises(openai.ConflictError):
            await client.batches.cancel(batch.id)
        # every item the cancel stopped is in the error file, as OpenAI lists them
        ran = await _output(client, done.output_file_id) if done.output_file_id else {}
        assert done.error_file_id is not None
        stopped = await _output(client, done.error_file_id)
        assert sorted([*ran, *stopped]) == sorted(f"c{i}" for i in range(20))
        for line in stopped.values():
            assert line["response"] is None
            assert line["error"]["code"] == "batch_cancelled"
        # and in the Anthropic results, each as canceled
        results = {
            r.custom_id: r.result
            async for r in await running.anthropic().messages.batches.results(batch.id)
        }
        assert sorted(results) == sorted(f"c{i}" for i in range(20))
        assert {results[c].type for c in stopped} == {"canceled"}
        assert {results[c].type for c in ran} <= {"succeeded"}


async def test_the_direct_http_path_answers_batch_routes_with_501(mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=mesh.direct_url, timeout=10) as http:
        openai_shaped = await http.get("/v1/batches")
        anthropic_shaped = await http.get("/v1/messages/batches")
    assert openai_shaped.status_code == 501
    assert "not the direct HTTP path" in openai_shaped.json()["error"]["message"]
    assert anthropic_shaped.status_code == 501
    assert anthropic_shaped.json()["type"] == "error"


async def test_openai_sdk_batch_in_provider_native_mode(mesh: Mesh, tmp_path: Path) -> None:
    """A batch submitted to a provider's own batch API (here the in-memory one the batch
    core's tests use: it answers each item with its own text), downloaded the same way."""
    api = MemoryBatches(polls=1)
    lines = [
        _line(
            name,
            "/v1/chat/completions",
            {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": name}]},
        )
        for name in ("alpha", "refuse", "gamma")
    ]
    async with _batch_mesh(
        mesh, tmp_path, native=lambda _: api, native_poll_interval=0.05, native_poll_max=0.1
    ) as running:
        client = running.openai()
        file = await client.files.create(file=("n.jsonl", b"\n".join(lines)), purpose="batch")
        batch = await client.batches.create(
            input_file_id=file.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            extra_body={"mode": "provider_native"},
        )
        done = await _finished(client, batch.id)
        assert len(api.batches) == 1  # one native batch, holding every item
        assert done.status == "completed"
        assert done.request_counts is not None
        assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
        out = await _output(client, done.output_file_id)
        assert sorted(out) == ["alpha", "gamma"]
        body = openai.types.chat.ChatCompletion.model_validate(out["gamma"]["response"]["body"])
        assert body.choices[0].message.content == "gamma"
        errors = await _output(client, done.error_file_id)
        assert errors["refuse"]["response"]["status_code"] == 400
        assert errors["refuse"]["response"]["body"]["error"]["message"] == "refused"


async def _clear_fault(mesh: Mesh, model: str) -> None:
    async with httpx.AsyncClient() as http:
        reply = await http.delete(f"{mesh.emulator_url}/emulator/faults", params={"model": model})
        reply.raise_for_status()


async def test_dead_letters_are_in_the_error_file(mesh: Mesh, tmp_path: Path) -> None:
    doomed = "echo-doomed-http"  # every call of this model fails upstream
    lines = [
        _line(
            custom_id,
            "/v1/chat/completions",
            {"model": f"emulator/{model}", "messages": [{"role": "user", "content": "x"}]},
        )
        for custom_id, model in (("fine", "echo"), ("doomed", doomed))
    ]
    mesh.set_fault(doomed, "server_error")
    try:
        async with _batch_mesh(mesh, tmp_path, max_attempts=2) as running:
            client = running.openai()
            file = await client.files.create(file=("d.jsonl", b"\n".join(lines)), purpose="batch")
            batch = await client.batches.create(
                input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h"
            )
            done = await _finished(client, batch.id)
            assert done.status == "completed"
            assert done.request_counts is not None
            assert (done.request_counts.completed, done.request_counts.failed) == (1, 1)
            assert sorted(await _output(client, done.output_file_id)) == ["fine"]
            errors = await _output(client, done.error_file_id)
            response = errors["doomed"]["response"]
            assert response["status_code"] >= 500
            assert response["body"]["error"]["type"] == "api_error"
            assert response["body"]["error"]["message"]
            results = {
                r.custom_id: r.result
                async for r in await running.anthropic().messages.batches.results(batch.id)
            }
            assert results["fine"].type == "succeeded"
            assert results["doomed"].type == "errored"
    finally:
        await _clear_fault(mesh, doomed)
