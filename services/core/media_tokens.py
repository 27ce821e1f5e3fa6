"""Estimated input tokens of a message's media parts (images, documents, audio).

Providers bill media by their own rules (image tiles, PDF pages, audio seconds), which
llmesh cannot see before the reply; these estimates are shared by the orchestrator's
usage estimate and the processor's counts, so both say the same of the same prompt.
"""

from __future__ import annotations

import math

from llmesh.services.core.chat import AudioPart, ContentPart, DocumentPart, ImagePart

__all__ = [
    "AUDIO_BYTES_PER_TOKEN",
    "DOCUMENT_BYTES_PER_TOKEN",
    "IMAGE_TOKENS",
    "media_tokens",
]

IMAGE_TOKENS = 1_000
"""Tokens estimated per image (OpenAI's gpt-4o bills 85 to about 1,450, Anthropic up to
about 1,600)."""

DOCUMENT_BYTES_PER_TOKEN = 50
"""Document bytes estimated per token (a PDF's text plus its pages read as images)."""

AUDIO_BYTES_PER_TOKEN = 400
"""Audio bytes estimated per token (about 10 tokens a second of 32 kbit/s mp3)."""


def media_tokens(part: ContentPart) -> int:
    """Estimated input tokens of one media part: an image a fixed `IMAGE_TOKENS`, a document
    that plus its size, audio by its size; 0 for a text part (count its text instead)."""
    if isinstance(part, ImagePart):
        return IMAGE_TOKENS
    if isinstance(part, DocumentPart):
        return IMAGE_TOKENS + math.ceil(len(part.data) / DOCUMENT_BYTES_PER_TOKEN)
    if isinstance(part, AudioPart):
        return math.ceil(len(part.data) / AUDIO_BYTES_PER_TOKEN)
    return 0
