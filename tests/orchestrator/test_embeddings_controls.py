"""The Embed RPC's packed vectors and per-call controls (cost cap, cache options, user),
through the whole mesh and its emulator."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from llmesh.services.common.errors import Reason
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core.embeddings import EmbeddingEncoding, pack_floats, unpack_floats
from llmesh.services.emulator.embedding_vectors import embed_text
from llmesh.services.orchestrator.embeddings_convert import (
    embed_call_from_proto,
    float_embedding,
)
from llmesh.v1 import chat_pb2, embeddings_pb2, orchestrator_pb2_grpc
from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh

FLOAT = embeddings_pb2.EMBEDDING_ENCODING_FLOAT
PACKED = embeddings_pb2.EMBEDDING_ENCODING_BASE64
NO_CACHE = chat_pb2.CacheOptions(no_response_cache=True)


async def _embed(mesh: Mesh, **fields: Any) -> embeddings_pb2.EmbedResponse:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        reply: embeddings_pb2.EmbedResponse = await stub.Embed(
            embeddings_pb2.EmbedRequest(**fields), timeout=10
        )
        return reply


async def _refused(mesh: Mesh, **fields: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _embed(mesh, **fields)
    return info.value


def _sent(mesh: Mesh, model: str) -> int:
    """How many requests for `model` reached the emulator."""
    return int(mesh.stats()["by_model"].get(model, {}).get("requests", 0))


def _vectors(reply: embeddings_pb2.EmbedResponse) -> list[list[float]]:
    return [unpack_floats(e.data).tolist() if e.data else list(e.values) for e in reply.embeddings]


@pytest.mark.parametrize("dimensions", [None, 256])
async def test_packed_and_float_clients_get_the_same_vectors(
    mesh: Mesh, dimensions: int | None
) -> None:
    model = "text-embedding-3-large"
    texts = [f"packed or floats {dimensions}", "a second text"]
    fields: dict[str, Any] = {"model": f"emulator/{model}", "inputs": texts}
    if dimensions is not None:
        fields["dimensions"] = dimensions
    old = await _embed(mesh, **fields, cache=NO_CACHE)  # a client that never heard of packing
    packed = await _embed(mesh, **fields, encoding=PACKED, cache=NO_CACHE)
    assert all(e.values and not e.data for e in old.embeddings)  # old clients keep their floats
    assert all(e.data and not e.values for e in packed.embeddings)
    expected = [embed_text(model, t, dimensions).tolist() for t in texts]
    assert _vectors(old) == _vectors(packed) == expected  # float32, bit for bit
    assert [len(e.data) for e in packed.embeddings] == [4 * (dimensions or 3072)] * 2


async def test_one_cached_reply_serves_both_encodings(mesh: Mesh) -> None:
    model = "text-embedding-3-small"
    fields: dict[str, Any] = {"model": f"openai/{model}", "inputs": ["stored once, read twice"]}
    before = _sent(mesh, model)
    packed = await _embed(mesh, **fields, encoding=PACKED)
    floats = await _embed(mesh, **fields, encoding=FLOAT)
    assert _sent(mesh, model) == before + 1
    assert not packed.cache_hit and floats.cache_hit
    assert list(floats.embeddings[0].values) == unpack_floats(packed.embeddings[0].data).tolist()


async def test_a_cost_cap_below_the_worst_case_is_refused_before_sending(mesh: Mesh) -> None:
    model = "text-embedding-3-small"
    before = _sent(mesh, model)
    err = await _refused(
        mesh, model=f"openai/{model}", inputs=["x" * 400], max_cost_usd=1e-9, cache=NO_CACHE
    )
    assert err.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    refusal = from_rpc_error(err)
    assert refusal.reason is Reason.BUDGET_EXCEEDED
    assert "max_cost_usd=1e-09" in refusal.message
    assert _sent(mesh, model) == before, "a refused call reached the provider"
    ok = await _embed(
        mesh, model=f"openai/{model}", inputs=["x" * 400], max_cost_usd=0.01, cache=NO_CACHE
    )
    assert ok.cost_usd > 0 and _sent(mesh, model) == before + 1


async def test_a_cache_opt_out_reaches_the_provider_every_time(mesh: Mesh) -> None:
    model = "text-embedding-3-small"
    fields: dict[str, Any] = {"model": f"openai/{model}", "inputs": ["never from the cache"]}
    before = _sent(mesh, model)
    replies = [await _embed(mesh, **fields, cache=NO_CACHE) for _ in range(2)]
    assert _sent(mesh, model) == before + 2
    assert [r.cache_hit for r in replies] == [False, False]
    assert _vectors(replies[0]) == _vectors(replies[1])
    cached = await _embed(mesh, **fields)  # the opt-outs stored nothing either
    assert not cached.cache_hit and _sent(mesh, model) == before + 3
    row = await ledger_record(mesh.config.database_url, replies[1].request_id)
    assert not row.cache_hit and row.cost_usd > 0


async def test_a_cache_ttl_of_the_call_s_own(mesh: Mesh) -> None:
    model = "text-embedding-3-small"
    short = chat_pb2.CacheOptions(response_cache_ttl=Duration(nanos=200_000_000))
    fields: dict[str, Any] = {"model": f"openai/{model}", "inputs": ["kept for a moment"]}
    first = await _embed(mesh, **fields, cache=short)
    hit = await _embed(mesh, **fields)
    await asyncio.sleep(0.4)  # past the call's own TTL, well within the configured one
    expired = await _embed(mesh, **fields)
    assert (first.cache_hit, hit.cache_hit, expired.cache_hit) == (False, True, False)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_cost_usd": 0.0}, "max_cost_usd"),
        ({"max_cost_usd": -1.0}, "max_cost_usd"),
        (
            {"cache": chat_pb2.CacheOptions(response_cache=True, no_response_cache=True)},
            "cache",
        ),
        (
            {"cache": chat_pb2.CacheOptions(response_cache_ttl=Duration(seconds=-1))},
            "cache.response_cache_ttl",
        ),
        (
            {"cache": chat_pb2.CacheOptions(prompt_cache=chat_pb2.PROMPT_CACHE_MODE_OFF)},
            "cache.prompt_cache",
        ),
        ({"cache": chat_pb2.CacheOptions(prompt_cache_ttl="1h")}, "cache.prompt_cache_ttl"),
    ],
)
async def test_bad_controls_are_refused_naming_the_field(
    mesh: Mesh, fields: dict[str, Any], field: str
) -> None:
    err = await _refused(mesh, model="openai/text-embedding-3-small", inputs=["x"], **fields)
    assert err.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in from_rpc_error(err).violations] == [field]


def test_the_request_maps_to_the_call_s_controls() -> None:
    request = embeddings_pb2.EmbedRequest(
        model="m",
        inputs=["a"],
        metadata={"user": "u-9", "session": "s"},
        max_cost_usd=0.5,
        cache=chat_pb2.CacheOptions(response_cache_ttl=Duration(seconds=30)),
    )
    call = embed_call_from_proto(request, max_request_bytes=1 << 20)
    assert call.max_cost_usd == 0.5 and call.response_cache_ttl == 30.0
    assert call.response_cache is None  # cached by default; only an opt-out changes that
    assert call.request.user == "u-9" and call.request.encoding is EmbeddingEncoding.FLOAT
    plain = embed_call_from_proto(
        embeddings_pb2.EmbedRequest(model="m", inputs=["a"], cache=NO_CACHE),
        max_request_bytes=1 << 20,
    )
    assert plain.response_cache is False and plain.max_cost_usd is None
    assert plain.request.user == ""


@pytest.mark.parametrize("index", [0, 1, 127, 128, 300, 2047, 2**31 - 1])
@pytest.mark.parametrize("length", [0, 1, 3, 3072])
def test_a_float_embedding_is_built_from_its_packed_bytes(index: int, length: int) -> None:
    values = [(-1) ** i * (i + 0.5) / 7 for i in range(length)]
    if length:
        values[0] = float("inf") if length > 1 else -0.0
    values = unpack_floats(pack_floats(values)).tolist()  # what float32 holds
    built = float_embedding(index, pack_floats(values))
    assert built == embeddings_pb2.Embedding(index=index, values=values)
    assert built.index == index and list(built.values) == values and not built.data
