"""The seam between an adapter and the wire: what one HTTP exchange needs, and nothing more.

An adapter sends a request through a `Transport` and reads the `Reply` it returns: the
status and headers first, then the body a piece at a time as it arrives. The real
transport is `http1.ConnectionPool` (one per origin); `mock.MockTransport` answers from a
handler instead, so adapter tests run on recorded exchanges without a server. Both are
shaped after httpx's ``_transports/base.py``: a strict point of cut-off, with no
knowledge of the providers above it.

The request's headers travel as rendered lines (`http1_conn.render_headers`), so an
adapter renders its fixed headers once, when it is built, and not on every call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["Reply", "Transport"]


class Reply(Protocol):
    """One reply: its status and headers, then its body piece by piece.

    A reply read to its end is handed back with `release` (its connection may serve the
    next request); one abandoned before its end is handed back with `close` (its
    connection is closed, so the server sees the caller leave). Body reads fail with a
    `ConnectionError` when the connection is lost before the end, and with TimeoutError
    past the request's deadline.
    """

    @property
    def status(self) -> int:
        """The HTTP status code."""
        ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Header names in lower case; repeated headers joined with ``", "``."""
        ...

    async def read_chunk(self) -> bytes:
        """Every body byte that has arrived since the last call; ``b""`` at the end."""
        ...

    async def read(self) -> bytes:
        """The rest of the body, whole."""
        ...

    @property
    def at_eof(self) -> bool:
        """The whole body has arrived and been read."""
        ...

    def release(self) -> None:
        """Done with the reply (normally after reading it to its end)."""
        ...

    def close(self) -> None:
        """Done with the reply before its end: drop the connection."""
        ...


class Transport(Protocol):
    """Sends requests to one origin and base path, and hands back their replies."""

    async def request(
        self,
        method: str,
        path: str,
        headers: bytes,
        body: bytes,
        *,
        timeout: float,
        connect_timeout: float,
    ) -> Reply:
        """Send ``{method} {base path}{path}`` and return once the reply's head is in.

        `headers` are rendered header lines (``host`` and ``content-length`` are added);
        `timeout` (seconds) bounds everything from here to the body's last byte, and
        `connect_timeout` the opening of a new connection. Fails with a `ConnectionError`
        when the server cannot be reached or answers with something that is not HTTP, and
        with TimeoutError past either bound.
        """
        ...

    async def aclose(self) -> None:
        """Close every connection; the transport can be used again afterwards."""
        ...
