"""A transport answering from a handler instead of a server: adapter tests without a network.

Shaped after httpx's ``_transports/mock.py``: ``MockTransport(handler)`` calls
``handler(request)`` for each request and returns the `MockResponse` it gives (the
handler may be sync or async). A response carries a status, headers, and a body as one
piece or as the list of pieces a server would send, read back one piece per
`read_chunk`; `error` is raised once those pieces are read, as a connection reset
mid-stream would be. A handler that raises fails the request itself, as a refused
connection or a connect timeout does. Every request is kept in `MockTransport.requests`
and every response remembers whether the adapter released or closed it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmesh.services.transport.http1_conn import UpstreamClosed

__all__ = ["MockHandler", "MockRequest", "MockResponse", "MockTransport"]


@dataclass(frozen=True, slots=True)
class MockRequest:
    """One request as the transport received it."""

    method: str
    """The HTTP method, e.g. ``POST``."""
    url: str
    """The mock's base URL followed by the request's path."""
    headers: Mapping[str, str]
    """The request's header lines, names in lower case."""
    body: bytes
    """The request body as sent."""
    timeout: float
    """Seconds the caller allowed for the whole exchange."""
    connect_timeout: float
    """Seconds the caller allowed for opening a connection."""

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)


class MockResponse:
    """A reply to hand back once: status, headers, body pieces, and an optional failure."""

    def __init__(
        self,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        body: bytes | Sequence[bytes] = b"",
        *,
        error: BaseException | None = None,
    ) -> None:
        self.status = status
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}
        """Header names in lower case."""
        pieces = [body] if isinstance(body, bytes) else list(body)
        self._pieces = [piece for piece in pieces if piece]  # b"" would read as the end
        self._next = 0
        self._error = error
        self.sent = False
        """A transport has handed this response to a caller."""
        self.released = False
        """The caller called `release`."""
        self.closed = False
        """The caller called `close`."""

    async def read_chunk(self) -> bytes:
        """The next body piece; ``b""`` at the end, or `error` once the pieces are read."""
        if self._next < len(self._pieces):
            if self.released or self.closed:
                raise UpstreamClosed("the reply was closed before its end")
            piece = self._pieces[self._next]
            self._next += 1
            return piece
        if self._error is not None:
            raise self._error
        return b""

    async def read(self) -> bytes:
        """The rest of the body, whole."""
        parts = []
        while chunk := await self.read_chunk():
            parts.append(chunk)
        return b"".join(parts)

    @property
    def at_eof(self) -> bool:
        """Every piece has been read and no failure is pending."""
        return self._next >= len(self._pieces) and self._error is None

    def release(self) -> None:
        self.released = True

    def close(self) -> None:
        self.closed = True


MockHandler = Callable[[MockRequest], MockResponse | Awaitable[MockResponse]]
"""Maps a request to its response; it may be a coroutine function, and it may raise."""


class MockTransport:
    """A `Transport` whose replies come from `handler`, with no connection at all."""

    def __init__(self, handler: MockHandler, *, base_url: str = "http://mock.invalid") -> None:
        self.handler = handler
        self.base_url = base_url.rstrip("/")
        self.requests: list[MockRequest] = []
        """Every request received, in order."""
        self.closes = 0
        """How many times `aclose` was called."""

    async def request(
        self,
        method: str,
        path: str,
        headers: bytes,
        body: bytes,
        *,
        timeout: float,
        connect_timeout: float,
    ) -> MockResponse:
        """Record the request and return the handler's response for it."""
        request = MockRequest(
            method, self.base_url + path, _parse_headers(headers), body, timeout, connect_timeout
        )
        self.requests.append(request)
        result = self.handler(request)
        response = await result if inspect.isawaitable(result) else result
        if response.sent:
            raise RuntimeError("a MockResponse is read once: build a new one for each request")
        response.sent = True
        return response

    async def aclose(self) -> None:
        self.closes += 1


def _parse_headers(rendered: bytes) -> dict[str, str]:
    """Rendered header lines back into a mapping, names in lower case."""
    headers: dict[str, str] = {}
    for line in rendered.decode("latin-1").split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return headers
