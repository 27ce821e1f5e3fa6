"""Constants and types shared by the emulator tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

StatsWhen = Callable[[Callable[[dict[str, Any]], bool]], Awaitable[dict[str, Any]]]
"""Polls ``/emulator/stats`` until the condition holds (or a second passes); returns them."""

USER = "The quick brown fox jumps over the lazy dog"
"""A user message of nine pieces."""

PIECES = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog"]
"""The token pieces of `USER`."""

MODEL = "echo"
"""A model name neither SDK warns about."""
