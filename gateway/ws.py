"""``/api/v1/chat/ws``: successive streamed chats over one WebSocket, one at a time.

Protocol (text or binary frames, JSON):

- client -> server: ``{"type": "chat", "request": <StreamChatRequest JSON>}`` starts a chat.
- server -> client: ``{"type": "event", "event": <StreamChatResponse JSON>}`` per event.
- client -> server while a chat streams: ``{"type": "cancel"}``; the gRPC call is cancelled
  and the server answers with an error frame whose reason is ``CANCELLED``. A cancel with no
  chat in flight is ignored: it crossed the chat's terminal frame on the wire.
- server -> client on failure: ``{"type": "error", "error": <native error object>}`` (the
  object under ``"error"`` in `llmesh.gateway.errors`); a malformed or unexpected frame (a chat
  frame while a chat streams, for one) gives reason ``INVALID_REQUEST`` and ends the chat in
  flight, if any.

Each chat ends with exactly one terminal frame: the ``finish`` event or an error frame. The
socket then stays open for the next chat frame, until the client closes it; a client that
disconnects cancels the chat in flight. The server closes on its own only with 1000 after
an error frame for a bad ``x-llmesh-timeout`` header (every chat would fail) and with 1011
when the gateway itself fails. ``x-llmesh-timeout`` (each chat's deadline) and
``authorization`` are read from the handshake request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

import grpc
import orjson
from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from llmesh.gateway.errors import error_body
from llmesh.gateway.inputs import (
    call_options,
    check_depth,
    decode_json,
    message_json,
    parse_message,
)
from llmesh.gateway.upstream import Upstream, upstream_of
from llmesh.services.common.errors import LlmeshError, Reason, invalid
from llmesh.v1 import orchestrator_pb2

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


def _chat_request(received: dict[str, Any] | LlmeshError) -> orchestrator_pb2.StreamChatRequest:
    """The request of a chat frame; a bad frame raises its error."""
    if isinstance(received, LlmeshError):
        raise received
    frame = received
    if frame["type"] != "chat":
        raise invalid("type", 'with no chat in flight, send {"type": "chat", ...}')
    return parse_message(frame.get("request"), orchestrator_pb2.StreamChatRequest(), "request")


async def _receive(ws: WebSocket, limit: int) -> dict[str, Any] | LlmeshError | object:
    """The next frame, the error a malformed frame amounts to, or `_DISCONNECTED`."""
    try:
        frame = await _receive_frame(ws, limit)
    except LlmeshError as err:
        return err
    return _DISCONNECTED if frame is None else frame


async def _send_error(ws: WebSocket, err: LlmeshError) -> bool:
    """Send an error frame; False when the client is gone."""
    frame = b'{"type":"error","error":' + orjson.dumps(error_body(err)["error"]) + b"}"
    try:
        await ws.send_text(frame.decode())
    except (WebSocketDisconnect, OSError):
        return False
    return True


class _Progress:
    """What the relay of one chat has sent so far."""

    finished = False
    """The finish event went out: the chat is over for the client."""


async def _pump(
    ws: WebSocket, call: Any, progress: _Progress, upstream: Upstream
) -> LlmeshError | object | None:
    """Relay events until the stream ends: None when it ended OK, else the error."""
    try:
        while True:
            event = await call.read()
            if event is grpc.aio.EOF:
                return None
            if event.HasField("finish"):  # set first: the reply to it may beat send_text back
                progress.finished = True
            await ws.send_text((b'{"type":"event","event":' + message_json(event) + b"}").decode())
    except grpc.aio.AioRpcError as exc:
        return upstream.error(exc)
    except (WebSocketDisconnect, OSError):
        return _DISCONNECTED


def _interruption(received: dict[str, Any] | LlmeshError | object) -> LlmeshError | object:
    """What a frame received while a chat streams does to it: the error to report."""
    if isinstance(received, LlmeshError) or received is _DISCONNECTED:
        return received
    assert isinstance(received, dict)
    if received["type"] == "cancel":
        return LlmeshError(Reason.CANCELLED, "the client cancelled the call")
    return invalid("type", 'only {"type": "cancel"} may be sent while a chat streams')


async def _serve_chat(
    ws: WebSocket,
    call: Any,
    limit: int,
    upstream: Upstream,
) -> dict[str, Any] | LlmeshError | object | None:
    """Relay one chat to its terminal frame.

    Returns `_DISCONNECTED` when the socket is done, else a frame (or bad-frame error) that
    arrived as the chat ended and belongs to what comes next, or None.
    """
    progress = _Progress()
    pump = asyncio.ensure_future(_pump(ws, call, progress, upstream))
    control = asyncio.ensure_future(_receive(ws, limit))
    try:
        await asyncio.wait({pump, control}, return_when=asyncio.FIRST_COMPLETED)
        carried: dict[str, Any] | LlmeshError | object | None = None
        if pump.done():
            outcome = pump.result()
            if control.done():
                carried = control.result()
        elif progress.finished and control.result() is not _DISCONNECTED:
            # the next frame crossed the end of the stream: let the stream end on its own
            carried = control.result()
            outcome = await pump
        else:  # cancel frame, bad frame or disconnect: stop the call before answering
            call.cancel()
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pump
            outcome = _interruption(control.result())
        if outcome is _DISCONNECTED:
            return _DISCONNECTED
        if isinstance(outcome, LlmeshError) and not await _send_error(ws, outcome):
            return _DISCONNECTED
        return carried
    except Exception:
        log.exception("WebSocket chat failed")
        with contextlib.suppress(Exception):
            await ws.close(1011)
        return _DISCONNECTED
    finally:
        call.cancel()
        for task in (pump, control):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def chat_ws(ws: WebSocket) -> None:
    """Serve successive streamed chats, one at a time, until the client closes."""
    upstream = upstream_of(ws)
    limit = upstream.settings.max_body_bytes
    await ws.accept()
    try:
        opts = call_options(ws.headers, upstream.settings.default_timeout)
    except LlmeshError as err:  # every chat would fail the same way
        if await _send_error(ws, err):
            with contextlib.suppress(WebSocketDisconnect, OSError):
                await ws.close(1000)
        return
    carried: dict[str, Any] | LlmeshError | object | None = None
    while True:
        received = carried if carried is not None else await _receive(ws, limit)
        carried = None
        if received is _DISCONNECTED:
            return
        assert isinstance(received, dict | LlmeshError)
        if isinstance(received, dict) and received["type"] == "cancel":
            continue  # nothing in flight: the cancel crossed the chat's terminal frame
        try:
            request = _chat_request(received)
        except LlmeshError as err:
            if not await _send_error(ws, err):
                return
            continue
        call = upstream.orchestrator.StreamChat(
            request, timeout=opts.timeout, metadata=opts.metadata
        )
        carried = await _serve_chat(ws, call, limit, upstream)
        if carried is _DISCONNECTED:
            return


def routes() -> list[BaseRoute]:
    """The WebSocket route."""
    return [WebSocketRoute("/api/v1/chat/ws", chat_ws)]
