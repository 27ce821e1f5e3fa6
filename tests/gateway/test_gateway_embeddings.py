"""``POST /v1/embeddings`` through the gateway, orchestrator and emulator, with the official SDK."""

from __future__ import annotations

import httpx
import openai
import pytest

from llmesh.gateway.openai_embeddings import parse_embeddings_request
from llmesh.services.common.errors import LlmeshError
from llmesh.services.emulator.embedding_vectors import embed_text
from llmesh.v1 import embeddings_pb2
from tests.support.mesh import Mesh


def _client(mesh: Mesh) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{mesh.gateway_url}/v1", api_key="unused", max_retries=0)


async def test_sdk_default_base64_and_float_give_the_model_s_vectors(mesh: Mesh) -> None:
    texts = ["one text", "another text"]
    async with _client(mesh) as client:
        packed = await client.embeddings.create(model="text-embedding-3-small", input=texts)
        floats = await client.embeddings.create(
            model="openai/text-embedding-3-small", input=texts, encoding_format="float"
        )
        raw = await client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input="x"
        )
    assert [len(d.embedding) for d in packed.data] == [1536, 1536]
    assert [d.index for d in packed.data] == [0, 1]
    assert packed.data[0].embedding == floats.data[0].embedding
    expected = list(embed_text("text-embedding-3-small", texts[1]))
    assert floats.data[1].embedding == pytest.approx(expected, rel=1e-6)
    assert packed.object == "list" and packed.data[0].object == "embedding"
    assert packed.model == "text-embedding-3-small"
    assert packed.usage.prompt_tokens == packed.usage.total_tokens > 0
    assert raw.headers["x-request-id"]


async def test_sdk_dimensions(mesh: Mesh) -> None:
    async with _client(mesh) as client:
        short = await client.embeddings.create(
            model="text-embedding-3-small", input=["a", "b"], dimensions=256
        )
    assert [len(d.embedding) for d in short.data] == [256, 256]


async def test_wire_reply_is_openai_s_exact_shape(mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=mesh.gateway_url) as http:
        r = await http.post(
            "/v1/embeddings",
            json={"model": "text-embedding-3-small", "input": "x", "encoding_format": "base64"},
        )
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert set(body["data"][0]) == {"object", "index", "embedding"}
    assert isinstance(body["data"][0]["embedding"], str)
    assert set(body["usage"]) == {"prompt_tokens", "total_tokens"}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "text-embedding-3-small", "input": "x", "bogus": 1}, "bogus"),
        ({"model": "text-embedding-3-small", "input": [[1, 2, 3]]}, "input"),
        ({"model": "text-embedding-3-small", "input": [1, 2, 3]}, "input"),
        ({"model": "text-embedding-3-small", "input": ""}, "input"),
        (
            {"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"},
            "encoding_format",
        ),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": "8"}, "dimensions"),
    ],
)
async def test_bad_bodies_get_a_400_naming_the_field(
    mesh: Mesh, body: dict[str, object], param: str
) -> None:
    async with httpx.AsyncClient(base_url=mesh.gateway_url) as http:
        r = await http.post("/v1/embeddings", json=body)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


async def test_an_unknown_model_is_a_404(mesh: Mesh) -> None:
    async with _client(mesh) as client:
        with pytest.raises(openai.NotFoundError):
            await client.embeddings.create(model="nope/nothing", input="x")


def test_parse_maps_every_field() -> None:
    parsed = parse_embeddings_request(
        {
            "model": "m",
            "input": ["a", "b"],
            "encoding_format": "base64",
            "dimensions": 8,
            "user": "u",
            "metadata": {"session": "s"},
            "fallbacks": ["n"],
        }
    )
    req = parsed.request
    assert parsed.base64 and parsed.model == "m"
    assert list(req.inputs) == ["a", "b"] and req.dimensions == 8
    assert req.encoding == embeddings_pb2.EMBEDDING_ENCODING_BASE64
    assert dict(req.metadata) == {"session": "s", "user": "u"}
    assert list(req.fallbacks) == ["n"]
    with pytest.raises(LlmeshError):
        parse_embeddings_request({"model": "m", "input": "a", "metadata": {"k": 1}})


async def test_sdk_embeds_with_the_local_model(mesh: Mesh) -> None:
    texts = ["The cat sat on the mat.", "A cat was sitting on the rug.", "Revenue grew."]
    async with _client(mesh) as client:
        packed = await client.embeddings.create(model="local/wordllama-l2-supercat", input=texts)
        floats = await client.embeddings.create(
            model="wordllama-l2-supercat", input=texts[0], encoding_format="float", dimensions=128
        )
    cat, paraphrase, revenue = (d.embedding for d in packed.data)
    assert [len(cat), len(paraphrase), len(revenue)] == [256, 256, 256]

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))  # the vectors are unit length

    assert cosine(cat, paraphrase) > cosine(cat, revenue) + 0.3
    assert packed.model == "local/wordllama-l2-supercat"  # the name asked for
    assert packed.usage.prompt_tokens == packed.usage.total_tokens > len(texts)
    assert len(floats.data[0].embedding) == 128
    assert floats.data[0].embedding == pytest.approx(
        [v / sum(x * x for x in cat[:128]) ** 0.5 for v in cat[:128]], abs=1e-5
    )


async def test_sdk_sees_an_embeddings_cache_hit_in_the_header(mesh: Mesh) -> None:
    async with _client(mesh) as client:
        first = await client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input=["cache me over http"]
        )
        second = await client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input=["cache me over http"]
        )
    assert "x-llmesh-cache" not in first.headers
    assert second.headers["x-llmesh-cache"] == "hit"
    assert second.parse().data[0].embedding == first.parse().data[0].embedding
    assert second.parse().usage.prompt_tokens == first.parse().usage.prompt_tokens > 0
