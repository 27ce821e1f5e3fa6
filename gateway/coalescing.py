"""A response's head and body in one write: one TCP segment for a whole reply.

uvicorn writes a response's status line and headers when the app sends
``http.response.start`` and its body at ``http.response.body``: two writes, so two TCP
segments, and a client woken twice, for every reply. `CoalescingHttpToolsProtocol` is
uvicorn's httptools protocol on a transport that holds a response head back until the next
write, and sends both as one; a head with nothing after it in the same turn of the event
loop (a stream waiting for its first event) is sent at the end of that turn, and before the
connection closes. Every other write goes out at once, as before: a stream's events are not
delayed. The bytes sent are the same; only their grouping into segments changes.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["CoalescingHttpToolsProtocol", "CoalescingTransport"]

_HEAD = b"HTTP/1."
"""How a response head (status line) starts; chunked bodies start with their size in hex."""


class CoalescingTransport:
    """A transport holding each response head back until the next write (or the end of the
    loop turn); everything else goes to the transport under it."""

    __slots__ = ("_head", "_loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            self._head = None
            self.transport.write(head + data)
        elif data.startswith(_HEAD):
            self._head = data
            self._loop.call_soon(self.flush)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        """Send a head still held back (nothing once the connection is closing)."""
        head = self._head
        if head is not None:
            self._head = None
            if not self.transport.is_closing():
                self.transport.write(head)

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def abort(self) -> None:
        self._head = None
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        self.transport.resume_reading()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP/1.1 protocol, writing through a `CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
