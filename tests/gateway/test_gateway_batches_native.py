"""Provider-native batches end to end: the official openai and anthropic SDKs, unchanged,
against the gateway; an orchestrator whose batches for OpenAI and Anthropic targets go to
those providers' own batch APIs through the real clients (`native_batches_for`), here the
emulator's; the ledger rows priced at the providers' batch rate."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmesh.services.core.usage import Usage
from llmesh.services.ledger import PriceTable
from llmesh.services.orchestrator.batch_native import native_batches_for
from tests.batch.test_executor import wait_for
from tests.gateway.test_gateway_batches_e2e import BatchMesh, _batch_mesh, _finished, _line, _output
from tests.support.mesh import Mesh

pytestmark = pytest.mark.parametrize("mesh", ["gateway"], indirect=True)


@pytest.fixture
async def native_mesh(mesh: Mesh, tmp_path: Path) -> AsyncIterator[BatchMesh]:
    async with httpx.AsyncClient(base_url=mesh.emulator_url) as admin:
        (await admin.post("/emulator/batches", json={"delay_s": 0.2})).raise_for_status()
    try:
        async with _batch_mesh(
            mesh,
            tmp_path,
            native=native_batches_for,
            native_poll_interval=0.05,
            native_poll_max=0.2,
        ) as running:
            yield running
    finally:
        async with httpx.AsyncClient(base_url=mesh.emulator_url) as admin:
            (await admin.post("/emulator/batches", json={"delay_s": 0})).raise_for_status()


def _ledger(tmp_path: Path, provider: str) -> list[tuple[str, int, int, float]]:
    conn = sqlite3.connect(tmp_path / "ledger.db")
    try:
        rows = conn.execute(
            "SELECT model, input_tokens, output_tokens, cost_usd FROM usage_records"
            " WHERE provider = ? ORDER BY ts",
            (provider,),
        ).fetchall()
    finally:
        conn.close()
    return [(str(m), int(i), int(o), float(c)) for m, i, o, c in rows]


async def _rows(tmp_path: Path, provider: str, count: int) -> list[tuple[str, int, int, float]]:
    async def enough() -> bool:
        return len(_ledger(tmp_path, provider)) >= count

    await wait_for(enough, f"{count} ledger rows of {provider}")
    return _ledger(tmp_path, provider)


def _assert_batch_priced(rows: list[tuple[str, int, int, float]], provider: str) -> None:
    prices = PriceTable.defaults()
    for model, input_tokens, output_tokens, cost in rows:
        usage = Usage(input_tokens, output_tokens)
        full = prices.cost(provider, model, usage)
        assert full > 0
        assert cost == pytest.approx(full / 2)  # the batch API's half price
        assert cost == pytest.approx(prices.cost(provider, model, usage, batch=True))


async def test_openai_sdk_batch_goes_to_openais_batch_api(
    native_mesh: BatchMesh, mesh: Mesh, tmp_path: Path
) -> None:
    client = native_mesh.openai()
    chat = "/v1/chat/completions"
    lines = [
        _line(
            f"q{i}",
            chat,
            {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": f"ask {i}"}]},
        )
        for i in range(3)
    ]
    file = await client.files.create(file=("n.jsonl", b"\n".join(lines)), purpose="batch")
    batch = await client.batches.create(
        input_file_id=file.id, endpoint=chat, completion_window="24h"
    )  # mode auto: every item has a batch API behind it
    done = await _finished(client, batch.id)
    assert done.status == "completed", done
    assert done.request_counts is not None
    assert (done.request_counts.total, done.request_counts.completed) == (3, 3)
    out = await _output(client, done.output_file_id)
    assert sorted(out) == ["q0", "q1", "q2"]
    body = openai.types.chat.ChatCompletion.model_validate(out["q1"]["response"]["body"])
    assert body.choices[0].message.content == "ask 1"  # the emulator echoes
    assert body.usage is not None and body.usage.prompt_tokens > 0
    # the emulator's batch API answered (its chat endpoint never saw these items)
    async with httpx.AsyncClient(base_url=mesh.emulator_url) as admin:
        listed = (await admin.get("/v1/batches", headers={"authorization": "Bearer x"})).json()
    assert any(b["request_counts"]["total"] == 3 for b in listed["data"])
    rows = await _rows(tmp_path, "openai", 3)
    assert len(rows) == 3
    _assert_batch_priced(rows, "openai")


async def test_anthropic_sdk_batch_goes_to_anthropics_batch_api(
    native_mesh: BatchMesh, mesh: Mesh, tmp_path: Path
) -> None:
    client = native_mesh.anthropic()
    requests: Any = [
        {
            "custom_id": f"m{i}",
            "params": {
                "model": "anthropic/claude-haiku-4-5",
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
    second = results["m2"]
    assert second.type == "succeeded"
    assert second.message.content[0].type == "text"
    assert second.message.content[0].text == "say 2"
    assert second.message.usage.input_tokens > 0
    async with httpx.AsyncClient(base_url=mesh.emulator_url) as admin:
        listed = (await admin.get("/v1/messages/batches", headers={"x-api-key": "x"})).json()
    assert any(b["request_counts"]["succeeded"] == 3 for b in listed["data"])
    rows = await _rows(tmp_path, "anthropic", 3)
    assert len(rows) == 3
    _assert_batch_priced(rows, "anthropic")
