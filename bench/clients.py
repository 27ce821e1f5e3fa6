"""Lean clients of one path to the upstream: straight over HTTP, or through llmesh.

Every path answers ``unary()`` (one whole reply) and ``stream(on_delta)`` (a streamed reply;
`on_delta(now, tokens)` is called as text arrives, with the number of whitespace-separated
words that arrived together, since one delta may carry several coalesced tokens). Requests
are built once per path; HTTP uses aiohttp and orjson, gRPC the generated grpc.aio stubs.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any, Protocol

import aiohttp
import grpc
import orjson

from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc

DeltaSink = Callable[[float, int], None]
"""Told (arrival time from `time.perf_counter`, tokens) for every piece of text received."""


class ChatPath(Protocol):
    """One way to reach the upstream with a fixed prompt."""

    name: str

    async def unary(self) -> None:
        """One non-streamed call; raises on any failure."""

    async def stream(self, on_delta: DeltaSink) -> None:
        """One streamed call; raises on any failure or an unfinished stream."""


def prompt_of(words: int) -> str:
    """A prompt of `words` words, so the echoing upstream replies with `words` tokens."""
    return " ".join(f"w{i % 10}" for i in range(words))


class HttpPath:
    """The OpenAI Chat Completions API at `base_url` (the upstream itself, or the gateway)."""

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        base_url: str,
        model: str,
        prompt: str,
        timeout: float,
    ) -> None:
        self.name = name
        self._session = session
        self._url = f"{base_url.rstrip('/')}/chat/completions"
        messages = [{"role": "user", "content": prompt}]
        self._unary = orjson.dumps({"model": model, "messages": messages})
        self._stream = orjson.dumps(
            {
                "model": model,
                "messages": messages,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
        self._headers = {"content-type": "application/json", "authorization": "Bearer bench"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def unary(self) -> None:
        async with self._session.post(
            self._url, data=self._unary, headers=self._headers, timeout=self._timeout
        ) as resp:
            body = await resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{self.name}: HTTP {resp.status}: {body[:200]!r}")
            reply: dict[str, Any] = orjson.loads(body)
            if not reply["choices"][0]["message"]["content"]:
                raise RuntimeError(f"{self.name}: empty reply")

    async def stream(self, on_delta: DeltaSink) -> None:
        async with self._session.post(
            self._url, data=self._stream, headers=self._headers, timeout=self._timeout
        ) as resp:
            if resp.status != 200:
                body = await resp.read()
                raise RuntimeError(f"{self.name}: HTTP {resp.status}: {body[:200]!r}")
            buf = b""
            done = False
            async for chunk in resp.content.iter_any():
                now = perf_counter()
                buf += chunk
                tokens = 0
                while (end := buf.find(b"\n\n")) >= 0:
                    event, buf = buf[:end], buf[end + 2 :]
                    if not event.startswith(b"data: "):
                        continue
                    data = event[6:]
                    if data == b"[DONE]":
                        done = True
                        continue
                    parsed = orjson.loads(data)
                    if "error" in parsed:
                        raise RuntimeError(f"{self.name}: stream error {parsed['error']}")
                    for choice in parsed.get("choices") or ():
                        text = choice.get("delta", {}).get("content")
                        if text:
                            tokens += len(text.split())
                if tokens:
                    on_delta(now, tokens)
            if not done:
                raise RuntimeError(f"{self.name}: the stream ended without [DONE]")


class GrpcPath:
    """The orchestrator's `Chat` and `StreamChat` over one shared grpc.aio channel."""

    def __init__(
        self,
        name: str,
        channel: grpc.aio.Channel | None,
        model: str,
        prompt: str,
        timeout: float,
        *,
        stub: Any = None,
    ) -> None:
        """`stub`: the orchestrator's stub to call instead of one on `channel` (a pooled one)."""
        self.name = name
        self._stub = stub or orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        chat = chat_pb2.ChatInput(
            model=model, messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=prompt)]
        )
        self._unary = orchestrator_pb2.ChatRequest(input=chat)
        self._stream = orchestrator_pb2.StreamChatRequest(input=chat)
        self._timeout = timeout

    async def unary(self) -> None:
        reply = await self._stub.Chat(self._unary, timeout=self._timeout)
        if not reply.message.content:
            raise RuntimeError(f"{self.name}: empty reply")

    async def stream(self, on_delta: DeltaSink) -> None:
        finished = False
        async for event in self._stub.StreamChat(self._stream, timeout=self._timeout):
            if event.HasField("text_delta"):
                on_delta(perf_counter(), len(event.text_delta.text.split()))
            elif event.HasField("finish"):
                finished = True
        if not finished:
            raise RuntimeError(f"{self.name}: the stream ended without a finish event")


def http_session(limit: int) -> aiohttp.ClientSession:
    """A session with up to `limit` keep-alive connections and nothing else in the way."""
    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=None)
    return aiohttp.ClientSession(
        connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
    )


def grpc_channel(address: str) -> grpc.aio.Channel:
    """A plaintext channel to the orchestrator."""
    return grpc.aio.insecure_channel(
        address,
        options=[
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.initial_reconnect_backoff_ms", 50),
            ("grpc.max_reconnect_backoff_ms", 200),
        ],
    )
