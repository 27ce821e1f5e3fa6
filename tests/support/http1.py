"""Helpers for the tests of `llmesh.services.transport.http1`: a pool in front of a
raw server (`tests.support.raw_server`), one request, one whole reply, and replies to send."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import uvloop

from llmesh.services.transport.http1 import ConnectionPool, Response
from tests.support.raw_server import RawServer, Script, raw_server

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"

Run = Callable[[Coroutine[Any, Any, None]], None]
"""Runs a coroutine to its end on a fresh event loop (the `run` fixture picks which kind)."""
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


@contextlib.asynccontextmanager
async def serving(
    *scripts: Script,
    tls: ssl.SSLContext | None = None,
    host: str = "127.0.0.1",
    path: str = "",
    **options: Any,
) -> AsyncIterator[tuple[RawServer, ConnectionPool]]:
    """A raw server running `scripts`, and a pool for it built with `options`."""
    async with raw_server(*scripts, tls=tls, host=host) as up:
        pool = ConnectionPool(up.url + path, **options)
        try:
            yield up, pool
        finally:
            await pool.aclose()


async def post(pool: ConnectionPool, *, timeout: float = 2.0) -> Response:
    """``POST /chat`` with a tiny body."""
    return await pool.request("POST", "/chat", b"", b"{}", timeout=timeout, connect_timeout=timeout)


async def fetch(pool: ConnectionPool) -> bytes:
    """One whole reply's body, its connection released."""
    resp = await post(pool)
    body = await resp.read()
    resp.release()
    return body
