"""Reasoning, emulated: a deterministic thinking text, its signature, and which models think.

The signature is an HMAC-SHA256 of the thinking text under a fixed key, base64-encoded, so
a thinking block sent back on a later turn can be checked as Anthropic checks its own: a
block whose signature does not match its text is refused with a 400. A block that does not
open its message also signs the kinds of the blocks before it, so a turn of interleaved
thinking (thinking, tool_use, thinking, text) sent back in another order is refused too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from llmesh.services.emulator.replies import Conversation

_KEY = b"llmesh-emulator-thinking"

MIN_BUDGET = 1024
"""The smallest ``budget_tokens`` Anthropic accepts."""

_HIDDEN = re.compile(r"^(o\d|gpt-5)")
"""OpenAI reasoning models: they think, and report only the count."""


def reasons_hidden(model: str) -> bool:
    """True for an OpenAI reasoning model (``o1``, ``o3``, ``o4-mini``, ``gpt-5``...)."""
    return bool(_HIDDEN.match(model))


def reasons_visibly(model: str) -> bool:
    """True for an OpenAI-compatible reasoning model that streams ``reasoning_content``
    (vLLM's reasoning parsers, DeepSeek): any model whose name has ``reason`` in it."""
    return "reason" in model


def thinking_text(conv: Conversation) -> str:
    """The reasoning the emulator shows before its answer (about a dozen words)."""
    turns = sum(1 for t in conv.turns if t.role == "user")
    return f"The user has written {turns} message(s). I will answer the last one plainly."


INTERLEAVED_BETA = "interleaved-thinking-2025-05-14"
"""The beta that lets a reply think again between its tool calls and its text."""


def sign(text: str, before: str = "") -> str:
    """The signature of a thinking text; `before` is the comma-separated kinds of the blocks
    ahead of it in its message (empty for a block that opens it)."""
    signed = f"{before}\x00{text}" if before else text
    digest = hmac.new(_KEY, signed.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(text: str, signature: str, before: str = "") -> bool:
    """True when `signature` is the one `sign` gives `text` at its place."""
    return hmac.compare_digest(sign(text, before), signature)


def interleaved(tool_names: list[str]) -> tuple[str, str]:
    """The thinking and the text an interleaved-thinking reply adds after its tool calls."""
    listed = ", ".join(tool_names)
    return f"I asked for {listed}. I will tell the user while it runs.", f"Calling {listed}."


def pieces(text: str) -> list[str]:
    """The text in word-sized deltas (each word with its following space)."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


def token_count(text: str) -> int:
    """The output tokens a thinking text counts for (one per delta)."""
    return len(pieces(text))
