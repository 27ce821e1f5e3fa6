"""The embeddings call: a batch of texts in, one vector per text out.

`EmbeddingRequest` is the call type (a `Call[EmbeddingRequest]` is routed like a chat call);
its handler yields `Started`, one `Embeddings` event with every vector, then `Completed`
with the usage, so the layers (rate limits, accounting and the ledger, budgets) treat it as
they treat a chat call.

Inside llmesh a vector is its packed little-endian float32 bytes (what OpenAI's ``base64``
encoding holds): an upstream's base64 is decoded once into them, and they leave as they came
(the Embed RPC's ``Embedding.data``, the gateway's base64) unless a caller asks for floats.
Vectors are never turned into Python floats on the way through.
"""

from __future__ import annotations

import enum
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "FLOAT32_BYTES",
    "EmbeddingEncoding",
    "EmbeddingRequest",
    "Embeddings",
    "pack_floats",
    "unpack_floats",
]

FLOAT32_BYTES = 4
"""Bytes per value of a packed vector."""


class EmbeddingEncoding(enum.Enum):
    """How the caller wants the vectors: floats, or packed little-endian float32 in base64.

    The values are OpenAI's ``encoding_format`` words. The encoding is applied where the
    vectors leave llmesh (the servicer, the gateway); inside they are packed bytes.
    """

    FLOAT = "float"
    BASE64 = "base64"


@dataclass(frozen=True, slots=True)
class EmbeddingRequest:
    """An embeddings call's content: what any target is asked, whichever model answers."""

    inputs: tuple[str, ...]
    """The texts, one vector each, in order."""
    dimensions: int | None = None
    """The vectors' length, for models that can shorten them; None for the model's own."""
    encoding: EmbeddingEncoding = EmbeddingEncoding.FLOAT
    """How the caller wants the vectors returned."""
    user: str = ""
    """The end user the call is for, passed to providers that accept one (OpenAI's ``user``);
    empty for none. It cannot change the vectors, so it is not part of a cache key."""


@dataclass(frozen=True, slots=True)
class Embeddings:
    """The call's vectors: ``vectors[i]`` embeds ``inputs[i]``, as packed float32 bytes."""

    vectors: tuple[bytes, ...]


def pack_floats(values: Iterable[float]) -> bytes:
    """`values` as packed little-endian float32 (what OpenAI's base64 encoding holds)."""
    packed = array("f", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def unpack_floats(data: bytes) -> array[float]:
    """Packed little-endian float32 back to floats; ValueError for a ragged length."""
    values = array("f")
    values.frombytes(data)
    if sys.byteorder == "big":
        values.byteswap()
    return values
