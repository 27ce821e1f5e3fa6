"""Images, documents and audio in prompts on both emulated APIs: accepted in the providers'
shapes, refused with their error shapes when malformed, counted deterministically and named
in the echo reply."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import httpx
import openai
import pytest

from llmesh.services.emulator.media import IMAGE_BASE_TOKENS, IMAGE_BYTES_PER_TOKEN
from llmesh.services.emulator.replies import MESSAGE_OVERHEAD, REPLY_OVERHEAD
from tests.emulator.helpers import MODEL

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
PDF = b"%PDF-1.4\n%%EOF\n"
B64_PNG = base64.b64encode(PNG).decode()
B64_PDF = base64.b64encode(PDF).decode()
IMAGE_TOKENS = IMAGE_BASE_TOKENS + len(PNG) // IMAGE_BYTES_PER_TOKEN
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "k"}


async def test_openai_image_file_and_audio_parts(oai: openai.AsyncOpenAI) -> None:
    content: Any = [
        {"type": "text", "text": "see"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{B64_PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{B64_PDF}"}},
        {"type": "input_audio", "input_audio": {"data": B64_PDF, "format": "mp3"}},
    ]
    reply = await oai.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}]
    )
    text = reply.choices[0].message.content or ""
    assert text.splitlines() == [
        "see",
        f"[image image/png {len(PNG)} bytes]",
        "[image https://example.com/a.png]",
        f"[document application/pdf {len(PDF)} bytes]",
        f"[audio mp3 {len(PDF)} bytes]",
    ]
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > MESSAGE_OVERHEAD + REPLY_OVERHEAD + IMAGE_TOKENS


@pytest.mark.parametrize(
    ("part", "code", "param"),
    [
        (
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}},
            "invalid_value",
            "messages[0].content[0].image_url.url",
        ),
        (
            {"type": "image_url", "image_url": {"url": f"data:image/tiff;base64,{B64_PNG}"}},
            "invalid_image_format",
            None,
        ),
        (
            {"type": "file", "file": {"file_data": f"data:text/plain;base64,{B64_PDF}"}},
            "invalid_value",
            "messages[0].content[0].file.file_data",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": B64_PDF, "format": "ogg"}},
            "invalid_value",
            "messages[0].content[0].input_audio.format",
        ),
    ],
)
async def test_openai_malformed_parts_are_400(
    oai: openai.AsyncOpenAI, part: dict[str, Any], code: str, param: str | None
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await oai.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [part]}],  # type: ignore[list-item]
        )
    assert caught.value.code == code and caught.value.param == param


async def test_anthropic_image_and_document_blocks(ant: anthropic.AsyncAnthropic) -> None:
    content: Any = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64_PNG}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": B64_PDF},
            "title": "Report",
        },
        {"type": "text", "text": "what are these?"},
    ]
    messages: Any = [{"role": "user", "content": content}]
    message = await ant.messages.create(model=MODEL, max_tokens=100, messages=messages)
    assert message.content[0].type == "text"
    assert message.content[0].text.splitlines() == [
        f"[image image/png {len(PNG)} bytes]",
        f"[document application/pdf {len(PDF)} bytes]",
        "what are these?",
    ]
    count = await ant.messages.count_tokens(model=MODEL, messages=messages)
    assert count.input_tokens == message.usage.input_tokens
    again = await ant.messages.count_tokens(model=MODEL, messages=messages)
    assert again.input_tokens == count.input_tokens  # deterministic


@pytest.mark.parametrize(
    ("block", "says"),
    [
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": ""}},
            "messages.0.content.0.image.source.base64.media_type",
        ),
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "!"}},
            "messages.0.content.0.image.source.base64.data",
        ),
        (
            {
                "type": "document",
                "source": {"type": "base64", "media_type": "image/png", "data": B64_PNG},
            },
            "messages.0.content.0.document.source.base64.media_type",
        ),
    ],
)
async def test_anthropic_malformed_blocks_are_400(
    http: httpx.AsyncClient, block: dict[str, Any], says: str
) -> None:
    body = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": [block]}]}
    resp = await http.post("/v1/messages", json=body, headers=HEADERS)
    assert resp.status_code == 400
    error = resp.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert says in error["error"]["message"]
