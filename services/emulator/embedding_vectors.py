"""Deterministic embedding vectors: the same text and model always give the same vector.

A vector is drawn from a random generator seeded by a hash of the model and the text, at the
model's own length, then (as OpenAI shortens ``text-embedding-3`` vectors for
``dimensions``) cut to the length asked and scaled to unit length. Values are float32, so
the float and base64 encodings of one vector agree exactly.
"""

from __future__ import annotations

import hashlib
import math
import random
from array import array

__all__ = ["DEFAULT_DIMENSIONS", "EMBEDDING_MODELS", "SHORTENABLE", "embed_text"]

EMBEDDING_MODELS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
"""The advertised embedding models and their vectors' length."""

SHORTENABLE = frozenset({"text-embedding-3-small", "text-embedding-3-large"})
"""Models that accept ``dimensions`` (OpenAI's ``text-embedding-3`` family)."""

DEFAULT_DIMENSIONS = 1536
"""The length for any other model name (the emulator embeds with every model)."""


def native_dimensions(model: str) -> int:
    """The length of `model`'s vectors."""
    return EMBEDDING_MODELS.get(model, DEFAULT_DIMENSIONS)


def embed_text(model: str, text: str, dimensions: int | None = None) -> array[float]:
    """The unit-length float32 vector of `text`, `dimensions` long (the model's own if None)."""
    seed = hashlib.blake2b(f"{model}\x00{text}".encode(), digest_size=8).digest()
    rng = random.Random(int.from_bytes(seed, "little"))
    full = [rng.gauss(0.0, 1.0) for _ in range(native_dimensions(model))]
    cut = full[: dimensions or len(full)]
    norm = math.sqrt(sum(v * v for v in cut)) or 1.0
    return array("f", (v / norm for v in cut))
