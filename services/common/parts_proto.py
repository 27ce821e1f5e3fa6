"""A message's content parts between protobuf and the domain, checked once for every service.

The orchestrator validates a call's parts with this before anything is sent; the processor
counts the same parts, so both read them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmesh.services.common.errors import Violation
from llmesh.services.common.media_settings import PartLimits
from llmesh.services.core.chat import (
    AUDIO_FORMATS,
    DOCUMENT_MEDIA_TYPES,
    IMAGE_MEDIA_TYPES,
    AudioPart,
    CacheControl,
    ContentPart,
    DocumentPart,
    ImagePart,
    TextPart,
)
from llmesh.v1 import chat_pb2

__all__ = [
    "cache_control_from_proto",
    "cache_control_to_proto",
    "part_to_proto",
    "parts_from_proto",
]

_DETAILS = frozenset({"", "auto", "low", "high"})
_DEFAULT_LIMITS = PartLimits()
_TTLS = frozenset({"", "5m", "1h"})


def cache_control_from_proto(owner: object, path: str, violation: Violation) -> CacheControl | None:
    """The breakpoint `owner` (a proto message with a ``cache_control`` field) carries."""
    if not owner.HasField("cache_control"):  # type: ignore[attr-defined]
        return None
    ttl: str = owner.cache_control.ttl  # type: ignore[attr-defined]
    if ttl not in _TTLS:
        violation(f"{path}.cache_control.ttl", 'must be "5m" or "1h"')
    return CacheControl(ttl)


def cache_control_to_proto(control: CacheControl | None) -> chat_pb2.CacheControl | None:
    """The protobuf form of a breakpoint (None for none)."""
    return None if control is None else chat_pb2.CacheControl(ttl=control.ttl)


def parts_from_proto(
    parts: Sequence[chat_pb2.ContentPart],
    path: str,
    violation: Violation,
    limits: PartLimits = _DEFAULT_LIMITS,
) -> tuple[ContentPart, ...]:
    """Validate a message's content parts (`violation` is told each bad field, by its path
    under `path`, a part over its kind's size in `limits` too) and map them to the domain."""
    out: list[ContentPart] = []
    for k, p in enumerate(parts):
        at = f"{path}[{k}]"
        kind = p.WhichOneof("kind")
        control = cache_control_from_proto(p, at, violation)
        if kind == "text":
            out.append(TextPart(p.text, control))
        elif kind == "image":
            img = p.image
            if img.WhichOneof("source") == "url":
                if not _is_http_url(img.url):
                    violation(f"{at}.image.url", "must be an http or https URL")
            elif not img.data:
                violation(f"{at}.image", "needs a url or data")
            else:
                if img.media_type not in IMAGE_MEDIA_TYPES:
                    violation(
                        f"{at}.image.media_type", f"must be one of {_list(IMAGE_MEDIA_TYPES)}"
                    )
                _check_size(img.data, limits, "image", f"{at}.image.data", violation)
            if img.detail not in _DETAILS:
                violation(f"{at}.image.detail", 'must be "auto", "low" or "high"')
            out.append(ImagePart(img.url, img.data, img.media_type, img.detail, control))
        elif kind == "document":
            doc = p.document
            if doc.media_type not in DOCUMENT_MEDIA_TYPES:
                violation(
                    f"{at}.document.media_type", f"must be one of {_list(DOCUMENT_MEDIA_TYPES)}"
                )
            if doc.url and doc.data:
                violation(f"{at}.document", "needs a url or data, not both")
            elif doc.url and not _is_http_url(doc.url):
                violation(f"{at}.document.url", "must be an http or https URL")
            elif not doc.url and not doc.data:
                violation(f"{at}.document.data", "is required (or a url)")
            _check_size(doc.data, limits, "document", f"{at}.document.data", violation)
            out.append(DocumentPart(doc.data, doc.media_type, doc.title, doc.url, control))
        elif kind == "input_audio":
            audio = p.input_audio
            if audio.format not in AUDIO_FORMATS:
                violation(f"{at}.input_audio.format", f"must be one of {_list(AUDIO_FORMATS)}")
            if not audio.data:
                violation(f"{at}.input_audio.data", "is required")
            _check_size(audio.data, limits, "audio", f"{at}.input_audio.data", violation)
            out.append(AudioPart(audio.data, audio.format))
        else:
            violation(at, "must hold text, image, document or input_audio")
    return tuple(out)


def _is_http_url(url: str) -> bool:
    scheme, _, rest = url.partition("://")
    return scheme in ("http", "https") and bool(rest)


def _check_size(
    data: bytes, limits: PartLimits, kind: str, path: str, violation: Violation
) -> None:
    key = f"max_{kind}_bytes"
    limit: int = getattr(limits, key)
    if len(data) > limit:
        violation(path, f"is {len(data)} bytes, over the limit of {limit} bytes (limits.{key})")


def _list(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


def part_to_proto(part: ContentPart) -> chat_pb2.ContentPart:
    """The protobuf form of a content part."""
    if isinstance(part, TextPart):
        return chat_pb2.ContentPart(
            text=part.text, cache_control=cache_control_to_proto(part.cache_control)
        )
    if isinstance(part, ImagePart):
        img = chat_pb2.ImagePart(media_type=part.media_type, detail=part.detail)
        if part.url:
            img.url = part.url
        else:
            img.data = part.data
        return chat_pb2.ContentPart(
            image=img, cache_control=cache_control_to_proto(part.cache_control)
        )
    if isinstance(part, DocumentPart):
        return chat_pb2.ContentPart(
            document=chat_pb2.DocumentPart(
                data=part.data, media_type=part.media_type, title=part.title, url=part.url
            ),
            cache_control=cache_control_to_proto(part.cache_control),
        )
    return chat_pb2.ContentPart(input_audio=chat_pb2.AudioPart(data=part.data, format=part.format))
