"""One write per loop turn for each HTTP connection: a response's head and body in one segment.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and its body at ``http.response.body``: two writes, so two TCP
segments, and a client woken twice, for every reply. `CoalescingHttpToolsProtocol` is
uvicorn's httptools protocol on a transport that gathers the writes made in one turn of the
event loop and hands them to the socket together at the end of that turn (or at once when
they pass `FLUSH_BYTES`, or before the connection closes). The bytes sent are the same; only
their grouping into segments changes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["FLUSH_BYTES", "CoalescingHttpToolsProtocol", "CoalescingTransport"]

FLUSH_BYTES = 64 * 1024
"""Gathered bytes that are written at once, without waiting for the end of the turn."""


class CoalescingTransport:
    """A transport whose writes in one loop turn reach the socket as one; everything else
    goes to the transport under it."""

    __slots__ = ("_loop", "_pending", "_size", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)
        self._size += len(data)
        if self._size >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write what was gathered (nothing once the connection is closing)."""
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self._size = 0
        if not self.transport.is_closing():
            self.transport.write(data)

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def abort(self) -> None:
        self._pending.clear()
        self._size = 0
        self.transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol, writing through a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
