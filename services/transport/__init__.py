"""The wire under the provider adapters: an HTTP/1.1 client with its pool, an SSE decoder,
the `Transport` seam the adapters call through, and `MockTransport` for tests.

Nothing here knows a provider: the adapters above build requests and read replies through
`Transport` and `Reply` (`base`); `ConnectionPool` (`http1`) is the real transport and
`MockTransport` (`mock`) answers from a handler, as httpx's ``_transports`` do.
"""

from __future__ import annotations

from llmesh.services.transport.base import Reply, Transport
from llmesh.services.transport.http1 import HAPPY_EYEBALLS_DELAY, ConnectionPool
from llmesh.services.transport.http1_conn import (
    HIGH_WATER,
    MAX_HEADER_BYTES,
    HttpProtocolError,
    Response,
    UpstreamClosed,
    render_headers,
)
from llmesh.services.transport.mock import MockHandler, MockRequest, MockResponse, MockTransport
from llmesh.services.transport.sse import SSEDecoder, SSEEvent

__all__ = [
    "HAPPY_EYEBALLS_DELAY",
    "HIGH_WATER",
    "MAX_HEADER_BYTES",
    "ConnectionPool",
    "HttpProtocolError",
    "MockHandler",
    "MockRequest",
    "MockResponse",
    "MockTransport",
    "Reply",
    "Response",
    "SSEDecoder",
    "SSEEvent",
    "Transport",
    "UpstreamClosed",
    "render_headers",
]
