"""A document sent by URL on the Anthropic and Responses surfaces is a PDF the orchestrator
accepts (it names no media type of its own, and the orchestrator requires one)."""

from __future__ import annotations

from llmesh.gateway.anthropic.request import parse_messages_request
from llmesh.gateway.responses_api.request import parse_request
from llmesh.services.core.chat import DocumentPart
from llmesh.services.orchestrator.convert import chat_call_from_proto

URL = "https://example.com/a.pdf"


def test_an_anthropic_url_document_passes_the_orchestrator() -> None:
    block = {"type": "document", "source": {"type": "url", "url": URL}, "title": "A"}
    body = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": [block]}],
    }
    call = chat_call_from_proto(parse_messages_request(body).input, True)
    assert call.request.messages[0].parts == (DocumentPart(b"", "application/pdf", "A", URL),)


def test_a_responses_file_url_passes_the_orchestrator() -> None:
    part = {"type": "input_file", "file_url": URL}
    body = {"model": "m", "input": [{"role": "user", "content": [part]}]}
    call = chat_call_from_proto(parse_request(body).chat_input([]), True)
    assert call.request.messages[0].parts == (DocumentPart(b"", "application/pdf", "", URL),)
