"""Content parts (images, documents, audio) on both provider wires, prompt-cache breakpoints
over them, and how estimates and budgets count them: pure functions, no network."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import (
    AudioPart,
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    Role,
    TextPart,
)
from llmesh.services.core.media_tokens import IMAGE_TOKENS
from llmesh.services.orchestrator.admission.spend import IMAGE_BOUND, input_bound
from llmesh.services.orchestrator.estimate import estimate_input_tokens
from llmesh.services.orchestrator.providers import anthropic_wire, openai_wire
from llmesh.services.orchestrator.providers.prompt_cache import place_breakpoints

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(50))
PDF = b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n2 0 obj << /Type /Page >> endobj\n"
B64_PNG = base64.b64encode(PNG).decode()
B64_PDF = base64.b64encode(PDF).decode()


def _user(*parts: object) -> ChatRequest:
    return ChatRequest((Message(Role.USER, parts=parts),))  # type: ignore[arg-type]


def test_openai_wire_sends_a_content_array() -> None:
    req = _user(
        TextPart("look"),
        ImagePart(data=PNG, media_type="image/png", detail="low"),
        ImagePart(url="https://example.com/a.png"),
        DocumentPart(PDF, "application/pdf", "r.pdf"),
        AudioPart(b"RIFFdata", "wav"),
    )
    body = openai_wire.to_provider_request("m", req)
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{B64_PNG}", "detail": "low"},
        },
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {
            "type": "file",
            "file": {"file_data": f"data:application/pdf;base64,{B64_PDF}", "filename": "r.pdf"},
        },
        {
            "type": "input_audio",
            "input_audio": {"data": base64.b64encode(b"RIFFdata").decode(), "format": "wav"},
        },
    ]


def test_a_text_message_stays_a_string_on_both_wires() -> None:
    req = ChatRequest((Message(Role.USER, "hi"),))
    assert openai_wire.to_provider_request("m", req)["messages"][0]["content"] == "hi"
    body = anthropic_wire.to_provider_request("m", req)
    assert body["messages"][0]["content"] == [{"type": "text", "text": "hi"}]


def test_anthropic_wire_sends_image_and_document_blocks() -> None:
    req = _user(
        TextPart("look"),
        ImagePart(data=PNG, media_type="image/png", detail="high"),
        ImagePart(url="https://example.com/a.png"),
        DocumentPart(PDF, "application/pdf", "Report"),
    )
    req = replace(req, prompt_cache="off")
    body = anthropic_wire.to_provider_request("m", req)
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "look"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": B64_PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": B64_PDF},
            "title": "Report",
        },
    ]


def test_anthropic_wire_refuses_audio_naming_the_part() -> None:
    req = _user(TextPart("listen"), AudioPart(b"RIFF", "wav"))
    with pytest.raises(LlmeshError) as caught:
        anthropic_wire.to_provider_request("m", req)
    assert caught.value.reason is Reason.INVALID_REQUEST
    assert caught.value.violations[0].field == "messages[0].parts[1].input_audio"


def test_anthropic_system_parts_must_be_text() -> None:
    req = ChatRequest(
        (
            Message(Role.SYSTEM, parts=(TextPart("be brief"), ImagePart(url="https://x/a.png"))),
            Message(Role.USER, "hi"),
        )
    )
    with pytest.raises(LlmeshError) as caught:
        anthropic_wire.to_provider_request("m", req)
    assert caught.value.violations[0].field == "messages[0].parts[1]"
    ok = ChatRequest((Message(Role.SYSTEM, parts=(TextPart("be brief"),)), Message(Role.USER, "x")))
    assert anthropic_wire.to_provider_request("m", ok)["system"] == [
        {"type": "text", "text": "be brief"}
    ]


def test_breakpoints_land_after_a_document_before_the_final_question() -> None:
    """A long document in an earlier turn is the stable prefix: marked, by its size."""
    big = b"%PDF-1.4\n" + b"x" * 200_000
    req = ChatRequest(
        (
            Message(Role.USER, parts=(DocumentPart(big), TextPart("read this"))),
            Message(Role.ASSISTANT, "Done."),
            Message(Role.USER, "question?"),
        )
    )
    body = anthropic_wire.to_provider_request("claude-sonnet", req)
    marked = [
        (i, j)
        for i, m in enumerate(body["messages"])
        for j, b in enumerate(m["content"])
        if "cache_control" in b
    ]
    assert marked == [(1, 0)]


def test_an_image_counts_a_fixed_estimate_not_its_base64_length() -> None:
    """A small image alone is not a long prefix: no breakpoint for it."""
    req = ChatRequest(
        (
            Message(Role.USER, parts=(ImagePart(data=b"x" * 100_000, media_type="image/png"),)),
            Message(Role.ASSISTANT, "A cat."),
            Message(Role.USER, "and?"),
        )
    )
    body = place_breakpoints(anthropic_wire.to_provider_request("claude-haiku", req))
    assert not any("cache_control" in b for m in body["messages"] for b in m["content"])


def test_estimates_and_bounds_count_parts() -> None:
    text = ChatRequest((Message(Role.USER, "look"),))
    image = _user(TextPart("look"), ImagePart(url="https://x/a.png"))
    assert estimate_input_tokens(image) - estimate_input_tokens(text) == IMAGE_TOKENS
    assert input_bound(image) - input_bound(text) >= IMAGE_BOUND
    doc = _user(DocumentPart(PDF))
    assert input_bound(doc) >= len(PDF) + 2 * 3_000  # two pages
    assert estimate_input_tokens(doc) > estimate_input_tokens(ChatRequest((Message(Role.USER),)))
