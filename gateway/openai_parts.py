"""OpenAI-style content arrays of /v1 chat messages mapped to `ContentPart`s.

``text``, ``image_url`` (an http(s) URL, passed on unfetched, or a base64 ``data:`` URL),
``file`` (``file_data``, a base64 ``data:`` URL) and ``input_audio`` (base64 ``data`` and
``format``) become parts; any other part type is a 400 naming its field path. Media types and
sizes are checked by the orchestrator, which names the part (``input.messages[i].parts[j]``).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from llmesh.services.common.errors import invalid
from llmesh.v1 import chat_pb2

__all__ = ["has_media", "to_parts"]

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.DOTALL)
_MEDIA = ("image_url", "file", "input_audio")


def has_media(value: list[Any]) -> bool:
    """True when a content array holds any part other than text."""
    return any(isinstance(p, dict) and p.get("type") in _MEDIA for p in value)


def _b64(text: Any, path: str) -> bytes:
    if not isinstance(text, str):
        raise invalid(path, "must be a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise invalid(path, "is not valid base64") from None


def _data_url(url: str, path: str) -> tuple[str, bytes]:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise invalid(path, "must be an http(s) URL or a base64 data: URL")
    return match.group(1), _b64(match.group(2), path)


def _obj(part: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    inner = part.get(key)
    if not isinstance(inner, dict):
        raise invalid(f"{path}.{key}", "must be an object")
    return inner


def _part(part: Any, path: str) -> chat_pb2.ContentPart:
    if not isinstance(part, dict):
        raise invalid(path, "must be an object")
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise invalid(f"{path}.text", "must be a string")
        return chat_pb2.ContentPart(text=text)
    if kind == "image_url":
        inner = _obj(part, "image_url", path)
        url = inner.get("url")
        if not isinstance(url, str):
            raise invalid(f"{path}.image_url.url", "must be a string")
        detail = inner.get("detail") or ""
        if not isinstance(detail, str):
            raise invalid(f"{path}.image_url.detail", "must be a string")
        if url.startswith(("http://", "https://")):
            return chat_pb2.ContentPart(image=chat_pb2.ImagePart(url=url, detail=detail))
        media_type, data = _data_url(url, f"{path}.image_url.url")
        return chat_pb2.ContentPart(
            image=chat_pb2.ImagePart(data=data, media_type=media_type, detail=detail)
        )
    if kind == "file":
        inner = _obj(part, "file", path)
        if "file_id" in inner:
            raise invalid(f"{path}.file.file_id", "is not supported; send file_data")
        file_data = inner.get("file_data")
        if not isinstance(file_data, str):
            raise invalid(f"{path}.file.file_data", "must be a base64 data: URL")
        media_type, data = _data_url(file_data, f"{path}.file.file_data")
        title = inner.get("filename") or ""
        if not isinstance(title, str):
            raise invalid(f"{path}.file.filename", "must be a string")
        return chat_pb2.ContentPart(
            document=chat_pb2.DocumentPart(data=data, media_type=media_type, title=title)
        )
    if kind == "input_audio":
        inner = _obj(part, "input_audio", path)
        fmt = inner.get("format")
        if not isinstance(fmt, str):
            raise invalid(f"{path}.input_audio.format", "must be a string")
        data = _b64(inner.get("data"), f"{path}.input_audio.data")
        return chat_pb2.ContentPart(input_audio=chat_pb2.AudioPart(data=data, format=fmt))
    raise invalid(
        f"{path}.type",
        f"unsupported content part {kind!r}; use text, image_url, file or input_audio",
    )


def to_parts(value: list[Any], path: str) -> list[chat_pb2.ContentPart]:
    """The content parts of an OpenAI-style content array at `path`."""
    return [_part(p, f"{path}[{j}]") for j, p in enumerate(value)]
