"""Building and running the emulator's aiohttp application.

Handlers are cancelled when their client disconnects (``handler_cancellation=True``; aiohttp
disables it by default), which is how a cancelled stream, a stall or a ``timeout`` fault
shows up in ``/emulator/stats`` as a disconnect within milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal

from aiohttp import web

from llmesh.services.common.exposure import check_exposure
from llmesh.services.common.ready import notify_ready
from llmesh.services.emulator import (
    admin,
    anthropic_api,
    anthropic_batches,
    catalog,
    embeddings_api,
    openai_api,
    openai_batches,
    openai_files,
)
from llmesh.services.emulator.settings import EmulatorSettings
from llmesh.services.emulator.state import STATE, EmulatorState


def create_app(settings: EmulatorSettings | None = None) -> web.Application:
    """A fresh emulator application with its own counters, cache and fault rules."""
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[STATE] = EmulatorState.create(settings or EmulatorSettings())
    openai_api.add_routes(app)
    embeddings_api.add_routes(app)
    anthropic_api.add_routes(app)
    catalog.add_routes(app)
    openai_files.add_routes(app)
    openai_batches.add_routes(app)
    anthropic_batches.add_routes(app)
    admin.add_routes(app)
    app.on_cleanup.append(_stop_batches)
    return app


async def _stop_batches(app: web.Application) -> None:
    """Cancel the batches still running when the server stops."""
    await app[STATE].batches.close()


def check_host(settings: EmulatorSettings) -> None:
    """Refuse a non-loopback host unless ``allow_unauthenticated`` (then log a WARNING)."""
    check_exposure(
        "emulator",
        settings.host,
        authenticated=False,
        allow_unauthenticated=settings.allow_unauthenticated,
        why="the emulator has no authentication, so anyone who can reach this address "
        "could use it and change its faults",
        remedy="Bind a loopback address such as 127.0.0.1, or pass --allow-unauthenticated "
        "to expose it on purpose.",
    )


async def start(settings: EmulatorSettings | None = None) -> tuple[web.AppRunner, int]:
    """Serve on ``settings.host:settings.port`` (port 0: any free port).

    Returns the runner (``await runner.cleanup()`` stops the server) and the bound port.
    A non-loopback host is refused (`llmesh.services.common.exposure.ExposureError`) unless
    ``settings.allow_unauthenticated`` is set: the emulator authenticates no one.
    """
    settings = settings or EmulatorSettings()
    check_host(settings)
    runner = web.AppRunner(
        create_app(settings),
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=settings.shutdown_timeout_s,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    port = settings.port
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            port = int(address[1])
            break
    return runner, port


async def run(
    host: str | None = None, port: int | None = None, settings: EmulatorSettings | None = None
) -> None:
    """Serve until SIGINT or SIGTERM; `host` / `port` override the settings."""
    settings = settings or EmulatorSettings()
    settings = dataclasses.replace(
        settings, host=host or settings.host, port=settings.port if port is None else port
    )
    runner, bound = await start(settings)
    print(f"llmesh emulator listening on http://{settings.host}:{bound}", flush=True)
    notify_ready()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
        await runner.cleanup()
