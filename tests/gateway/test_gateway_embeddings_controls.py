"""``/v1/embeddings``: packed vectors in either encoding, and the chat surface's per-call
controls (``max_cost_usd``, ``cache``) as the official SDK's ``extra_body``."""

from __future__ import annotations

import base64
from array import array

import httpx
import openai
import pytest

from llmesh.gateway.openai_embeddings import parse_embeddings_request
from llmesh.services.emulator.embedding_vectors import embed_text
from llmesh.v1 import embeddings_pb2
from tests.support.mesh import Mesh

NO_CACHE = {"cache": {"no_response_cache": True}}


def _client(mesh: Mesh) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{mesh.gateway_url}/v1", api_key="unused", max_retries=0)


def _sent(mesh: Mesh, model: str) -> int:
    """How many requests for `model` reached the emulator."""
    return int(mesh.stats()["by_model"].get(model, {}).get("requests", 0))


def _decoded(text: str) -> list[float]:
    values = array("f")
    values.frombytes(base64.b64decode(text))
    return values.tolist()


@pytest.mark.parametrize("dimensions", [None, 256])
async def test_every_encoding_gives_the_same_vectors(mesh: Mesh, dimensions: int | None) -> None:
    model = "text-embedding-3-large"
    texts = [f"either encoding {dimensions}", "and one more"]
    extra = {} if dimensions is None else {"dimensions": dimensions}
    async with _client(mesh) as client:
        sdk = await client.embeddings.create(  # the SDK asks for base64 and decodes it
            model=model, input=texts, extra_body=NO_CACHE, **extra
        )
        floats = await client.embeddings.create(
            model=model, input=texts, encoding_format="float", extra_body=NO_CACHE, **extra
        )
        b64 = await client.embeddings.create(
            model=model, input=texts, encoding_format="base64", extra_body=NO_CACHE, **extra
        )
    expected = [embed_text(model, t, dimensions).tolist() for t in texts]
    assert [d.embedding for d in sdk.data] == expected  # float32 values, bit for bit
    assert [d.embedding for d in floats.data] == expected
    assert [_decoded(str(d.embedding)) for d in b64.data] == expected


async def test_a_base64_reply_in_the_cache_answers_a_float_call(mesh: Mesh) -> None:
    body = {"model": "text-embedding-3-small", "input": ["one entry, two encodings"]}
    async with httpx.AsyncClient(base_url=mesh.gateway_url) as http:
        first = await http.post("/v1/embeddings", json={**body, "encoding_format": "base64"})
        second = await http.post("/v1/embeddings", json={**body, "encoding_format": "float"})
    assert first.status_code == second.status_code == 200
    assert "x-llmesh-cache" not in first.headers
    assert second.headers["x-llmesh-cache"] == "hit"
    packed = first.json()["data"][0]["embedding"]
    assert second.json()["data"][0]["embedding"] == _decoded(packed)


async def test_extra_body_cache_opt_out_reaches_the_provider_again(mesh: Mesh) -> None:
    model = "text-embedding-3-small"
    before = _sent(mesh, model)
    async with _client(mesh) as client:
        replies = [
            await client.embeddings.with_raw_response.create(
                model=model, input=["opted out over http"], extra_body=NO_CACHE
            )
            for _ in range(2)
        ]
    assert _sent(mesh, model) == before + 2
    assert all("x-llmesh-cache" not in r.headers for r in replies)
    assert replies[0].parse().data[0].embedding == replies[1].parse().data[0].embedding


async def test_extra_body_cost_cap_refuses_before_sending(mesh: Mesh) -> None:
    model = "text-embedding-3-small"
    before = _sent(mesh, model)
    async with _client(mesh) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.embeddings.create(
                model=model, input=["y" * 400], extra_body={"max_cost_usd": 1e-9, **NO_CACHE}
            )
        ok = await client.embeddings.create(
            model=model, input=["y" * 400], extra_body={"max_cost_usd": 0.01, **NO_CACHE}
        )
    assert info.value.status_code == 429
    assert "max_cost_usd" in info.value.message
    assert _sent(mesh, model) == before + 1  # only the call that fits
    assert len(ok.data[0].embedding) == 1536


async def test_unknown_fields_are_refused_naming_each_as_the_chat_surface_does(
    mesh: Mesh,
) -> None:
    body = {"model": "text-embedding-3-small", "input": "x", "bogus": 1, "hedge": {}}
    async with httpx.AsyncClient(base_url=mesh.gateway_url) as http:
        r = await http.post("/v1/embeddings", json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["param"], error["code"]) == ("bogus", "unknown_parameter")
    assert "bogus" in error["message"] and "hedge" in error["message"]


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"max_cost_usd": "cheap"}, "max_cost_usd"),
        ({"cache": {"no_response_cache": "yes"}}, "cache"),
        ({"cache": {"response_cache_ttl": "-5s"}}, "cache.response_cache_ttl"),
        ({"max_cost_usd": 0}, "max_cost_usd"),
    ],
)
async def test_bad_controls_get_a_400_naming_the_field(
    mesh: Mesh, extra: dict[str, object], param: str
) -> None:
    body = {"model": "text-embedding-3-small", "input": "x", **extra}
    async with httpx.AsyncClient(base_url=mesh.gateway_url) as http:
        r = await http.post("/v1/embeddings", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


def test_the_body_s_controls_map_onto_the_rpc() -> None:
    parsed = parse_embeddings_request(
        {
            "model": "m",
            "input": "a",
            "encoding_format": "float",
            "user": "u",
            "max_cost_usd": 0.25,
            "cache": {"noResponseCache": True, "response_cache_ttl": "30s"},
        }
    )
    req = parsed.request
    assert not parsed.base64  # the reply is floats ...
    assert req.encoding == embeddings_pb2.EMBEDDING_ENCODING_BASE64  # ... unpacked here
    assert req.max_cost_usd == 0.25 and req.HasField("max_cost_usd")
    assert req.cache.no_response_cache and req.cache.response_cache_ttl.seconds == 30
    assert req.metadata["user"] == "u"
