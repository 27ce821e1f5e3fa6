"""A minimal OpenAI Chat Completions upstream for benchmarks, on raw asyncio.

It echoes the last user message like the emulator (one token per whitespace-separated
piece) but does nothing else: no validation, faults or counters, and every response is
built once per distinct request and then served from memory. Streams with no pacing go out
in one write. ``--latency MODEL=TTFT:ITL`` (milliseconds) paces one model's replies.
``POST /v1/embeddings`` answers OpenAI's shape with one deterministic vector per input
(`EMBEDDING_DIMENSIONS` long unless ``dimensions`` asks for fewer; float lists, or base64
of packed float32 when ``encoding_format`` is ``base64``), also from memory once built.

``python -m bench.fast_upstream --port 0 --latency paced=200:20`` prints ``listening on
http://127.0.0.1:PORT`` once it accepts connections.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import re
import signal
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson

_PIECES = re.compile(r"\s*\S+|\s+")
_CACHE_LIMIT = 4096
EMBEDDING_DIMENSIONS = 1536
"""The length of every vector (text-embedding-3-small's) unless the request asks for less."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The prepared bytes of one reply."""

    whole: bytes
    """A complete HTTP response: the non-streamed reply, or the whole unpaced stream."""
    head: bytes
    """For streams: the status line, headers and the role chunk."""
    frames: tuple[bytes, ...]
    """For streams: one HTTP chunk per token piece."""
    tail: bytes
    """For streams: finish, usage, ``[DONE]`` and the last chunk."""
    tokens: int
    """Pieces in the reply."""


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _last_user_text(messages: Any) -> str:
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def build_reply(body: dict[str, Any]) -> Reply:
    """The response to a Chat Completions request body."""
    model = str(body.get("model", ""))
    text = _last_user_text(body.get("messages"))
    pieces = _PIECES.findall(text)
    max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
    finish = "stop"
    if isinstance(max_tokens, int) and 0 < max_tokens < len(pieces):
        pieces, finish = pieces[:max_tokens], "length"
    prompt = sum(len(_PIECES.findall(_last_user_text([m]))) for m in body.get("messages") or [])
    usage = _usage(prompt, len(pieces))
    created = int(time.time())
    cid = b"chatcmpl-bench"
    if not body.get("stream"):
        payload = orjson.dumps(
            {
                "id": cid.decode(),
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(pieces)},
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": usage,
            }
        )
        whole = (
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
        )
        return Reply(whole, b"", (), b"", len(pieces))
    pre = b'data: {"id":"%s","object":"chat.completion.chunk","created":%d,"model":%s,' % (
        cid,
        created,
        orjson.dumps(model),
    )

    def event(delta: bytes, finish_reason: bytes = b"null") -> bytes:
        choice = b'{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}' % (
            delta,
            finish_reason,
        )
        return pre + b'"choices":[' + choice + b"]}\n\n"

    head = (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n"
        b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    head += _chunk(event(b'{"role":"assistant","content":""}'))
    frames = tuple(_chunk(event(b'{"content":%s}' % orjson.dumps(p))) for p in pieces)
    tail = event(b"{}", b'"%s"' % finish.encode())
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        tail += pre + b'"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n"
    tail = _chunk(tail + b"data: [DONE]\n\n") + b"0\r\n\r\n"
    return Reply(head + b"".join(frames) + tail, head, frames, tail, len(pieces))


def _vector(text: str, dimensions: int) -> array[float]:
    """A float32 vector in [-0.5, 0.5) that depends only on `text`, cheaply (no norm)."""
    seed = hashlib.blake2b(text.encode(), digest_size=64).digest()
    stream = (seed * (dimensions // 64 + 1))[:dimensions]
    return array("f", (b / 256 - 0.5 for b in stream))


def build_embeddings(body: dict[str, Any]) -> bytes:
    """The complete HTTP response to an OpenAI embeddings request body."""
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else [str(t) for t in raw or ()]
    dimensions = body.get("dimensions")
    size = dimensions if isinstance(dimensions, int) and dimensions > 0 else EMBEDDING_DIMENSIONS
    packed = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(inputs):
        vector = _vector(text, size)
        encoded: object = base64.b64encode(vector.tobytes()).decode() if packed else vector.tolist()
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    tokens = sum(len(_PIECES.findall(t)) for t in inputs)
    payload = orjson.dumps(
        {
            "object": "list",
            "data": data,
            "model": str(body.get("model", "")),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    return head % len(payload) + payload


_NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
)
_OK = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n"
    b'{"status":"ok"}'
)


class Upstream:
    """The replies cache and the pacing of each model; shared by every connection."""

    def __init__(self, latency: dict[str, tuple[float, float]]) -> None:
        self.latency = latency
        self._cache: dict[bytes, Reply] = {}
        self._embeddings: dict[bytes, bytes] = {}

    def embeddings(self, body: bytes) -> bytes:
        """The whole HTTP response to an embeddings request body."""
        whole = self._embeddings.get(body)
        if whole is None:
            whole = build_embeddings(orjson.loads(body))
            if len(self._embeddings) >= _CACHE_LIMIT:
                self._embeddings.clear()
            self._embeddings[body] = whole
        return whole

    def reply(self, body: bytes) -> tuple[Reply, tuple[float, float] | None]:
        """The reply to a request body, and the model's (ttft, itl) in seconds if paced."""
        reply = self._cache.get(body)
        parsed: dict[str, Any] | None = None
        if reply is None:
            parsed = orjson.loads(body)
            reply = build_reply(parsed)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[body] = reply
        if not self.latency:
            return reply, None
        if parsed is None:
            parsed = orjson.loads(body)
        return reply, self.latency.get(str(parsed.get("model")))


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; requests are answered in order."""

    def __init__(self, upstream: Upstream) -> None:
        self._upstream = upstream
        self._buf = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._busy is not None:
            self._busy.cancel()

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._busy is None:
            self._drain()

    def _drain(self) -> None:
        while self._transport is not None and self._busy is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buf[:end]).lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            if len(self._buf) < end + 4 + length:
                return
            body = bytes(self._buf[end + 4 : end + 4 + length])
            del self._buf[: end + 4 + length]
            target = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            if head.startswith(b"post") and target.endswith(b"/chat/completions"):
                reply, pace = self._upstream.reply(body)
                if pace is None:
                    self._transport.write(reply.whole)
                    continue
                self._busy = asyncio.ensure_future(self._paced(reply, *pace))
                return
            if head.startswith(b"post") and target.endswith(b"/embeddings"):
                self._transport.write(self._upstream.embeddings(body))
                continue
            self._transport.write(_OK if head.startswith(b"get") else _NOT_FOUND)

    async def _paced(self, reply: Reply, ttft: float, itl: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            if not reply.head:  # a non-streamed reply
                await asyncio.sleep(ttft + reply.tokens * itl)
                self._write(reply.whole)
                return
            await asyncio.sleep(ttft)
            first = loop.time()
            for i, frame in enumerate(reply.frames):
                if i:
                    delay = first + i * itl - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if not self._write(reply.head + frame if i == 0 else frame):
                    return
            self._write(reply.tail if reply.frames else reply.head + reply.tail)
        finally:
            self._busy = None
            if self._buf and self._transport is not None:
                loop.call_soon(self._drain)

    def _write(self, data: bytes) -> bool:
        if self._transport is None:
            return False
        self._transport.write(data)
        return True


async def serve(host: str, port: int, latency: dict[str, tuple[float, float]]) -> None:
    """Serve until SIGINT or SIGTERM."""
    loop = asyncio.get_running_loop()
    upstream = Upstream(latency)
    server = await loop.create_server(
        lambda: _Connection(upstream), host, port, reuse_address=True, backlog=4096
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://{host}:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def parse_latency(values: Sequence[str]) -> dict[str, tuple[float, float]]:
    """``MODEL=TTFT:ITL`` (milliseconds) items as model -> (ttft, itl) in seconds."""
    out: dict[str, tuple[float, float]] = {}
    for item in values:
        model, _, spec = item.partition("=")
        ttft, _, itl = spec.partition(":")
        out[model] = (float(ttft) / 1000, float(itl or 0) / 1000)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve (on uvloop when installed)."""
    parser = argparse.ArgumentParser(prog="python -m bench.fast_upstream")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", action="append", default=[], help="MODEL=TTFT_MS:ITL_MS")
    args = parser.parse_args(argv)
    latency = parse_latency(args.latency)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(serve(args.host, args.port, latency))
    else:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args.host, args.port, latency))


if __name__ == "__main__":
    main()
