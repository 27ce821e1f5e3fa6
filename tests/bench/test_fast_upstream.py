"""The fast upstream's embeddings replies: OpenAI's shape, deterministic, base64 or floats."""

from __future__ import annotations

import base64
from array import array

import orjson

from bench.fast_upstream import EMBEDDING_DIMENSIONS, build_embeddings


def _body(response: bytes) -> dict[str, object]:
    head, _, payload = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert f"content-length: {len(payload)}".encode() in head
    parsed: dict[str, object] = orjson.loads(payload)
    return parsed


def test_one_vector_per_input_in_openai_shape() -> None:
    reply = _body(build_embeddings({"model": "m", "input": ["a b", "c"]}))
    assert reply["object"] == "list"
    assert reply["model"] == "m"
    assert reply["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    data = reply["data"]
    assert isinstance(data, list)
    assert [d["index"] for d in data] == [0, 1]
    assert all(d["object"] == "embedding" for d in data)
    assert all(len(d["embedding"]) == EMBEDDING_DIMENSIONS for d in data)
    assert data[0]["embedding"] != data[1]["embedding"]


def test_base64_packs_the_same_vector_as_floats() -> None:
    floats = _body(build_embeddings({"input": "x", "dimensions": 100}))
    packed = _body(build_embeddings({"input": "x", "dimensions": 100, "encoding_format": "base64"}))
    values = array("f")
    values.frombytes(base64.b64decode(packed["data"][0]["embedding"]))  # type: ignore[index]
    assert len(values) == 100
    assert values.tolist() == floats["data"][0]["embedding"]  # type: ignore[index]
