"""``/api/v1/chat/ws``: one streamed chat per WebSocket connection.

Protocol (text frames, JSON):

- client -> server, first: ``{"type": "chat", "request": <StreamChatRequest JSON>}``.
- server -> client: ``{"type": "event", "event": <StreamChatResponse JSON>}`` per event.
- client -> server, any time: ``{"type": "cancel"}``; the gRPC call is cancelled and the
  server answers with an error frame whose reason is ``CANCELLED``.
- server -> client on failure: ``{"type": "error", "error": <native error object>}`` (the
  object under ``"error"`` in `gateway.errors`); a malformed or unexpected frame gives
  reason ``INVALID_REQUEST`` and ends the call.

Each connection ends after exactly one terminal frame: the ``finish`` event or an error
frame. The server then closes with code 1000 in both cases; the error frame, not the close
code, says what went wrong (1011 is kept for failures of the gateway itself). A client that
disconnects cancels the gRPC call. ``x-llmesh-timeout`` and ``authorization`` are read from
the handshake request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import grpc
import orjson
from llmesh.v1 import orchestrator_pb2
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway.errors import error_body
from gateway.inputs import call_options, check_depth, decode_json, message_json, parse_message
from gateway.upstream import Upstream, upstream_of
from services.common.errors import LlmeshError, Reason, invalid

log = logging.getLogger("llmesh.gateway")

_DISCONNECTED = object()
"""The outcome of a call whose client went away: nothing more can be sent."""


def _decode_frame(message: Mapping[str, Any], limit: int) -> dict[str, Any]:
    raw = message.get("text")
    if raw is None:
        raw = message.get("bytes") or b""
    if len(raw) > limit:
        raise invalid("frame", f"larger than {limit} bytes")
    frame = decode_json(raw)
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise invalid("type", 'frames are JSON objects with a string "type"')
    check_depth(frame)
    return frame


async def _receive_frame(ws: WebSocket, limit: int) -> dict[str, Any] | None:
    """The next frame, or None when the client disconnected."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        return None
    return _decode_frame(message, limit)


def _chat_request(frame: dict[str, Any]) -> orchestrator_pb2.StreamChatRequest:
    if frame["type"] == "cancel":
        raise LlmeshError(Reason.CANCELLED, "the client cancelled the call")
    if frame["type"] != "chat":
        raise invalid("type", 'the first frame must be {"type": "chat", ...}')
    return parse_message(frame.get("request"), orchestrator_pb2.StreamChatRequest(), "request")


async def _send_error(ws: WebSocket, err: LlmeshError) -> None:
    frame = b'{"type":"error","error":' + orjson.dumps(error_body(err)["error"]) + b"}"
    with contextlib.suppress(WebSocketDisconnect, OSError):  # the client may be gone already
        await ws.send_text(frame.decode())
        await ws.close(1000)


async def _pump(ws: WebSocket, call: Any, upstream: Upstream) -> LlmeshError | object | None:
    """Relay events until the stream ends: None when it ended OK, else the error."""
    try:
        while True:
            event = await call.read()
            if event is grpc.aio.EOF:
                return None
            await ws.send_text((b'{"type":"event","event":' + message_json(event) + b"}").decode())
    except grpc.aio.AioRpcError as exc:
        return upstream.error(exc)
    except (WebSocketDisconnect, OSError):
        return _DISCONNECTED


async def _control(ws: WebSocket, limit: int) -> LlmeshError | None:
    """Wait for a cancel (or bad) frame, returning the error to report; None on disconnect."""
    try:
        frame = await _receive_frame(ws, limit)
    except LlmeshError as err:
        return err
    if frame is None:
        return None
    if frame["type"] == "cancel":
        return LlmeshError(Reason.CANCELLED, "the client cancelled the call")
    return invalid("type", 'only {"type": "cancel"} may follow the chat frame')


async def chat_ws(ws: WebSocket) -> None:
    """Serve one streamed chat over the WebSocket."""
    upstream = upstream_of(ws)
    limit = upstream.settings.max_body_bytes
    await ws.accept()
    try:
        opts = call_options(ws.headers, upstream.settings.default_timeout)
        frame = await _receive_frame(ws, limit)
        if frame is None:
            return
        request = _chat_request(frame)
    except LlmeshError as err:
        await _send_error(ws, err)
        return
    call = upstream.orchestrator.StreamChat(request, timeout=opts.timeout, metadata=opts.metadata)
    pump = asyncio.ensure_future(_pump(ws, call, upstream))
    control = asyncio.ensure_future(_control(ws, limit))
    try:
        await asyncio.wait({pump, control}, return_when=asyncio.FIRST_COMPLETED)
        if pump.done():
            outcome = pump.result()
        else:  # cancel frame, bad frame or disconnect: stop the call before answering
            call.cancel()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            outcome = control.result() or _DISCONNECTED
        if outcome is _DISCONNECTED:
            return
        if isinstance(outcome, LlmeshError):
            await _send_error(ws, outcome)
        else:
            await ws.close(1000)
    except Exception:
        log.exception("WebSocket chat failed")
        with contextlib.suppress(Exception):
            await ws.close(1011)
    finally:
        call.cancel()
        for task in (pump, control):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def routes() -> list[BaseRoute]:
    """The WebSocket route."""
    return [WebSocketRoute("/api/v1/chat/ws", chat_ws)]
