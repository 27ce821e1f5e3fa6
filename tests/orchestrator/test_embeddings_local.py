"""The ``local`` provider kind: a real embedding model run in-process, micro-batched."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence

import grpc
import numpy as np
import pytest

from llmesh.services.common.config import (
    LOCAL_MODEL_PACKAGES,
    ProviderConfig,
    load_config,
    resolve_provider,
)
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.embeddings import EmbeddingRequest, unpack_floats
from llmesh.services.orchestrator.providers.embeddings import embeddings_client
from llmesh.services.orchestrator.providers.embeddings_local import LocalEmbeddings, MicroBatcher
from llmesh.services.orchestrator.providers.local_model import LOCAL_MODELS
from llmesh.v1 import embeddings_pb2, orchestrator_pb2_grpc
from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh

MODEL = "wordllama-l2-supercat"


def _client(**settings: float) -> LocalEmbeddings:
    cfg = ProviderConfig("local", "local", models=(MODEL,), **settings)  # type: ignore[arg-type]
    client = embeddings_client(resolve_provider(cfg, load_config(None, env={}).emulator, {}))
    assert isinstance(client, LocalEmbeddings)
    return client


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


async def test_a_paraphrase_is_closer_than_an_unrelated_sentence() -> None:
    client = _client()
    texts = (
        "The cat sat on the mat.",
        "A cat was sitting on the rug.",
        "Quarterly revenue grew by twelve percent.",
    )
    try:
        result = await client.embed(MODEL, EmbeddingRequest(texts), timeout=None)
    finally:
        await client.aclose()
    cat, paraphrase, revenue = (unpack_floats(v) for v in result.vectors)
    assert _cosine(cat, paraphrase) > 0.5 > _cosine(cat, revenue) + 0.3
    assert result.usage is not None and result.usage.input_tokens > len(texts)
    assert not result.usage.estimated


async def test_vectors_are_deterministic_unit_and_of_the_model_s_dimension() -> None:
    client = _client()
    request = EmbeddingRequest(("same text", "", "another"))
    try:
        first = await client.embed(MODEL, request, timeout=None)
        again = await client.embed(MODEL, request, timeout=None)
        short = await client.embed(MODEL, EmbeddingRequest(("same text",), 64), timeout=None)
    finally:
        await client.aclose()
    assert first.vectors == again.vectors
    full = [unpack_floats(v) for v in first.vectors]
    (cut,) = (unpack_floats(v) for v in short.vectors)
    assert [len(v) for v in full] == [LOCAL_MODELS[MODEL].dimensions] * 3 == [256] * 3
    assert np.linalg.norm(full[0]) == pytest.approx(1.0, abs=1e-5)
    assert full[1].tolist() == [0.0] * 256  # no tokens, no direction
    assert len(cut) == 64  # shortened, then renormalised to unit length
    assert np.linalg.norm(cut) == pytest.approx(1.0, abs=1e-5)
    assert _cosine(cut, full[0][:64]) == pytest.approx(1.0, abs=1e-5)


async def test_concurrent_calls_are_embedded_in_one_model_call() -> None:
    client = _client(batch_wait=0.05, max_batch=32)
    try:
        requests = [EmbeddingRequest((f"text number {i}", "shared")) for i in range(10)]
        alone = await client.embed(MODEL, requests[3], timeout=None)
        batcher = client.batcher(MODEL)
        before = batcher.model_calls
        results = await asyncio.gather(*(client.embed(MODEL, r, timeout=None) for r in requests))
        assert batcher.model_calls - before == 1
        assert results[3].vectors == alone.vectors  # each call gets its own rows back
        assert results[0].vectors[1] == results[9].vectors[1]
        # more texts than max_batch: split into as many model calls as needed
        before = batcher.model_calls
        await asyncio.gather(
            *(client.embed(MODEL, EmbeddingRequest(("x",) * 20), timeout=None) for _ in range(3))
        )
        assert batcher.model_calls - before == 3
    finally:
        await client.aclose()


async def test_the_batcher_never_blocks_the_event_loop() -> None:
    started = asyncio.Event()

    def slow(texts: Sequence[str], dims: int | None) -> tuple[np.ndarray, list[int]]:
        import time

        time.sleep(0.2)
        return np.zeros((len(texts), 2), dtype=np.float32), [1] * len(texts)

    batcher = MicroBatcher(lambda: slow, max_batch=8, max_wait=0.0)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        started.set()
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    await started.wait()
    try:
        vectors, counts = await batcher.embed(("a", "b"), None)
    finally:
        ticker.cancel()
        await batcher.aclose()
    assert vectors.shape == (2, 2) and counts == [1, 1]
    assert ticks >= 10


async def test_unknown_models_and_too_many_dimensions_are_refused() -> None:
    client = _client()
    try:
        with pytest.raises(LlmeshError) as unknown:
            await client.embed("nope", EmbeddingRequest(("x",)), timeout=None)
        with pytest.raises(LlmeshError) as wide:
            await client.embed(MODEL, EmbeddingRequest(("x",), 257), timeout=None)
    finally:
        await client.aclose()
    assert unknown.value.reason is Reason.MODEL_NOT_FOUND
    assert wide.value.reason is Reason.INVALID_REQUEST


async def test_a_chat_call_to_a_local_model_is_refused_for_the_next_target() -> None:
    from llmesh.services.core.chat import ChatRequest
    from llmesh.services.orchestrator.providers import default_registry

    cfg = ProviderConfig("local", "local", models=(MODEL,))
    chat = default_registry().build(resolve_provider(cfg, load_config(None, env={}).emulator, {}))
    with pytest.raises(LlmeshError) as refused:
        async for _ in chat.stream(MODEL, ChatRequest(messages=()), timeout=None):
            pass
    assert refused.value.reason is Reason.PROVIDER_NOT_CONFIGURED
    await chat.aclose()


def test_the_default_config_has_the_local_provider_when_its_package_is_installed() -> None:
    local = load_config(None, env={}).providers["local"]
    assert (local.kind, local.models) == ("local", (MODEL,))
    assert {m: s.package for m, s in LOCAL_MODELS.items()} == LOCAL_MODEL_PACKAGES


def test_without_the_package_there_is_no_local_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wordllama" else real(name)
    )
    assert "local" not in load_config(None, env={}).providers


async def test_embed_rpc_routes_local_models_free_and_counted(mesh: Mesh) -> None:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        reply = await stub.Embed(
            embeddings_pb2.EmbedRequest(
                model=f"local/{MODEL}",
                inputs=[
                    "The cat sat on the mat.",
                    "A cat was sitting on the rug.",
                    "Revenue grew.",
                ],
            ),
            timeout=10,
        )
    assert (reply.provider, reply.model) == ("local", MODEL)
    cat, paraphrase, revenue = (list(e.values) for e in reply.embeddings)
    assert [len(cat), len(paraphrase), len(revenue)] == [256, 256, 256]
    assert _cosine(cat, paraphrase) > _cosine(cat, revenue) + 0.3
    assert reply.usage.input_tokens > 3 and not reply.usage.estimated
    assert reply.cost_usd == 0.0
    row = await ledger_record(mesh.config.database_url, reply.request_id)
    assert (row.provider, row.model, row.input_tokens) == ("local", MODEL, reply.usage.input_tokens)
