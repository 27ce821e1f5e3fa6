"""`Message.parts` (images, documents, audio) mapped to the domain, with its validation,
and sent over gRPC to providers of both wires."""

from __future__ import annotations

import grpc
import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.media_settings import PartLimits
from llmesh.services.common.parts_proto import part_to_proto
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core.chat import (
    AudioPart,
    DocumentPart,
    ImagePart,
    TextPart,
)
from llmesh.services.orchestrator.convert import chat_call_from_proto
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.mesh import Mesh

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(100))
PDF = b"%PDF-1.4\n%%EOF\n"
PDF_TYPE = "application/pdf"
MAX_IMAGE_BYTES = PartLimits().max_image_bytes
MAX_DOCUMENT_BYTES = PartLimits().max_document_bytes


def _input(*parts: chat_pb2.ContentPart, model: str = "p/m", **kw: str) -> chat_pb2.ChatInput:
    inp = chat_pb2.ChatInput(model=model)
    inp.messages.add(role=chat_pb2.ROLE_SYSTEM, content="be brief")
    inp.messages.add(role=chat_pb2.ROLE_USER, parts=parts, **kw)
    return inp


def _image(**kw: object) -> chat_pb2.ContentPart:
    return chat_pb2.ContentPart(image=chat_pb2.ImagePart(**kw))  # type: ignore[arg-type]


def test_parts_map_to_the_domain_in_order_and_back() -> None:
    inp = _input(
        chat_pb2.ContentPart(text="look"),
        _image(data=PNG, media_type="image/png", detail="high"),
        _image(url="https://example.com/a.jpg"),
        chat_pb2.ContentPart(document=chat_pb2.DocumentPart(data=PDF, media_type=PDF_TYPE)),
        chat_pb2.ContentPart(input_audio=chat_pb2.AudioPart(data=b"RIFF", format="wav")),
    )
    parts = chat_call_from_proto(inp, True).request.messages[1].parts
    assert parts == (
        TextPart("look"),
        ImagePart(data=PNG, media_type="image/png", detail="high"),
        ImagePart(url="https://example.com/a.jpg"),
        DocumentPart(PDF, "application/pdf"),
        AudioPart(b"RIFF", "wav"),
    )
    assert [part_to_proto(p) for p in parts] == list(inp.messages[1].parts)


def test_a_text_message_has_no_parts() -> None:
    inp = chat_pb2.ChatInput(model="p/m")
    inp.messages.add(role=chat_pb2.ROLE_USER, content="hi")
    assert chat_call_from_proto(inp, True).request.messages[0].parts == ()


@pytest.mark.parametrize(
    ("part", "field"),
    [
        (_image(data=PNG, media_type="image/tiff"), "input.messages[1].parts[0].image.media_type"),
        (_image(data=b"x" * (MAX_IMAGE_BYTES + 1), media_type="image/png"), "parts[0].image.data"),
        (_image(url="file:///etc/passwd"), "input.messages[1].parts[0].image.url"),
        (_image(url="http://x/a.png", detail="ultra"), "input.messages[1].parts[0].image.detail"),
        (_image(), "input.messages[1].parts[0].image"),
        (
            chat_pb2.ContentPart(
                document=chat_pb2.DocumentPart(data=b"x" * (MAX_DOCUMENT_BYTES + 1))
            ),
            "input.messages[1].parts[0].document.media_type",
        ),
        (
            chat_pb2.ContentPart(input_audio=chat_pb2.AudioPart(data=b"x", format="flac")),
            "input.messages[1].parts[0].input_audio.format",
        ),
        (chat_pb2.ContentPart(), "input.messages[1].parts[0]"),
    ],
)
def test_a_bad_part_names_its_field(part: chat_pb2.ContentPart, field: str) -> None:
    with pytest.raises(LlmeshError) as caught:
        chat_call_from_proto(_input(part), True)
    assert caught.value.reason is Reason.INVALID_REQUEST
    assert any(v.field.endswith(field) for v in caught.value.violations)


def test_an_oversized_document_names_its_data() -> None:
    big = chat_pb2.DocumentPart(data=b"x" * (MAX_DOCUMENT_BYTES + 1), media_type="application/pdf")
    with pytest.raises(LlmeshError) as caught:
        chat_call_from_proto(_input(chat_pb2.ContentPart(document=big)), True)
    fields = [v.field for v in caught.value.violations]
    assert fields == ["input.messages[1].parts[0].document.data"]


def test_content_beside_parts_is_refused() -> None:
    with pytest.raises(LlmeshError) as caught:
        chat_call_from_proto(_input(chat_pb2.ContentPart(text="a"), content="b"), True)
    assert caught.value.violations[0].field == "input.messages[1].content"


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
async def test_grpc_chat_with_an_image_part(mesh: Mesh, model: str) -> None:
    inp = _input(
        chat_pb2.ContentPart(text="what is it"),
        _image(data=PNG, media_type="image/png"),
        model=model,
    )
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        reply = await stub.Chat(orchestrator_pb2.ChatRequest(input=inp), timeout=10)
    assert f"[image image/png {len(PNG)} bytes]" in reply.message.content


async def test_grpc_audio_to_an_anthropic_model_is_invalid(mesh: Mesh) -> None:
    audio = chat_pb2.ContentPart(input_audio=chat_pb2.AudioPart(data=b"RIFF", format="wav"))
    inp = _input(audio, model="anthropic/claude-haiku-4-5")
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Chat(orchestrator_pb2.ChatRequest(input=inp), timeout=10)
    err = from_rpc_error(info.value)
    assert err.reason is Reason.INVALID_REQUEST
    assert any("parts[0].input_audio" in v.field for v in err.violations), err
