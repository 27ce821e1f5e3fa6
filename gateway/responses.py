"""Response types: orjson-encoded JSON, and upstream-fed responses that die with their client.

`UpstreamResponse` runs an async iterator (normally one that reads a gRPC call) while it
listens for the client's ``http.disconnect``; when the client goes away first, the iterator's
task is cancelled, so its ``finally`` cancels the gRPC call at once rather than at the next
write. It does not rely on Starlette's `StreamingResponse`, whose disconnect listening depends
on the server's ASGI spec version.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import orjson
from starlette.background import BackgroundTask
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Part = bytes | Response | Mapping[str, str]
"""What an upstream iterator yields; see `UpstreamResponse`."""


class OrjsonResponse(Response):
    """A JSON response encoded with orjson (non-str keys and numpy types are not needed here)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def sse_data(payload: bytes) -> bytes:
    """One unnamed Server-Sent Event carrying `payload` (which must not contain newlines)."""
    return b"data: " + payload + b"\n\n"


def sse_event(name: str, payload: bytes) -> bytes:
    """One named Server-Sent Event."""
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


class UpstreamResponse(Response):
    """A response produced by an async iterator, cancelled when the client disconnects.

    The iterator's first item decides the reply: a `Response` is sent as the whole reply
    (for example an error that happened before any event, or a unary result); a mapping of
    headers, or bytes, starts a streamed 200 reply (the mapping adds headers). Every later
    item must be bytes, sent as one body chunk.
    """

    def __init__(
        self,
        parts: AsyncGenerator[Part, None],
        *,
        media_type: str = "text/event-stream",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.parts = parts
        self.status_code = 200
        self.media_type = media_type
        self.background: BackgroundTask | None = None
        self._extra_headers = dict(headers or {})
        # the headers are made when streaming starts: a whole reply brings its own

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Produce in this task; a listener task cancels it if the client leaves first. (One
        # extra task per request, not two, and no loop turn before the upstream call starts.)
        task = asyncio.current_task()
        assert task is not None
        left = False

        def client_left(listener: asyncio.Future[None]) -> None:
            nonlocal left
            if not listener.cancelled() and listener.exception() is None:
                left = True
                task.cancel()

        listen = asyncio.ensure_future(_wait_for_disconnect(receive))
        listen.add_done_callback(client_left)
        try:
            await self._produce(scope, receive, send)
        except asyncio.CancelledError:
            # Our own cancellation (client gone) is expected; a cancelled caller is not.
            if not left or task.uncancel() > 0:
                raise
        finally:
            listen.remove_done_callback(client_left)
            listen.cancel()
            await self.parts.aclose()

    async def _produce(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False
        async for part in self.parts:
            if isinstance(part, Response):
                if started:
                    raise RuntimeError("a whole response was yielded after streaming began")
                await part(scope, receive, send)
                return
            if not started:
                started = True
                if isinstance(part, Mapping):
                    self.init_headers({**self._extra_headers, **part})
                else:
                    self.init_headers(self._extra_headers)
                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
                if isinstance(part, Mapping):
                    continue
            if isinstance(part, Mapping):
                raise RuntimeError("headers were yielded after streaming began")
            await send({"type": "http.response.body", "body": part, "more_body": True})
        if not started:
            self.init_headers(self._extra_headers)
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _wait_for_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
