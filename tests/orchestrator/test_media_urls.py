"""Part URLs through the whole mesh: passed on where the provider takes a URL, refused with
the part named where it needs bytes and fetching is off, fetched once a call where allowed.

The fetching mesh's fetcher reaches a local media server only through its dial seam (see
`tests.support.media_server`); the emulator's echo shows what each provider received.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.media_settings import MediaFetchConfig
from llmesh.services.common.rpc_errors import from_rpc_error
from llmesh.services.core.chat import ChatRequest, DocumentPart, ImagePart, Message, Role
from llmesh.services.orchestrator.media import MediaPlan, needs_for
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.media_server import HOST, PDF, PNG, MediaServer
from tests.support.mesh import Mesh

ELSEWHERE = "https://docs.example.org/report.pdf"


@pytest.fixture(scope="module")
def media_server() -> Iterator[MediaServer]:
    server = MediaServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def fetch_mesh(media_server: MediaServer) -> Iterator[Mesh]:
    """A mesh whose orchestrator may fetch `HOST` (through the media server's seams)."""
    mesh = Mesh(media_fetcher=media_server.fetcher())
    mesh.start({"media_fetch": MediaFetchConfig(allow_hosts=(HOST,), allow_http=True)})
    try:
        yield mesh
    finally:
        mesh.stop()


def _input(model: str, *parts: chat_pb2.ContentPart, fallbacks: tuple[str, ...] = ()) -> Any:
    inp = chat_pb2.ChatInput(model=model, fallbacks=fallbacks)
    inp.messages.add(role=chat_pb2.ROLE_USER, parts=[chat_pb2.ContentPart(text="read"), *parts])
    return inp


def _doc(url: str) -> chat_pb2.ContentPart:
    return chat_pb2.ContentPart(
        document=chat_pb2.DocumentPart(url=url, media_type="application/pdf")
    )


def _image(url: str) -> chat_pb2.ContentPart:
    return chat_pb2.ContentPart(image=chat_pb2.ImagePart(url=url))


async def _chat(mesh: Mesh, inp: Any) -> str:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        reply = await stub.Chat(orchestrator_pb2.ChatRequest(input=inp), timeout=20)
    return str(reply.message.content)


async def _chat_error(mesh: Mesh, inp: Any) -> LlmeshError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _chat(mesh, inp)
    assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    return from_rpc_error(info.value)


def test_a_document_url_to_openai_without_fetching_is_a_400_naming_the_part(mesh: Mesh) -> None:
    body = {
        "input": {
            "model": "openai/gpt-4o-mini",
            "messages": [
                {
                    "role": "ROLE_USER",
                    "parts": [
                        {"text": "read"},
                        {"document": {"url": ELSEWHERE, "mediaType": "application/pdf"}},
                    ],
                }
            ],
        }
    }
    r = httpx.post(f"{mesh.gateway_url}/api/v1/chat", json=body, timeout=20)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["fieldViolations"][0]["field"] == "input.messages[0].parts[1].document.url"
    assert "media_fetch.allow_hosts" in error["fieldViolations"][0]["description"]


async def test_a_document_url_reaches_anthropic_as_a_url(mesh: Mesh) -> None:
    text = await _chat(mesh, _input("anthropic/claude-haiku-4-5", _doc(ELSEWHERE)))
    assert f"[document {ELSEWHERE}]" in text


async def test_with_fetching_openai_receives_the_document_as_file_data(
    fetch_mesh: Mesh, media_server: MediaServer
) -> None:
    url = media_server.url("report-1.pdf")
    text = await _chat(fetch_mesh, _input("openai/gpt-4o-mini", _doc(url)))
    assert f"[document application/pdf {len(PDF)} bytes]" in text
    assert media_server.hits["/report-1.pdf"] == 1


async def test_an_image_url_to_openai_passes_through_unfetched(
    fetch_mesh: Mesh, media_server: MediaServer
) -> None:
    url = media_server.url("photo-1.png")
    text = await _chat(fetch_mesh, _input("openai/gpt-4o-mini", _image(url)))
    assert f"[image {url}]" in text
    assert media_server.hits["/photo-1.png"] == 0


async def test_a_fallback_reuses_the_bytes_fetched_for_the_first_target(
    fetch_mesh: Mesh, media_server: MediaServer
) -> None:
    fetch_mesh.set_fault("gpt-media-down", "server_error")
    url = media_server.url("report-2.pdf")
    inp = _input("openai/gpt-media-down", _doc(url), fallbacks=("compat/echo",))
    text = await _chat(fetch_mesh, inp)
    assert f"[document application/pdf {len(PDF)} bytes]" in text
    assert media_server.hits["/report-2.pdf"] == 1  # three tries and a fallback: one fetch


async def test_a_host_off_the_allow_list_is_refused_naming_the_part(fetch_mesh: Mesh) -> None:
    err = await _chat_error(fetch_mesh, _input("openai/gpt-4o-mini", _doc(ELSEWHERE)))
    assert err.reason is Reason.INVALID_REQUEST
    (violation,) = err.violations
    assert violation.field == "input.messages[0].parts[1].document.url"
    assert "'docs.example.org' is not in media_fetch.allow_hosts" in violation.description


async def test_a_provider_set_to_fetch_gets_image_urls_as_bytes(media_server: MediaServer) -> None:
    plan = MediaPlan({"ollama": needs_for("openai-compatible", "fetch")}, media_server.fetcher())
    url = media_server.url("photo-2.png")
    request = ChatRequest((Message(Role.USER, parts=(ImagePart(url=url, detail="low"),)),))
    call = plan.for_call()
    sent = await call.prepare("ollama", request, None)
    assert sent.messages[0].parts == (ImagePart(data=PNG, media_type="image/png", detail="low"),)
    assert await call.prepare("ollama", request, None) == sent
    assert media_server.hits["/photo-2.png"] == 1


async def test_a_call_ending_mid_fetch_stops_the_fetch(media_server: MediaServer) -> None:
    """An attempt waiting for a fetch can be cancelled (a hedge that lost) without stopping
    the fetch another attempt may share; the call's end stops it."""
    plan = MediaPlan({"openai": needs_for("openai", "pass")}, media_server.fetcher())
    url = media_server.url("slow-1.pdf")
    request = ChatRequest((Message(Role.USER, parts=(DocumentPart(url=url),)),))
    call = plan.for_call()
    attempt = asyncio.ensure_future(call.prepare("openai", request, None))
    while media_server.hits["/slow-1.pdf"] == 0:  # noqa: ASYNC110 - counted in another thread
        await asyncio.sleep(0.01)
    before = asyncio.all_tasks()
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await attempt
    (fetch,) = (t for t in before if "MediaFetcher.fetch" in repr(t.get_coro()))
    assert not fetch.done()
    call.cancel()
    await asyncio.gather(fetch, return_exceptions=True)
    assert fetch.cancelled()


@pytest.mark.parametrize(
    ("kind", "media_urls", "images", "documents"),
    [
        ("openai", "pass", False, True),
        ("openai-compatible", "pass", False, True),
        ("emulator", "pass", False, True),
        ("anthropic", "pass", False, False),
        ("anthropic", "fetch", True, True),
        ("openai-compatible", "fetch", True, True),
    ],
)
def test_what_each_provider_needs_as_bytes(
    kind: str, media_urls: str, images: bool, documents: bool
) -> None:
    needs = needs_for(kind, media_urls)
    assert needs.of(ImagePart(url="https://x/a.png")) is images
    assert needs.of(DocumentPart(url="https://x/a.pdf")) is documents
    assert not needs.of(ImagePart(data=PNG, media_type="image/png"))


async def test_a_request_needing_nothing_is_sent_as_it_is() -> None:
    plan = MediaPlan({"openai": needs_for("openai", "pass")}, None)
    request = ChatRequest((Message(Role.USER, parts=(ImagePart(url="https://x/a.png"),)),))
    assert await plan.for_call().prepare("openai", request, None) is request
    with pytest.raises(LlmeshError) as caught:
        doc = ChatRequest((Message(Role.USER, parts=(DocumentPart(url=ELSEWHERE),)),))
        await plan.for_call().prepare("openai", doc, None)
    assert caught.value.violations[0].field == "input.messages[0].parts[0].document.url"
