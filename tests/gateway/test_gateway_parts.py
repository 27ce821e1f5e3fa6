"""Images and documents as message content parts through the whole path: the official openai
SDK, the gateway, the orchestrator and the emulator (its OpenAI and Anthropic APIs)."""

from __future__ import annotations

import base64
from typing import Any

import openai
import pytest

from tests.support.mesh import Mesh

MODELS = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(200))
PDF = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n"


def _client(mesh: Mesh) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{mesh.gateway_url}/v1", api_key="unused", max_retries=0)


def _data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize("model", MODELS)
async def test_an_image_part_reaches_the_provider(mesh: Mesh, model: str) -> None:
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": _data_url("image/png", PNG)}},
            ],
        }
    ]
    async with _client(mesh) as client:
        reply = await client.chat.completions.create(model=model, messages=messages)
    text = reply.choices[0].message.content or ""
    assert f"[image image/png {len(PNG)} bytes]" in text
    assert "What is this?" in text
    assert reply.usage is not None and reply.usage.prompt_tokens > 10


async def test_a_pdf_file_part_arrives_at_anthropic_as_a_document(mesh: Mesh) -> None:
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Summarize"},
                {
                    "type": "file",
                    "file": {"file_data": _data_url("application/pdf", PDF), "filename": "r.pdf"},
                },
            ],
        }
    ]
    async with _client(mesh) as client:
        reply = await client.chat.completions.create(
            model="anthropic/claude-haiku-4-5", messages=messages
        )
    text = reply.choices[0].message.content or ""
    assert f"[document application/pdf {len(PDF)} bytes]" in text


@pytest.mark.parametrize(
    ("part", "field"),
    [
        (
            {"type": "image_url", "image_url": {"url": _data_url("image/tiff", PNG)}},
            "input.messages[0].parts[1].image.media_type",
        ),
        ({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}, "messages[0].content[1]"),
        ({"type": "video_url", "video_url": {"url": "https://x"}}, "messages[0].content[1].type"),
    ],
)
async def test_a_bad_part_is_a_400_naming_its_field(
    mesh: Mesh, part: dict[str, Any], field: str
) -> None:
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": "hi"}, part]}]
    async with _client(mesh) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages)
    assert field in str(caught.value)
