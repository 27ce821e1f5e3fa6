"""``POST /v1/embeddings``: OpenAI's wire shape, deterministic vectors, errors and faults."""

from __future__ import annotations

import base64
import math
from array import array

import httpx
import openai
import pytest
from openai.types import CreateEmbeddingResponse

from llmesh.services.emulator.embedding_vectors import embed_text


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


async def test_sdk_float_and_base64_agree_and_validate(oai: openai.AsyncOpenAI) -> None:
    floats = await oai.embeddings.create(
        model="text-embedding-3-small", input=["hello", "world"], encoding_format="float"
    )
    packed = await oai.embeddings.create(model="text-embedding-3-small", input=["hello", "world"])
    assert [len(d.embedding) for d in floats.data] == [1536, 1536]
    assert [d.index for d in floats.data] == [0, 1]
    assert floats.data[0].embedding == packed.data[0].embedding  # the SDK decoded base64
    assert floats.data[0].embedding != floats.data[1].embedding
    assert _norm(floats.data[0].embedding) == pytest.approx(1.0, rel=1e-5)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0
    assert floats.model == "text-embedding-3-small"


async def test_wire_shape_is_openai_s(http: httpx.AsyncClient, emulator: str) -> None:
    floats = await http.post(
        f"{emulator}/v1/embeddings",
        json={"model": "text-embedding-3-large", "input": "hi", "encoding_format": "float"},
    )
    assert floats.status_code == 200
    parsed = CreateEmbeddingResponse.model_validate(floats.json())  # the SDK's own type
    assert parsed.model_dump(exclude_unset=True) == floats.json()  # no field it lacks
    r = await http.post(
        f"{emulator}/v1/embeddings",
        json={"model": "text-embedding-3-large", "input": "hi", "encoding_format": "base64"},
    )
    assert r.status_code == 200
    assert r.headers["x-request-id"].startswith("req_")
    body = r.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert body["object"] == "list"
    item = body["data"][0]
    assert set(item) == {"object", "index", "embedding"} and item["object"] == "embedding"
    raw = array("f")
    raw.frombytes(base64.b64decode(item["embedding"]))
    assert len(raw) == 3072
    assert list(raw) == list(embed_text("text-embedding-3-large", "hi"))
    assert list(raw) == floats.json()["data"][0]["embedding"]
    assert set(body["usage"]) == {"prompt_tokens", "total_tokens"}


async def test_same_text_same_vector_and_dimensions_shorten(oai: openai.AsyncOpenAI) -> None:
    a = await oai.embeddings.create(model="text-embedding-3-small", input="same text")
    b = await oai.embeddings.create(model="text-embedding-3-small", input="same text")
    short = await oai.embeddings.create(
        model="text-embedding-3-small", input="same text", dimensions=256
    )
    assert a.data[0].embedding == b.data[0].embedding
    assert len(short.data[0].embedding) == 256
    assert _norm(short.data[0].embedding) == pytest.approx(1.0, rel=1e-5)
    # shortened as OpenAI does: the full vector's head, scaled back to unit length
    head = a.data[0].embedding[:256]
    scale = _norm(head)
    assert short.data[0].embedding == pytest.approx([x / scale for x in head], rel=1e-4)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "text-embedding-3-small", "input": ""}, "input"),
        ({"model": "text-embedding-3-small", "input": []}, "input"),
        (
            {"model": "text-embedding-3-small", "input": "x", "encoding_format": "hex"},
            "encoding_format",
        ),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 5000}, "dimensions"),
        ({"model": "text-embedding-ada-002", "input": "x", "dimensions": 256}, "dimensions"),
        ({"input": "x"}, "model"),
    ],
)
async def test_bad_bodies_get_openai_errors(
    oai: openai.AsyncOpenAI, body: dict[str, object], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await oai.post("/embeddings", body=body, cast_to=CreateEmbeddingResponse)
    assert info.value.status_code == 400
    assert info.value.body["param"] == param  # type: ignore[index]
    assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]


async def test_token_id_inputs_are_embedded(http: httpx.AsyncClient, emulator: str) -> None:
    r = await http.post(
        f"{emulator}/v1/embeddings",
        json={
            "model": "text-embedding-3-small",
            "input": [[1, 2, 3], [4]],
            "encoding_format": "float",
        },
    )
    assert r.status_code == 200
    assert [d["index"] for d in r.json()["data"]] == [0, 1]


async def test_faults_apply(
    oai: openai.AsyncOpenAI, http: httpx.AsyncClient, emulator: str
) -> None:
    with pytest.raises(openai.InternalServerError):
        await oai.embeddings.create(
            model="text-embedding-3-small",
            input="x",
            extra_headers={"x-emulator-fault": "server_error"},
        )
    r = await http.post(
        f"{emulator}/emulator/faults",
        json={"model": "text-embedding-3-small", "fault": "rate_limit", "times": 1},
    )
    assert r.status_code < 300
    with pytest.raises(openai.RateLimitError):
        await oai.embeddings.create(model="text-embedding-3-small", input="x")
    ok = await oai.embeddings.create(model="text-embedding-3-small", input="x")
    assert len(ok.data) == 1


async def test_openai_s_model_list_has_the_embedding_models(oai: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in oai.models.list()]
    assert {"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"} <= set(
        ids
    )
