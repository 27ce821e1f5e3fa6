"""Content parts of Responses API message items -> `ContentPart`s, and reasoning items <->
`ThinkingBlock`s.

``input_text`` / ``output_text`` / ``refusal`` are text; ``input_image`` takes an
``image_url`` (http(s), passed on unfetched, or a base64 ``data:`` URL); ``input_file`` takes
``file_data`` (a base64 ``data:`` URL) or ``file_url``. A ``file_id`` is refused: llmesh has
no Files API behind this surface.

A reasoning item carries one thinking block. Its text travels as the item's ``summary``
(``summary_text`` parts; ``content`` ``reasoning_text`` parts are read too), and the
provider's proof in ``encrypted_content``: an Anthropic thinking signature verbatim, or
``redacted_thinking:<data>`` for a redacted block. So a reasoning item sent back (in the
input, or through ``previous_response_id``) reaches an Anthropic model byte-for-byte.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from llmesh.gateway.responses_api.fields import check_keys
from llmesh.services.common.errors import invalid
from llmesh.v1 import chat_pb2

__all__ = ["REDACTED_PREFIX", "reasoning_item", "text_of", "thinking_block", "to_parts"]

REDACTED_PREFIX = "redacted_thinking:"
"""``encrypted_content`` of a reasoning item holding a redacted thinking block."""

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.DOTALL)
_TEXT_KINDS = {"input_text": "text", "output_text": "text", "refusal": "refusal"}
_KEYS = {
    "input_text": frozenset({"type", "text"}),
    "output_text": frozenset({"type", "text", "annotations", "logprobs"}),
    "refusal": frozenset({"type", "refusal"}),
    "input_image": frozenset({"type", "image_url", "file_id", "detail"}),
    "input_file": frozenset({"type", "file_data", "file_url", "file_id", "filename", "detail"}),
}
_REASONING_KEYS = frozenset({"type", "id", "summary", "content", "encrypted_content", "status"})


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise invalid(path, "must be a string")
    return value


def _data_url(url: str, path: str) -> tuple[str, bytes]:
    match = _DATA_URL.fullmatch(url)
    if match is None:
        raise invalid(path, "must be an http(s) URL or a base64 data: URL")
    try:
        return match.group(1), base64.b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(path, "is not valid base64") from None


def _image(part: dict[str, Any], path: str) -> chat_pb2.ContentPart:
    if part.get("file_id") is not None:
        raise invalid(f"{path}.file_id", "is not supported; send image_url (a URL or data: URL)")
    url = _str(part.get("image_url"), f"{path}.image_url")
    detail = part.get("detail") or ""
    _str(detail, f"{path}.detail")
    if url.startswith(("http://", "https://")):
        return chat_pb2.ContentPart(image=chat_pb2.ImagePart(url=url, detail=detail))
    media_type, data = _data_url(url, f"{path}.image_url")
    image = chat_pb2.ImagePart(data=data, media_type=media_type, detail=detail)
    return chat_pb2.ContentPart(image=image)


def _file(part: dict[str, Any], path: str) -> chat_pb2.ContentPart:
    if part.get("file_id") is not None:
        raise invalid(f"{path}.file_id", "is not supported; send file_data or file_url")
    title = _str(part.get("filename") or "", f"{path}.filename")
    if part.get("file_url") is not None:
        url = _str(part["file_url"], f"{path}.file_url")
        # A URL file is a PDF, the one document type llmesh carries.
        doc = chat_pb2.DocumentPart(url=url, media_type="application/pdf", title=title)
        return chat_pb2.ContentPart(document=doc)
    raw = _str(part.get("file_data"), f"{path}.file_data")
    media_type, data = _data_url(raw, f"{path}.file_data")
    document = chat_pb2.DocumentPart(data=data, media_type=media_type, title=title)
    return chat_pb2.ContentPart(document=document)


def _part(part: Any, path: str, allowed: tuple[str, ...]) -> chat_pb2.ContentPart:
    if not isinstance(part, dict):
        raise invalid(path, "must be an object")
    kind = part.get("type")
    if kind not in allowed:
        raise invalid(f"{path}.type", f"must be one of {', '.join(allowed)}")
    check_keys(part, _KEYS[kind], path)
    if kind in _TEXT_KINDS:
        key = _TEXT_KINDS[kind]
        return chat_pb2.ContentPart(text=_str(part.get(key), f"{path}.{key}"))
    if kind == "input_image":
        return _image(part, path)
    return _file(part, path)


def to_parts(value: list[Any], path: str, allowed: tuple[str, ...]) -> list[chat_pb2.ContentPart]:
    """The parts of a content array at `path`; part types outside `allowed` are refused."""
    return [_part(p, f"{path}[{j}]", allowed) for j, p in enumerate(value)]


def text_of(parts: list[chat_pb2.ContentPart]) -> str | None:
    """The parts' text joined by newlines when all are text (as /v1 chat does), else None."""
    if all(p.WhichOneof("kind") == "text" for p in parts):
        return "\n".join(p.text for p in parts)
    return None


def _texts(value: Any, path: str, kind: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(path, "must be an array")
    out = []
    for j, part in enumerate(value):
        p = f"{path}[{j}]"
        if not isinstance(part, dict) or part.get("type") != kind:
            raise invalid(p, f'must be {{"type": "{kind}", "text": ...}}')
        check_keys(part, frozenset({"type", "text"}), p)
        out.append(_str(part.get("text"), f"{p}.text"))
    return out


def thinking_block(item: dict[str, Any], path: str) -> chat_pb2.ThinkingBlock | None:
    """The thinking block a reasoning item carries (None when it carries nothing)."""
    check_keys(item, _REASONING_KEYS, path)
    summary = _texts(item.get("summary"), f"{path}.summary", "summary_text")
    content = _texts(item.get("content"), f"{path}.content", "reasoning_text")
    encrypted = item.get("encrypted_content")
    if encrypted is not None:
        _str(encrypted, f"{path}.encrypted_content")
    text = "".join(content) if content else "".join(summary)
    if encrypted and encrypted.startswith(REDACTED_PREFIX):
        return chat_pb2.ThinkingBlock(redacted_data=encrypted[len(REDACTED_PREFIX) :])
    if not text and not encrypted:
        return None
    return chat_pb2.ThinkingBlock(thinking=text, signature=encrypted or "")


def reasoning_item(item_id: str, block: chat_pb2.ThinkingBlock) -> dict[str, Any]:
    """The reasoning output item of one thinking block."""
    if block.redacted_data:
        summary: list[dict[str, str]] = []
        encrypted: str | None = REDACTED_PREFIX + block.redacted_data
    else:
        summary = [{"type": "summary_text", "text": block.thinking}] if block.thinking else []
        encrypted = block.signature or None
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": summary,
        "encrypted_content": encrypted,
        "status": "completed",
    }
