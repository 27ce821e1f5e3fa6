"""A tiny screening classifier for tests: scores texts that mention ``pineapple protocol``."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["not_a_score", "pineapple"]


def pineapple(texts: Sequence[str]) -> float:
    """0.9 when a text says "pineapple protocol", else 0."""
    return 0.9 if any("pineapple protocol" in t.lower() for t in texts) else 0.0


def not_a_score(texts: Sequence[str]) -> object:
    """A broken classifier: returns no number."""
    return "high"
