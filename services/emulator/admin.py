"""The emulator's own endpoints, under ``/emulator/``.

``GET health``, ``GET stats``, ``GET trace-context`` (the W3C headers recent requests
carried, see `llmesh.services.emulator.trace_context`), ``POST reset`` (zero counters, empty
the prompt cache, drop run-time fault rules, forget trace contexts) and
``GET``/``POST``/``DELETE faults`` (the fault rules; ``POST`` takes ``{"model", "fault",
"after"?, "times"?, "retry_after"?, "stall_ms"?}``, ``DELETE`` drops every run-time rule,
or one model's with ``?model=``) and ``GET``/``POST batches`` (the batch timing:
``{"delay_s"?, "expiry_s"?}``; a new delay applies at once to the batches waiting, a new
window to the batches created after it). ``POST reset`` also stops and forgets every batch
and file and restores the configured batch timing.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from llmesh.services.emulator.settings import FaultSpec
from llmesh.services.emulator.state import STATE


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


async def health(request: web.Request) -> web.Response:
    """``GET /emulator/health``."""
    return _json({"status": "ok"})


async def stats(request: web.Request) -> web.Response:
    """``GET /emulator/stats``: the request counters (see `llmesh.services.emulator.stats`)."""
    return _json(request.app[STATE].stats.snapshot())


async def trace_context(request: web.Request) -> web.Response:
    """``GET /emulator/trace-context``: the trace context headers of recent requests."""
    return _json(request.app[STATE].contexts.snapshot())


async def reset(request: web.Request) -> web.Response:
    """``POST /emulator/reset``."""
    state = request.app[STATE]
    state.reset()
    await state.batches.reset()
    return _json({"status": "ok"})


async def get_faults(request: web.Request) -> web.Response:
    """``GET /emulator/faults``: the rules in force."""
    return _json(request.app[STATE].faults.snapshot())


async def add_fault(request: web.Request) -> web.Response:
    """``POST /emulator/faults``: set the run-time rule of one model."""
    try:
        raw = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _json({"error": "body must be JSON"}, 400)
    if not isinstance(raw, dict) or not isinstance(raw.get("model"), str):
        return _json({"error": "body must be an object with a string 'model'"}, 400)
    try:
        spec = FaultSpec.from_mapping(raw)
    except ValueError as e:
        return _json({"error": str(e)}, 400)
    faults = request.app[STATE].faults
    faults.add(raw["model"], spec)
    return _json(faults.snapshot())


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /emulator/faults``: drop the run-time rules."""
    faults = request.app[STATE].faults
    faults.clear(request.query.get("model"))
    return _json(faults.snapshot())


async def get_batches(request: web.Request) -> web.Response:
    """``GET /emulator/batches``: the batch timing in force."""
    return _json(request.app[STATE].batches.timing.snapshot())


async def set_batches(request: web.Request) -> web.Response:
    """``POST /emulator/batches``: change the processing delay and/or completion window."""
    try:
        raw = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return _json({"error": "body must be JSON"}, 400)
    if not isinstance(raw, dict) or not raw or set(raw) - {"delay_s", "expiry_s"}:
        return _json({"error": "body must be an object with 'delay_s' and/or 'expiry_s'"}, 400)
    values: dict[str, float] = {}
    for key, value in raw.items():
        number = value if isinstance(value, int | float) and not isinstance(value, bool) else -1
        if not (number > 0 if key == "expiry_s" else number >= 0):
            bound = "> 0" if key == "expiry_s" else ">= 0"
            return _json({"error": f"{key} must be a number {bound}"}, 400)
        values[key] = float(number)
    timing = request.app[STATE].batches.timing
    timing.set(values.get("delay_s"), values.get("expiry_s"))
    return _json(timing.snapshot())


def add_routes(app: web.Application) -> None:
    """Register the admin endpoints on `app`."""
    app.router.add_get("/emulator/health", health)
    app.router.add_get("/emulator/stats", stats)
    app.router.add_get("/emulator/trace-context", trace_context)
    app.router.add_post("/emulator/reset", reset)
    app.router.add_get("/emulator/faults", get_faults)
    app.router.add_post("/emulator/faults", add_fault)
    app.router.add_delete("/emulator/faults", clear_faults)
    app.router.add_get("/emulator/batches", get_batches)
    app.router.add_post("/emulator/batches", set_batches)
