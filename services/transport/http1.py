"""A minimal HTTP/1.1 client for streamed requests: asyncio protocols, httptools, one pool.

`ConnectionPool` is the real `base.Transport` under the lean provider adapters.

The lean transport's hot path is one upstream read per token. A general client pays for
generality there (aiohttp: a stream reader, a timer context and about twenty Python calls
per read); this one does what a streamed LLM call needs and no more. This module is the
pool and the request; `http1_conn` is one connection (an `asyncio.Protocol` feeding
httptools' C parser) and the `Response` it fills, read a piece at a time.

What it does:

- ``http`` and ``https`` (the system's trust store, SNI, hostname checks).
- Keep-alive with a pool per origin: idle connections are reused newest first and closed
  after `keepalive_timeout` seconds idle, or when the server closes them; at most
  `max_connections` are open at once (0: no limit) and callers wait in order for one.
- New connections race a host's addresses (happy eyeballs, RFC 8305), so a dead IPv6 route
  costs `HAPPY_EYEBALLS_DELAY`, not the connect timeout. Addresses are resolved for each
  new connection (no DNS cache: pooled connections make new ones rare).
- One deadline per request, from connecting to the last byte of the body: a single timer
  that, when it fires, closes the connection and fails the waiting read with TimeoutError.
  Connecting (TCP and TLS) is also bounded by its own `connect_timeout`.
- Bodies framed by ``content-length``, ``transfer-encoding: chunked`` or the end of the
  connection; ``content-encoding`` gzip and deflate decoded (it never asks for them).
- Back-pressure: a connection stops reading once `HIGH_WATER` bytes wait unread.
- A response read to its end goes back to the pool with `release`; `close` (or `release`
  before the end) closes the connection, so the upstream sees the caller leave at once.

Failures are `ConnectionError`s (refused, reset, closed before the reply ended, a reply
that is not HTTP/1.x) or TimeoutError, which the adapters' error classification reads. It
does not follow redirects, read proxy settings or retry: the caller's policy decides.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from urllib.parse import urlsplit

import aiohappyeyeballs

from llmesh.services.transport.http1_conn import (
    HIGH_WATER,
    MAX_HEADER_BYTES,
    Connection,
    HttpProtocolError,
    Response,
    UpstreamClosed,
    render_headers,
)

__all__ = [
    "HAPPY_EYEBALLS_DELAY",
    "HIGH_WATER",
    "MAX_HEADER_BYTES",
    "ConnectionPool",
    "HttpProtocolError",
    "Response",
    "UpstreamClosed",
    "render_headers",
]

HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds before a new connection also tries a host's next address (RFC 8305 suggests 0.25)."""


class ConnectionPool:
    """Keep-alive connections to one origin (``scheme://host:port``), shared by all calls.

    Build it anywhere; it binds to the running loop on first use. `aclose` closes every
    connection; the pool can be used again afterwards.
    """

    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int = 0,
        keepalive_timeout: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        default_port = self.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if default_port else f"{host}:{self.port}"
        self.base_path = parts.path.rstrip("/")
        self.max_connections = max_connections
        self.keepalive_timeout = keepalive_timeout
        self._ssl = ssl_context
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()
        self._connecting = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl

    # -- requests ---------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        headers: bytes,
        body: bytes,
        *,
        timeout: float,
        connect_timeout: float,
    ) -> Response:
        """Send ``{method} {base path}{path}`` and return once the reply's headers are in.

        `headers` are rendered lines (`render_headers`); ``host`` and ``content-length``
        are added. `timeout` (seconds) bounds everything from here to the body's last
        byte; past it the connection is closed and the pending call raises TimeoutError.
        """
        loop = self.loop
        deadline = loop.time() + timeout
        conn = await self._acquire(deadline, connect_timeout)
        resp = Response(conn)
        resp._timer = loop.call_at(deadline, resp._expire)
        head = (
            f"{method} {self.base_path}{path} HTTP/1.1\r\nhost: {self.authority}\r\n"
            f"content-length: {len(body)}\r\n"
        ).encode("latin-1")
        try:
            conn.send(head + headers + b"\r\n" + body, resp)
            waiting = conn.head
            assert waiting is not None
            await waiting
        except BaseException:
            resp.close()
            raise
        return resp

    async def _acquire(self, deadline: float, connect_timeout: float) -> Connection:
        while True:
            idle = self._idle
            while idle:
                conn = idle.pop()
                if not conn.closed:
                    conn._cancel_idle()
                    return conn
            limit = self.max_connections
            if not limit or len(self._open) + self._connecting < limit:
                return await self._connect(deadline, connect_timeout)
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass on a slot this caller will not use
                else:
                    waiter.cancel()
                raise

    async def _connect(self, deadline: float, connect_timeout: float) -> Connection:
        loop = self.loop
        self._connecting += 1
        try:
            async with asyncio.timeout_at(min(deadline, loop.time() + connect_timeout)):
                infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
                sock = await aiohappyeyeballs.start_connection(
                    infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, interleave=1
                )
                try:
                    _, conn = await loop.create_connection(
                        lambda: Connection(self),
                        sock=sock,
                        ssl=self._ssl_context(),
                        server_hostname=self.host if self.tls else None,
                    )
                except BaseException:
                    sock.close()
                    raise
        except BaseException:
            self._connecting -= 1
            self._wake_one()  # the slot this attempt held is free again
            raise
        self._connecting -= 1
        self._open.add(conn)
        return conn

    # -- connections coming back --------------------------------------------------------

    def put_back(self, conn: Connection) -> None:
        conn.idle_timer = self.loop.call_later(self.keepalive_timeout, conn.abort)
        self._idle.append(conn)
        self._wake_one()

    def forget(self, conn: Connection) -> None:
        """A connection closed: it no longer counts against the limit."""
        if conn in self._open:
            self._open.discard(conn)
            if conn in self._idle:
                self._idle.remove(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @property
    def connections(self) -> int:
        """Connections open now (in use and idle)."""
        return len(self._open)

    async def aclose(self) -> None:
        """Close every connection, idle or in use; a later call binds to the loop it runs in."""
        for conn in list(self._open):
            conn._broken(UpstreamClosed("the connection pool was closed"))
        self._idle.clear()
        self._open.clear()
        await asyncio.sleep(0)  # let the transports run their close callbacks
        self._loop = None
