"""The WebSocket chat protocol: events, cancellation, bad frames, disconnects."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from gateway import RunningGateway
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


async def test_events_then_close_1000(gateway: RunningGateway, fake_mesh: FakeMesh) -> None:
    headers = {"x-llmesh-timeout": "9", "authorization": "Bearer ws"}
    async with connect(ws_url(gateway), proxy=None, additional_headers=headers) as ws:
        await ws.send(chat_frame("fake/text").decode())
        frames, code = await drain(ws)
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
        frames, code = await drain(ws)
    assert code == 1000
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
        frames, _ = await drain(ws)
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
        frames, code = await drain(ws)
    assert code == 1000
    assert [(f["type"], f["error"]["reason"]) for f in frames] == [("error", "CANCELLED")]
    assert frames[0]["error"]["code"] == 499
    await asyncio.wait_for(fake_mesh.orchestrator.cancelled.wait(), 1.0)


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
async def test_bad_first_frame_is_invalid_request(gateway: RunningGateway, frame: str) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(frame)
        frames, code = await drain(ws)
    assert code == 1000
    assert len(frames) == 1
    assert frames[0]["type"] == "error"
    assert frames[0]["error"]["reason"] == "INVALID_REQUEST"


async def test_cancel_before_chat(gateway: RunningGateway) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send('{"type": "cancel"}')
        frames, _ = await drain(ws)
    assert frames[0]["error"]["reason"] == "CANCELLED"


async def test_bad_frame_during_the_stream_ends_the_call(
    gateway: RunningGateway, fake_mesh: FakeMesh
) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(chat_frame("fake/slow").decode())
        await ws.recv()
        await ws.send("{oops")
        frames, code = await drain(ws)
    assert code == 1000
    assert frames[-1]["type"] == "error"
    assert frames[-1]["error"]["reason"] == "INVALID_REQUEST"
    await asyncio.wait_for(fake_mesh.orchestrator.cancelled.wait(), 1.0)


async def test_disconnect_cancels_the_grpc_call(
    gateway: RunningGateway, fake_mesh: FakeMesh
) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(chat_frame("fake/slow").decode())
        await ws.recv()
    await asyncio.wait_for(fake_mesh.orchestrator.cancelled.wait(), 1.0)


async def test_disconnect_before_the_first_event_cancels_the_grpc_call(
    gateway: RunningGateway, fake_mesh: FakeMesh
) -> None:
    async with connect(ws_url(gateway), proxy=None) as ws:
        await ws.send(chat_frame("fake/slow-start").decode())
        await asyncio.wait_for(fake_mesh.orchestrator.called.wait(), 5)
    await asyncio.wait_for(fake_mesh.orchestrator.cancelled.wait(), 1.0)
