"""The WebSocket chat protocol: successive chats, cancellation, bad frames, disconnects."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from llmesh.gateway import RunningGateway
from tests.gateway.fakes import FakeMesh


def chat_frame(model: str) -> bytes:
    request = {"input": {"model": model, "messages": [{"role": "ROLE_USER", "content": "hi"}]}}
    return orjson.dumps({"type": "chat", "request": request})


def ws_url(gateway: RunningGateway) -> str:
    return f"ws://{gateway.host}:{gateway.port}/api/v1/chat/ws"


async def drain(ws: ClientConnection) -> tuple[list[Any], int | None]:
    """Every frame until the server closes, and the close code."""
    frames = []
    try:
        while True:
            frames.append(orjson.loads(await asyncio.wait_for(ws.recv(), 5)))
    except ConnectionClosed:
        pass
    return frames, ws.close_code


async def one_chat(ws: ClientConnection) -> list[Any]:
    """The frames of one chat, up to its terminal frame (a finish event or an error)."""
    frames = []
    while True:
        frame = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        frames.append(frame)
        if frame["type"] == "error" or "finish" in frame["event"]:
            return frames


async def test_events_then_the_socket_stays_open(
    gateway: RunningGateway, fake_mesh: FakeMesh
) -> None:
    headers = {"x-llmesh-timeout": "9", "authorization": "Bearer ws"}
    async with connect(ws_url(gateway), proxy=None, additional_headers=headers) as ws:
        await ws.send(chat_frame("fake/text").decode())
        frames = await one_chat(ws)
        await ws.close()
        code = ws.close_code
    assert code == 1000
    assert all(f["type"] == "event" for f in frames)
    kinds = [next(iter(f["event"])) for f in frames]
    assert kinds == ["start", "textDelta", "textDelta", "usage", "finish"]
    seen = fake_mesh.orchestrator.calls[-1]
    assert seen.metadata["authorization"] == "Bearer ws"
    assert seen.time_remaining is not None and seen.time_remaining <= 9.1  # grpc rounds up


async def test_upstream_error_is_an_error_frame(gateway: RunningGateway) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(chat_frame("fake/rate-limited"))  # binary frames work too
        frames = await one_chat(ws)
    assert frames == [
        {
            "type": "error",
            "error": {
                "code": 429,
                "status": "RESOURCE_EXHAUSTED",
                "reason": "RATE_LIMITED",
                "message": "slow down",
                "retryAfter": 1.5,
                "metadata": {},
            },
        }
    ]


async def test_mid_stream_error_follows_the_events(gateway: RunningGateway) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(chat_frame("fake/cut").decode())
        frames = await one_chat(ws)
    assert [f["type"] for f in frames] == ["event", "event", "error"]
    assert frames[-1]["error"]["reason"] == "STREAM_INTERRUPTED"


async def test_cancel_frame_cancels_the_grpc_call(
    gateway: RunningGateway, fake_mesh: FakeMesh
) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(chat_frame("fake/slow").decode())
        first = orjson.loads(await ws.recv())
        second = orjson.loads(await ws.recv())
        assert first["event"]["start"]["requestId"] == "req-slow"
        assert second["event"] == {"textDelta": {"text": "tick"}}
        await ws.send('{"type": "cancel"}')
        frames = await one_chat(ws)
    assert [(f["type"], f["error"]["reason"]) for f in frames] == [("error", "CANCELLED")]
    assert frames[0]["error"]["code"] == 499
    await asyncio.wait_for(fake_mesh.orchestrator.cancelled.wait(), 5.0)


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1]",
        '{"type": 5}',
        '{"type": "hello"}',
        '{"type": "chat"}',
        '{"type": "chat", "request": {"input": {"model": 7}}}',
    ],
)
async def test_a_bad_frame_between_chats_is_invalid_request_and_the_socket_serves_on(
    gateway: RunningGateway, frame: str
) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(frame)
        frames = await one_chat(ws)
        assert len(frames) == 1
        assert frames[0]["type"] == "error"
        assert frames[0]["error"]["reason"] == "INVALID_REQUEST"
        await ws.send(chat_frame("fake/text").decode())
        assert (await one_chat(ws))[-1]["event"]["finish"]["reason"] == "FINISH_REASON_STOP"


async def test_a_cancel_with_no_chat_in_flight_is_ignored(gateway: RunningGateway) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send('{"type": "cancel"}')
        await ws.send(chat_frame("fake/text").decode())
        frames = await one_chat(ws)
    assert [f["type"] for f in frames] == ["event"] * 5


async def test_successive_chats_share_one_socket(
    gateway: RunningGateway, fake_mesh: FakeMesh
) -> None:
    calls = len(fake_mesh.orchestrator.calls)
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(chat_frame("fake/text").decode())
        first = await one_chat(ws)
        await ws.send(chat_frame("fake/cut").decode())
        second = await one_chat(ws)
        await ws.send(chat_frame("fake/slow").decode())
        await ws.recv()
        await ws.send('{"type": "cancel"}')
        third = await one_chat(ws)
        await ws.send(chat_frame("fake/tools").decode())
        fourth = await one_chat(ws)
        await ws.close()
        code = ws.close_code
    assert code == 1000
    assert first[-1]["event"]["finish"]["reason"] == "FINISH_REASON_STOP"
    assert second[-1]["error"]["reason"] == "STREAM_INTERRUPTED"
    assert third[-1]["error"]["reason"] == "CANCELLED"
    assert fourth[-1]["event"]["finish"]["reason"] == "FINISH_REASON_TOOL_CALLS"
    assert [c.input.model for c in fake_mesh.orchestrator.calls[calls:]] == [
        "fake/text",
        "fake/cut",
        "fake/slow",
        "fake/tools",
    ]


async def test_a_chat_frame_sent_on_finish_before_the_stream_ended_is_served(
    gateway: RunningGateway, fake_mesh: FakeMesh
) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(chat_frame("fake/linger").decode())
        first = await one_chat(ws)
        await ws.send(chat_frame("fake/text").decode())  # the first stream has not ended yet
        second = await one_chat(ws)
    assert [f["type"] for f in first] == ["event", "event"]
    assert [f["type"] for f in second] == ["event"] * 5
    assert second[0]["event"]["start"]["requestId"] == "req-text"
    assert fake_mesh.orchestrator.completed == 2  # the first stream ended on its own
    assert not fake_mesh.orchestrator.cancelled.is_set()


async def test_a_bad_timeout_header_is_an_error_frame_then_close(gateway: RunningGateway) -> None:
    headers = {"x-llmesh-timeout": "soon"}
    async with connect(ws_url(gateway), proxy=None, additional_headers=headers) as ws:
        frames, code = await drain(ws)
    assert code == 1000
    assert [f["error"]["reason"] for f in frames] == ["INVALID_REQUEST"]


@pytest.mark.parametrize("frame", ["{oops", chat_frame("fake/text").decode()])
async def test_bad_frame_during_the_stream_ends_the_call(
    gateway: RunningGateway, fake_mesh: FakeMesh, frame: str
) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(chat_frame("fake/slow").decode())
        await ws.recv()
        await ws.send(frame)
        frames = await one_chat(ws)
    assert frames[-1]["type"] == "error"
    assert frames[-1]["error"]["reason"] == "INVALID_REQUEST"
    await asyncio.wait_for(fake_mesh.orchestrator.cancelled.wait(), 5.0)


async def test_disconnect_cancels_the_grpc_call(
    gateway: RunningGateway, fake_mesh: FakeMesh
) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(chat_frame("fake/slow").decode())
        await ws.recv()
    await asyncio.wait_for(fake_mesh.orchestrator.cancelled.wait(), 5.0)


async def test_disconnect_before_the_first_event_cancels_the_grpc_call(
    gateway: RunningGateway, fake_mesh: FakeMesh
) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(chat_frame("fake/slow-start").decode())
        await asyncio.wait_for(fake_mesh.orchestrator.called.wait(), 5)
    await asyncio.wait_for(fake_mesh.orchestrator.cancelled.wait(), 5.0)
