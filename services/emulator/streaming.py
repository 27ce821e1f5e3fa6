"""Sending replies: latency, mid-stream faults and disconnect accounting, for both APIs.

The APIs build their bytes (an SSE stream is a head, one frame per token piece and a tail);
this module decides when each byte leaves and what happens when a fault strikes or the
client goes away. Waits are plain awaits, so a client that disconnects during any of them
cancels the handler (aiohttp's ``handler_cancellation``) and `Tracker` counts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

from llmesh.services.emulator.faults import MID_STREAM_FAULTS, Controls
from llmesh.services.emulator.settings import FaultSpec
from llmesh.services.emulator.stats import Tracker

ABORT_GRACE_S = 1.0
"""How long an aborting handler waits to be cancelled by aiohttp before returning."""


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """The bytes of one SSE reply."""

    head: bytes
    """Frames sent together with the first piece (e.g. the role chunk, ``message_start``)."""
    pieces: Sequence[bytes]
    """One frame per token piece or tool-argument fragment."""
    tail: bytes
    """Terminal frames (finish, usage, ``[DONE]`` / ``message_stop``)."""
    error_frame: bytes
    """What a ``stream_error`` fault sends in place of the rest."""
    malformed_frame: bytes
    """What a ``malformed`` fault sends in place of the rest."""


async def pause(ms: float | None) -> None:
    """Wait `ms` milliseconds; None waits until cancelled."""
    if ms is None:
        await asyncio.get_running_loop().create_future()
    elif ms > 0:
        await asyncio.sleep(ms / 1000)


async def send_response(
    request: web.Request, tracker: Tracker, resp: web.StreamResponse
) -> web.StreamResponse:
    """Send a complete response now, noting whether the client was still there to get it."""
    try:
        await resp.prepare(request)
        await resp.write_eof()
    except ConnectionError:
        tracker.disconnected()
    return resp


async def abort_connection(
    request: web.Request, tracker: Tracker, resp: web.StreamResponse | None = None
) -> web.StreamResponse:
    """Close the connection abruptly: the client sees a broken body, not a finished one."""
    tracker.aborted()
    if request.transport is not None:
        request.transport.abort()
    await asyncio.sleep(ABORT_GRACE_S)  # normally cancelled first, by aiohttp
    return resp if resp is not None else web.Response(status=499)


def mid_stream_fault(controls: Controls) -> FaultSpec | None:
    """The request's fault if it strikes after the reply started."""
    fault = controls.fault
    return fault if fault is not None and fault.fault in MID_STREAM_FAULTS else None


async def send_stream(
    request: web.Request,
    tracker: Tracker,
    headers: Callable[[], Mapping[str, str]],
    plan: StreamPlan,
    controls: Controls,
) -> web.StreamResponse:
    """Stream `plan` with the request's latency, injecting a mid-stream fault if asked."""
    if controls.fault is not None and controls.fault.fault == "timeout":
        await pause(None)
    await pause(controls.ttft_ms)
    fault = mid_stream_fault(controls)
    resp = web.StreamResponse(status=200, headers=headers())
    if fault is not None:
        resp.force_close()
    try:
        await resp.prepare(request)
        pieces = plan.pieces
        itl = controls.itl_ms / 1000
        if fault is None and itl <= 0:
            await resp.write(b"".join((plan.head, *pieces, plan.tail)))
            await resp.write_eof()
            return resp
        stop_at = len(pieces) if fault is None else min(fault.after, len(pieces))
        await _paced(resp, plan.head, pieces[:stop_at], itl)
        if fault is not None:
            name = fault.fault
            if name == "cut":
                return await abort_connection(request, tracker, resp)
            if name in ("stream_error", "malformed"):
                frame = plan.error_frame if name == "stream_error" else plan.malformed_frame
                await resp.write(frame)
                await resp.write_eof()
                return resp
            await pause(fault.stall_ms)
            if stop_at < len(pieces):
                await _paced(resp, b"", pieces[stop_at:], itl, first_delay=True)
        await resp.write(plan.tail)
        await resp.write_eof()
    except ConnectionError:
        tracker.disconnected()
    return resp


async def send_unary(
    request: web.Request,
    tracker: Tracker,
    build: Callable[[], web.Response],
    controls: Controls,
    output_tokens: int,
    malformed_headers: Callable[[], Mapping[str, str]],
) -> web.StreamResponse:
    """Answer in one body after ``ttft + output_tokens * itl``, honouring the fault if any.

    Mid-stream faults map onto a whole body: ``cut`` closes the connection without an
    answer, ``malformed`` answers 200 with a broken JSON body, ``stall`` delays the answer.
    """
    if controls.fault is not None and controls.fault.fault == "timeout":
        await pause(None)
    await pause(controls.ttft_ms + output_tokens * controls.itl_ms)
    fault = mid_stream_fault(controls)
    if fault is not None:
        if fault.fault == "cut":
            return await abort_connection(request, tracker)
        if fault.fault == "malformed":
            bad = web.Response(status=200, body=b'{"id": {not json', headers=malformed_headers())
            bad.force_close()
            return await send_response(request, tracker, bad)
        if fault.fault == "stall":
            await pause(fault.stall_ms)
    return await send_response(request, tracker, build())


async def _paced(
    resp: web.StreamResponse,
    head: bytes,
    frames: Sequence[bytes],
    itl: float,
    *,
    first_delay: bool = False,
) -> None:
    """Write `frames` `itl` seconds apart (on an absolute schedule, so delays do not drift)."""
    if itl <= 0:
        await resp.write(b"".join((head, *frames)))
        return
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, frame in enumerate(frames):
        if i or first_delay:
            delay = start + (i + first_delay) * itl - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await resp.write(head + frame if i == 0 and head else frame)
    if not frames and head:
        await resp.write(head)
