"""The embeddings call: a batch of texts in, one vector per text out.

`EmbeddingRequest` is the call type (a `Call[EmbeddingRequest]` is routed like a chat call);
its handler yields `Started`, one `Embeddings` event with every vector, then `Completed`
with the usage, so the layers (rate limits, accounting and the ledger, budgets) treat it as
they treat a chat call.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["EmbeddingEncoding", "EmbeddingRequest", "Embeddings"]


class EmbeddingEncoding(enum.Enum):
    """How the caller wants the vectors: floats, or packed little-endian float32 in base64.

    The values are OpenAI's ``encoding_format`` words. Inside llmesh vectors are always
    floats; the encoding is applied where they leave it (the servicer, the gateway).
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


@dataclass(frozen=True, slots=True)
class Embeddings:
    """The call's vectors: ``vectors[i]`` embeds ``inputs[i]``."""

    vectors: tuple[tuple[float, ...], ...]
