"""Images, documents and audio in prompts: checked like the real APIs, counted and echoed.

A media block becomes a `Block` of kind MEDIA whose text names it (``[image image/png 1234
bytes]``), so the echo reply shows what reached the provider, with a deterministic token
count: an image `IMAGE_BASE_TOKENS` plus one a `IMAGE_BYTES_PER_TOKEN` bytes (at most
`IMAGE_MAX_TOKENS`), a document `DOCUMENT_BASE_TOKENS` plus one a `DOCUMENT_BYTES_PER_TOKEN`
bytes, audio one a `AUDIO_BYTES_PER_TOKEN` bytes. A URL image counts `IMAGE_BASE_TOKENS`
(the emulator never fetches it).
"""

from __future__ import annotations

import base64
import binascii
import re

from llmesh.services.emulator.replies import Block, BlockKind

__all__ = [
    "IMAGE_TYPES",
    "audio_block",
    "decode_base64",
    "document_block",
    "document_url_block",
    "image_block",
    "image_url_block",
    "parse_data_url",
]

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
"""The image media types both APIs accept."""
IMAGE_BASE_TOKENS = 85
IMAGE_BYTES_PER_TOKEN = 750
IMAGE_MAX_TOKENS = 1600
DOCUMENT_BASE_TOKENS = 100
DOCUMENT_BYTES_PER_TOKEN = 50
AUDIO_BYTES_PER_TOKEN = 400

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.DOTALL)


def decode_base64(text: str) -> bytes | None:
    """The bytes of strict base64 `text`, or None when it is not valid base64."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_data_url(url: str) -> tuple[str, bytes] | None:
    """(media type, bytes) of a base64 ``data:`` URL, or None when it is not one."""
    match = _DATA_URL.fullmatch(url)
    if match is None:
        return None
    data = decode_base64(match.group(2))
    return None if data is None else (match.group(1), data)


def image_block(media_type: str, data: bytes, ttl: str | None = None) -> Block:
    """An inline image."""
    tokens = min(IMAGE_MAX_TOKENS, IMAGE_BASE_TOKENS + len(data) // IMAGE_BYTES_PER_TOKEN)
    return Block(BlockKind.MEDIA, f"[image {media_type} {len(data)} bytes]", ttl, tokens)


def image_url_block(url: str, ttl: str | None = None) -> Block:
    """An image by URL, not fetched."""
    return Block(BlockKind.MEDIA, f"[image {url}]", ttl, IMAGE_BASE_TOKENS)


def document_block(media_type: str, data: bytes, ttl: str | None = None) -> Block:
    """An inline document."""
    tokens = DOCUMENT_BASE_TOKENS + len(data) // DOCUMENT_BYTES_PER_TOKEN
    return Block(BlockKind.MEDIA, f"[document {media_type} {len(data)} bytes]", ttl, tokens)


def document_url_block(url: str, ttl: str | None = None) -> Block:
    """A document by URL, not fetched."""
    return Block(BlockKind.MEDIA, f"[document {url}]", ttl, DOCUMENT_BASE_TOKENS)


def audio_block(audio_format: str, data: bytes) -> Block:
    """An inline audio clip."""
    tokens = 1 + len(data) // AUDIO_BYTES_PER_TOKEN
    return Block(BlockKind.MEDIA, f"[audio {audio_format} {len(data)} bytes]", None, tokens)
