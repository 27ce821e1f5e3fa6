"""A raw TCP server for wire-level tests: each connection runs a script that writes exact bytes.

The n-th accepted connection runs the n-th script (the last one repeats), so a test decides
what every connection sees, down to one byte per write, and counts what the client did.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any


class Peer:
    """The server's end of one accepted connection."""

    def __init__(
        self, server: RawServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server, self.reader, self.writer = server, reader, writer

    async def request(self) -> bytes:
        """The next request (head and body) as sent; b"" once the client has left."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"\r\ncontent-length: (\d+)\r\n", head, re.IGNORECASE)
            request = head + (await self.reader.readexactly(int(length[1])) if length else b"")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.server.eofs += 1
            return b""
        self.server.requests.append(request)
        return request

    async def send(self, data: bytes, *, pace: float | None = None) -> None:
        """Write `data` at once, or one byte per write `pace` seconds apart."""
        for piece in [data] if pace is None else [data[i : i + 1] for i in range(len(data))]:
            self.writer.write(piece)
            await self.writer.drain()
            if pace is not None:
                await asyncio.sleep(pace)

    async def wait_closed(self) -> None:
        """Until the client closes the connection (counted in `RawServer.eofs`)."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass
        self.server.eofs += 1


Script = Callable[[Peer], Awaitable[None]]


class RawServer:
    """What the server saw: connections accepted, requests read, connections the client closed."""

    def __init__(self, scripts: tuple[Script, ...]) -> None:
        self.scripts = scripts
        self.url = ""
        """``http(s)://host:port``, without a path."""
        self.port = 0
        self.accepted = 0
        self.eofs = 0
        """Connections the client closed, as the server saw them."""
        self.requests: list[bytes] = []
        self.tasks: set[asyncio.Task[Any]] = set()

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        script = self.scripts[min(self.accepted, len(self.scripts) - 1)]
        self.accepted += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await script(Peer(self, reader, writer))
        except asyncio.CancelledError:
            pass  # the test is over (3.11's start_server logs a handler that ends cancelled)
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def raw_server(
    *scripts: Script, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RawServer]:
    """A server on `port` of `host` (ephemeral by default) running `scripts` (TLS with `tls`)."""
    raw = RawServer(scripts)
    server = await asyncio.start_server(raw.accept, host, port, ssl=tls)
    raw.port = server.sockets[0].getsockname()[1]
    authority = f"[{host}]:{raw.port}" if ":" in host else f"{host}:{raw.port}"
    raw.url = f"{'https' if tls else 'http'}://{authority}"
    try:
        yield raw
    finally:
        server.close()
        for task in raw.tasks:
            task.cancel()
        await asyncio.gather(*raw.tasks, return_exceptions=True)
        await server.wait_closed()


def replying(reply: bytes) -> Script:
    """Answer every request on the connection with `reply`, until the client leaves."""

    async def script(peer: Peer) -> None:
        while await peer.request():
            await peer.send(reply)

    return script


def hanging_up(data: bytes = b"", *, pace: float | None = None) -> Script:
    """Read one request, send `data`, then close the connection."""

    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(data, pace=pace)

    return script


def stalling(data: bytes = b"") -> Script:
    """Read one request, send `data` (perhaps part of a reply), then wait for the client."""

    async def script(peer: Peer) -> None:
        await peer.request()
        await peer.send(data)
        await peer.wait_closed()

    return script


async def until(check: Callable[[], bool], within: float = 2.0) -> None:
    """Poll until `check()` holds; TimeoutError after `within` seconds."""
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.002)
