"""The gateway over the real orchestrator and emulator: the whole path a web client takes."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest
import websockets

from tests.support.mesh import Mesh

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
    }
]


def _client(mesh: Mesh) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{mesh.gateway_url}/v1", api_key="unused", max_retries=0)


async def _wait_disconnect(mesh: Mesh, model: str, before: int, limit: float = 2.0) -> float:
    started = time.monotonic()
    while True:
        stats = await asyncio.to_thread(mesh.stats)
        if stats.get("by_model", {}).get(model, {}).get("disconnects", 0) > before:
            return time.monotonic() - started
        assert time.monotonic() - started < limit, "the upstream never saw the cancellation"
        await asyncio.sleep(0.01)


async def _disconnects(mesh: Mesh, model: str) -> int:
    stats = await asyncio.to_thread(mesh.stats)
    return int(stats.get("by_model", {}).get(model, {}).get("disconnects", 0))


@pytest.mark.parametrize("model", ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5"])
async def test_openai_sdk_tool_calls_stream_and_unary(mesh: Mesh, model: str) -> None:
    messages = [{"role": "user", "content": "use get_weather please"}]
    async with _client(mesh) as client:
        whole = await client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
        stream = await client.chat.completions.create(
            model=model,
            messages=messages,
            tools=TOOLS,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    call = whole.choices[0].message.tool_calls[0]
    assert whole.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"text": "use get_weather please"}
    args: dict[int, str] = {}
    for c in chunks:
        for d in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            args[d.index] = args.get(d.index, "") + (d.function.arguments or "")
    assert json.loads(args[0]) == json.loads(call.function.arguments)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


async def test_fallbacks_in_the_openai_body(mesh: Mesh) -> None:
    await asyncio.to_thread(mesh.set_fault, "e2e-down", "unavailable")
    async with _client(mesh) as client:
        reply = await client.chat.completions.create(
            model="openai/e2e-down",
            messages=[{"role": "user", "content": "rescued"}],
            extra_body={"fallbacks": ["emulator/echo"]},
        )
    assert reply.choices[0].message.content == "rescued"


async def test_bare_model_names_through_the_openai_sdk(mesh: Mesh) -> None:
    async with _client(mesh) as client:
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "bare"}]
        )
        assert reply.choices[0].message.content == "bare"
        model = await client.models.retrieve("gpt-4o-mini")
        assert (model.id, model.owned_by) == ("gpt-4o-mini", "openai")
        with pytest.raises(openai.NotFoundError) as listed_twice:
            await client.models.retrieve("echo")
        assert "compat/echo, emulator/echo" in listed_twice.value.message
        with pytest.raises(openai.NotFoundError) as listed_twice:
            await client.chat.completions.create(
                model="echo", messages=[{"role": "user", "content": "x"}]
            )
        assert "compat/echo, emulator/echo" in listed_twice.value.message


async def test_cut_upstream_makes_the_sdk_raise_not_finish(mesh: Mesh) -> None:
    await asyncio.to_thread(mesh.set_fault, "e2e-cut", "cut", after=2)
    async with _client(mesh) as client:
        stream = await client.chat.completions.create(
            model="anthropic/e2e-cut",
            messages=[{"role": "user", "content": "one two three four five"}],
            stream=True,
        )
        got = []
        with pytest.raises(openai.APIError):
            async for chunk in stream:
                got.append(chunk)
    assert got, "some text arrived before the cut"


async def test_sse_client_disconnect_cancels_the_upstream(mesh: Mesh) -> None:
    model = "e2e-sse-stall"
    await asyncio.to_thread(mesh.set_fault, model, "stall", after=1)
    before = await _disconnects(mesh, model)
    body = {
        "input": {
            "model": f"openai/{model}",
            "messages": [{"role": "ROLE_USER", "content": "a b c"}],
        }
    }
    async with (
        httpx.AsyncClient(base_url=mesh.gateway_url, timeout=10) as http,
        http.stream("POST", "/api/v1/chat/stream", json=body) as r,
    ):
        assert r.status_code == 200
        async for line in r.aiter_lines():
            if "textDelta" in line:
                break
    await _wait_disconnect(mesh, model, before)


async def test_websocket_cancel_reaches_the_upstream(mesh: Mesh) -> None:
    model = "e2e-ws-stall"
    await asyncio.to_thread(mesh.set_fault, model, "stall", after=1)
    before = await _disconnects(mesh, model)
    url = mesh.gateway_url.replace("http://", "ws://") + "/api/v1/chat/ws"
    request = {
        "input": {
            "model": f"anthropic/{model}",
            "messages": [{"role": "ROLE_USER", "content": "a b c"}],
        }
    }
    async with websockets.connect(url) as ws:
        await ws.send(json.dumps({"type": "chat", "request": request}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert frame["type"] == "event"
            if "textDelta" in frame["event"]:
                break
        await ws.send(json.dumps({"type": "cancel"}))
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert frame["type"] == "error" and frame["error"]["reason"] == "CANCELLED"
    await _wait_disconnect(mesh, model, before)


async def test_websocket_streams_chats_to_one_finish_each(mesh: Mesh) -> None:
    url = mesh.gateway_url.replace("http://", "ws://") + "/api/v1/chat/ws"
    request = {
        "input": {
            "model": "emulator/echo",
            "messages": [{"role": "ROLE_USER", "content": "over a socket"}],
        }
    }
    async with websockets.connect(url) as ws:
        for _ in range(2):  # the socket serves one chat after another
            await ws.send(json.dumps({"type": "chat", "request": request}))
            frames = []
            while not frames or "finish" not in frames[-1]["event"]:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
            kinds = [next(iter(f["event"])) for f in frames]
            assert kinds[0] == "start" and kinds.count("finish") == 1
            text = "".join(
                f["event"]["textDelta"]["text"] for f in frames if "textDelta" in f["event"]
            )
            assert text == "over a socket"


async def test_processor_through_the_gateway(mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=mesh.gateway_url, timeout=10) as http:
        counted = await http.post(
            "/api/v1/tokens/count", json={"model": "openai/gpt-4o", "text": "hello world"}
        )
        fitted = await http.post(
            "/api/v1/context/fit",
            json={
                "model": "openai/gpt-4o",
                "maxTokens": 30,
                "messages": [
                    {"role": "ROLE_SYSTEM", "content": "be brief"},
                    {"role": "ROLE_USER", "content": "old " * 50},
                    {"role": "ROLE_USER", "content": "new question"},
                ],
            },
        )
    assert counted.status_code == 200
    assert counted.json() == {"tokens": "2", "tokenizer": "o200k_base", "exact": True}
    assert fitted.status_code == 200, fitted.text
    body = fitted.json()
    assert [m["content"] for m in body["messages"]] == ["be brief", "new question"]
    assert body["droppedIndices"] == [1]


async def test_an_unknown_model_is_404_for_counting_as_for_chat(mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=mesh.gateway_url, timeout=10) as http:
        counted = await http.post("/api/v1/tokens/count", json={"model": "nope/x", "text": "hi"})
        chat = await http.post(
            "/api/v1/chat",
            json={
                "input": {"model": "nope/x", "messages": [{"role": "ROLE_USER", "content": "hi"}]}
            },
        )
        alias = await http.post("/api/v1/tokens/count", json={"model": "fast", "text": "hi"})
    assert chat.status_code == 404
    assert counted.status_code == 404, counted.text
    assert counted.json()["error"]["reason"] == chat.json()["error"]["reason"] == "MODEL_NOT_FOUND"
    assert counted.json()["error"]["message"] == chat.json()["error"]["message"]
    assert alias.status_code == 200
