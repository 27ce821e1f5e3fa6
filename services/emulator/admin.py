"""The emulator's own endpoints, under ``/emulator/``.

``GET health``, ``GET stats``, ``GET trace-context`` (the W3C headers recent requests
carried, see `llmesh.services.emulator.trace_context`), ``POST reset`` (zero counters, empty
the prompt cache, drop run-time fault rules, forget trace contexts) and
``GET``/``POST``/``DELETE faults`` (the fault rules; ``POST`` takes ``{"model", "fault",
"after"?, "times"?, "retry_after"?, "stall_ms"?}``, ``DELETE`` drops every run-time rule,
or one model's with ``?model=``).
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
    request.app[STATE].reset()
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


def add_routes(app: web.Application) -> None:
    """Register the admin endpoints on `app`."""
    app.router.add_get("/emulator/health", health)
    app.router.add_get("/emulator/stats", stats)
    app.router.add_get("/emulator/trace-context", trace_context)
    app.router.add_post("/emulator/reset", reset)
    app.router.add_get("/emulator/faults", get_faults)
    app.router.add_post("/emulator/faults", add_fault)
    app.router.add_delete("/emulator/faults", clear_faults)
