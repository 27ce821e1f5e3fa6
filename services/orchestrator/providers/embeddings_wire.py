"""The OpenAI embeddings wire format: pure functions, testable without a network.

``POST {base_url}/embeddings`` with ``{"model", "input": [...], "dimensions"?,
"encoding_format"}`` answers ``{"object": "list", "data": [{"object": "embedding", "index",
"embedding"}], "model", "usage": {"prompt_tokens", "total_tokens"}}``. llmesh asks for
``base64`` (packed little-endian float32, a quarter of the bytes of the JSON floats, as the
official SDK asks), decodes each vector once into its packed bytes (llmesh's own form of a
vector, `llmesh.services.core.embeddings`) and also reads plain float lists, which some
compatible servers send whatever was asked, packing them. ``user`` is sent when the call
names one.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Mapping
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.embeddings import (
    FLOAT32_BYTES,
    EmbeddingRequest,
    pack_floats,
    unpack_floats,
)
from llmesh.services.core.usage import Usage

__all__ = [
    "EMBEDDINGS_PATH",
    "from_embeddings_response",
    "pack_floats",
    "to_embeddings_request",
    "unpack_floats",
]

EMBEDDINGS_PATH = "/embeddings"
"""The endpoint, under the provider's base URL (which ends in ``/v1`` for OpenAI)."""


def to_embeddings_request(model: str, request: EmbeddingRequest) -> dict[str, Any]:
    """The request body for `model` (the provider's own model id)."""
    body: dict[str, Any] = {
        "model": model,
        "input": list(request.inputs),
        "encoding_format": "base64",
    }
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user:
        body["user"] = request.user
    return body


def _malformed(what: str) -> LlmeshError:
    return LlmeshError(Reason.MALFORMED_RESPONSE, f"upstream sent malformed embeddings: {what}")


def _vector(value: object) -> bytes:
    """One vector's packed float32 bytes, from base64 (decoded, not unpacked) or a list."""
    if isinstance(value, str):
        try:
            packed: bytes | None = b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            packed = None
        if packed is None or len(packed) % FLOAT32_BYTES:
            raise _malformed("an embedding that is not base64 float32")
        return packed
    if isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return pack_floats(value)
    raise _malformed("an embedding that is neither base64 nor a list of numbers")


def from_embeddings_response(body: object, count: int) -> tuple[tuple[bytes, ...], Usage | None]:
    """The `count` vectors (packed float32 bytes) in input order, and the usage (None when
    not reported).

    Raises MALFORMED_RESPONSE unless there is exactly one vector per input index.
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("data"), list):
        raise _malformed("no data list")
    vectors: dict[int, bytes] = {}
    for item in body["data"]:
        if not isinstance(item, Mapping):
            raise _malformed("a data item that is not an object")
        index = item.get("index")
        if type(index) is not int or not 0 <= index < count or index in vectors:
            raise _malformed(f"a bad or repeated index {index!r}")
        vectors[index] = _vector(item.get("embedding"))
    if len(vectors) != count:
        raise _malformed(f"{len(vectors)} embeddings for {count} inputs")
    return tuple(vectors[i] for i in range(count)), _usage(body.get("usage"))


def _usage(raw: object) -> Usage | None:
    if not isinstance(raw, Mapping):
        return None
    tokens = raw.get("prompt_tokens", raw.get("total_tokens"))
    if type(tokens) is not int:
        return None
    return Usage(input_tokens=tokens)
