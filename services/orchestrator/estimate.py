"""The one usage estimator: what a call consumed when its provider never said.

Both the usage a client sees (the engine's `Completed` event or an error's partial usage)
and the ledger's record of the same attempt come from `estimate_usage`, so the two agree.
Budget reservations use a deliberate upper bound instead (`admission.spend.input_bound`).
"""

from __future__ import annotations

import math

from llmesh.services.core.chat import ChatRequest, ContentPart, TextPart
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.media_tokens import media_tokens
from llmesh.services.core.usage import Usage

__all__ = ["CHARS_PER_TOKEN", "estimate_input_tokens", "estimate_usage", "part_tokens"]

CHARS_PER_TOKEN = 4
"""Characters per token assumed without a tokenizer (English text in BPE vocabularies)."""

TOKENS_PER_MESSAGE = 3
"""Framing tokens per message (role and separators) in chat templates."""

REPLY_PRIMING = 3
"""Tokens that prime the assistant's reply after the last message."""


def part_tokens(part: ContentPart) -> int:
    """Estimated input tokens of one content part: text by characters, media as
    `media_tokens` estimates them (shared with the processor)."""
    if isinstance(part, TextPart):
        return math.ceil(len(part.text) / CHARS_PER_TOKEN)
    return media_tokens(part)


def estimate_input_tokens(request: object) -> int:
    """About four characters a token over message text and tool calls (names and
    arguments), plus three framing tokens a message and three priming the reply.

    Counting tool-call names, framing and priming follows how chat templates bill input
    (OpenAI's cookbook counts 3 a message and 3 for the reply), so this is the closer of
    the formulas llmesh used before; an estimate still, never an upper bound. An
    embeddings call counts its texts alone (no framing); another call type without
    messages counts 0 here (its handler reports what it used).
    """
    if isinstance(request, EmbeddingRequest):
        return math.ceil(sum(len(text) for text in request.inputs) / CHARS_PER_TOKEN)
    if not isinstance(request, ChatRequest):
        return 0
    chars = sum(
        len(m.content) + sum(len(c.arguments) + len(c.name) for c in m.tool_calls)
        for m in request.messages
    )
    return (
        math.ceil(chars / CHARS_PER_TOKEN)
        + sum(part_tokens(p) for m in request.messages for p in m.parts)
        + TOKENS_PER_MESSAGE * len(request.messages)
        + REPLY_PRIMING
    )


def estimate_usage(request: object, output_chars: int) -> Usage:
    """Estimated usage of a reply of `output_chars` characters to `request`."""
    return Usage(
        input_tokens=estimate_input_tokens(request),
        output_tokens=math.ceil(output_chars / CHARS_PER_TOKEN),
        estimated=True,
    )
