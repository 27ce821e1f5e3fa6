"""Size limits that fit together: the request's (``limits.max_message_bytes``), each part's
(``limits.max_*_bytes``), the gateway's body limit and the gRPC message limit derived from it.

A request within the request limit is never refused for its base64 overhead; a part over
its limit is a 400 / INVALID_ARGUMENT naming the part; a body over the derived limit is a
413; a gRPC message far over the limit is grpc's own RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import openai
import pytest

from llmesh.services.common.config import load_config
from llmesh.services.common.errors import Reason
from llmesh.services.common.media_settings import PartLimits, grpc_message_limit, http_body_limit
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.mesh import Mesh

MiB = 1024 * 1024
SMALL = {
    "max_message_bytes": 4 * MiB,
    "part_limits": PartLimits(max_image_bytes=1 * MiB, max_document_bytes=4 * MiB),
}


@pytest.fixture(scope="module")
def small_mesh() -> Iterator[Mesh]:
    """A mesh with a 4 MiB request limit and a 1 MiB image limit."""
    mesh = Mesh().start(SMALL)
    try:
        yield mesh
    finally:
        mesh.stop()


def _data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def _image_message(data: bytes) -> Any:
    part = {"type": "image_url", "image_url": {"url": _data_url("image/png", data)}}
    return [{"role": "user", "content": [part, {"type": "text", "text": "what is it"}]}]


def _client(mesh: Mesh) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{mesh.gateway_url}/v1", api_key="unused", max_retries=0)


def test_the_defaults_fit_together() -> None:
    config = load_config(None, env={})
    limits = config.part_limits
    biggest = max(limits.max_image_bytes, limits.max_document_bytes, limits.max_audio_bytes)
    assert biggest < config.max_message_bytes == 32 * MiB
    assert grpc_message_limit(config.max_message_bytes) > config.max_message_bytes
    # a request made of the biggest part, in base64 JSON, passes the body limit
    assert len(base64.b64encode(b"\0" * biggest)) < http_body_limit(config.max_message_bytes)


@pytest.mark.parametrize("limit", [4 * MiB, 32 * MiB])
def test_a_request_at_the_limit_fits_the_body_limit_in_base64_json(limit: int) -> None:
    """The JSON of a request whose serialized form is at the limit, its (random) bytes in
    base64 with every ``/`` escaped as some encoders write it, is within the body limit."""
    data = random.Random(7).randbytes(limit - 64)
    inp = chat_pb2.ChatInput(model="openai/gpt-4o-mini")
    inp.messages.add(
        role=chat_pb2.ROLE_USER,
        parts=[chat_pb2.ContentPart(image=chat_pb2.ImagePart(data=data, media_type="image/png"))],
    )
    assert orchestrator_pb2.ChatRequest(input=inp).ByteSize() <= limit
    body = json.dumps({"model": "x", "messages": _image_message(data)}).replace("/", "\\/")
    assert len(body) <= http_body_limit(limit)


async def test_a_6_mib_image_through_v1_reaches_the_emulator(mesh: Mesh) -> None:
    image = b"\x89PNG\r\n\x1a\n" + b"\x07" * (6 * MiB)
    async with _client(mesh) as client:
        reply = await client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=_image_message(image)
        )
    assert f"[image image/png {len(image)} bytes]" in (reply.choices[0].message.content or "")


async def test_an_image_over_its_limit_is_a_400_naming_the_part(small_mesh: Mesh) -> None:
    async with _client(small_mesh) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="openai/gpt-4o-mini", messages=_image_message(b"\0" * (MiB + 1))
            )
    assert "input.messages[0].parts[0].image.data" in str(caught.value)
    assert "limits.max_image_bytes" in str(caught.value)


async def test_an_image_over_its_limit_is_invalid_argument_over_grpc(small_mesh: Mesh) -> None:
    inp = chat_pb2.ChatInput(model="openai/gpt-4o-mini")
    image = chat_pb2.ImagePart(data=b"\0" * (MiB + 1), media_type="image/png")
    inp.messages.add(role=chat_pb2.ROLE_USER, parts=[chat_pb2.ContentPart(image=image)])
    async with grpc.aio.insecure_channel(small_mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Chat(orchestrator_pb2.ChatRequest(input=inp), timeout=10)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    err = from_rpc_error(info.value)
    assert err.reason is Reason.INVALID_REQUEST
    assert [v.field for v in err.violations] == ["input.messages[0].parts[0].image.data"]


async def test_a_request_near_the_limit_is_not_refused_for_its_base64(small_mesh: Mesh) -> None:
    """3.5 MiB of PDF is about 4.7 MiB of JSON: over the 4 MiB request limit as a body, but
    within it as a request, so it passes."""
    pdf = b"%PDF-1.4\n" + b"\x01" * (7 * MiB // 2)
    part = {"type": "file", "file": {"file_data": _data_url("application/pdf", pdf)}}
    messages: Any = [{"role": "user", "content": [part]}]
    async with _client(small_mesh) as client:
        reply = await client.chat.completions.create(
            model="anthropic/claude-haiku-4-5", messages=messages
        )
    text = reply.choices[0].message.content or ""
    assert f"[document application/pdf {len(pdf)} bytes]" in text


def test_a_body_over_the_derived_limit_is_a_413(small_mesh: Mesh) -> None:
    too_big = http_body_limit(4 * MiB) + 1
    body = b'{"model": "openai/gpt-4o-mini", "messages": [], "x": "' + b"a" * too_big + b'"}'
    r = httpx.post(
        f"{small_mesh.gateway_url}/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
        timeout=20,
    )
    assert r.status_code == 413, r.text


@pytest.mark.parametrize(
    ("size", "code"),
    [
        (4 * MiB + 100, grpc.StatusCode.INVALID_ARGUMENT),  # over the limit, within the margin
        (grpc_message_limit(4 * MiB) + 100, grpc.StatusCode.RESOURCE_EXHAUSTED),  # grpc's own
    ],
)
async def test_what_a_grpc_client_sees_for_an_oversize_request(
    small_mesh: Mesh, size: int, code: grpc.StatusCode
) -> None:
    inp = chat_pb2.ChatInput(model="emulator/echo")
    inp.messages.add(role=chat_pb2.ROLE_USER, content="x" * size)
    options = [("grpc.max_send_message_length", 64 * MiB)]
    async with grpc.aio.insecure_channel(small_mesh.orchestrator_address, options=options) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Chat(orchestrator_pb2.ChatRequest(input=inp), timeout=10)
    assert info.value.code() is code
