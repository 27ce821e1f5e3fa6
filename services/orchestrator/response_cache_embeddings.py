"""The response cache's embeddings part: keys of embeddings calls, and stored vectors.

An embeddings key, behind a prefix of its own, covers the tenant, the caller's model name,
fallbacks and cost cap, the inputs and the dimensions; not the encoding or the user, which
do not change the vectors (llmesh holds them as packed float32 bytes, however a caller wants
them). A stored vector is its packed bytes in base64, so a Redis value stays compact JSON.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

import orjson

from llmesh.services.core.embeddings import FLOAT32_BYTES, EmbeddingRequest

__all__ = ["EMBEDDING_KEY_VERSION", "embedding_cache_key", "pack_b64", "unpack_b64"]

EMBEDDING_KEY_VERSION = "re2"
"""Prefix of every embeddings key, apart from chat keys; bump it when the normalization or
the stored shape changes."""


def embedding_cache_key(
    model: str,
    fallbacks: Sequence[str],
    request: EmbeddingRequest,
    *,
    tenant: str,
    max_cost_usd: float | None = None,
) -> str:
    """``re2:<sha256 hex>`` of an embeddings call, per tenant; `model` is the caller's name.

    The encoding and the user are left out: neither changes the vectors.
    """
    data = orjson.dumps(
        {
            "tenant": tenant,
            "model": model,
            "fallbacks": list(fallbacks),
            "max_cost_usd": max_cost_usd,
            "inputs": list(request.inputs),
            "dimensions": request.dimensions,
        },
        option=orjson.OPT_SORT_KEYS,
    )
    return f"{EMBEDDING_KEY_VERSION}:{hashlib.sha256(data).hexdigest()}"


def pack_b64(packed: bytes) -> str:
    """A stored vector: its packed bytes in base64."""
    return base64.b64encode(packed).decode("ascii")


def unpack_b64(text: object) -> bytes:
    """A stored vector's packed bytes; TypeError, ValueError or binascii.Error for another."""
    if not isinstance(text, str):
        raise TypeError("a stored vector is not base64")
    packed = base64.b64decode(text, validate=True)
    if len(packed) % FLOAT32_BYTES:
        raise ValueError("a stored vector is not packed float32")
    return packed
