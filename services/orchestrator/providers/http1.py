"""A minimal HTTP/1.1 client for streamed POSTs: asyncio protocols, httptools, one pool.

The lean transport's hot path is one upstream read per token. A general client pays for
generality there (aiohttp: a stream reader, a timer context and about twenty Python calls
per read); this one does what a streamed LLM call needs and no more. Each connection is an
`asyncio.Protocol` whose bytes go straight into httptools' C parser (llhttp), which
decodes chunked and length-delimited bodies and hands each body piece to `Response`; the
consumer takes everything that has arrived in one `read_chunk` call.

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
that is not HTTP/1.x) or TimeoutError, which `errors.classify_transport` already reads. It
does not follow redirects, read proxy settings or retry: the caller's policy decides.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import zlib
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

import aiohappyeyeballs
import httptools

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

HIGH_WATER = 256 * 1024
"""Unread body bytes at which a connection pauses reading (it resumes once they are read)."""

HAPPY_EYEBALLS_DELAY = 0.25
"""Seconds before a new connection also tries a host's next address (RFC 8305 suggests 0.25)."""

MAX_HEADER_BYTES = 64 * 1024
"""The largest response head accepted (status line and headers)."""


class UpstreamClosed(ConnectionError):
    """The server closed the connection before the reply ended."""


class HttpProtocolError(ConnectionError):
    """The server's bytes are not a well-formed HTTP/1.x reply."""


def render_headers(headers: Mapping[str, str]) -> bytes:
    """Header lines for a request, ``Name: value\\r\\n`` each; refuses CR, LF and NUL."""
    out = []
    for name, value in headers.items():
        if not name or any(c in name for c in "\r\n\0:") or any(c in value for c in "\r\n\0"):
            raise ValueError(f"header {name!r} has a character HTTP does not allow")
        out.append(f"{name}: {value}\r\n")
    return "".join(out).encode("latin-1")


class Response:
    """One reply: its status and headers, then its body piece by piece."""

    __slots__ = (
        "_conn",
        "_pieces",
        "_timer",
        "_waiter",
        "done",
        "error",
        "headers",
        "status",
        "unread",
    )

    def __init__(self, conn: _Connection) -> None:
        self._conn: _Connection | None = conn
        self.status = 0
        self.headers: dict[str, str] = {}
        """Header names in lower case; repeated headers joined with ``", "``."""
        self._pieces: list[bytes] = []
        self.unread = 0
        self.done = False
        """The whole body has arrived (it may not all have been read yet)."""
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- the consumer's side --------------------------------------------------------

    async def read_chunk(self) -> bytes:
        """Every body byte that has arrived since the last call; ``b""`` at the end."""
        while True:
            pieces = self._pieces
            if pieces:
                data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
                self._pieces = []
                self.unread = 0
                conn = self._conn
                if conn is not None and conn.paused:
                    conn.resume()
                return data
            if self.error is not None:
                raise self.error
            if self.done:
                return b""
            conn = self._conn
            if conn is None:  # closed or released by this side before the end
                raise UpstreamClosed("the reply was closed before its end")
            waiter = self._waiter = conn.loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def read(self) -> bytes:
        """The rest of the body, whole."""
        parts = []
        while chunk := await self.read_chunk():
            parts.append(chunk)
        return b"".join(parts)

    @property
    def at_eof(self) -> bool:
        """The whole body has arrived and been read."""
        return self.done and not self._pieces

    def release(self) -> None:
        """Done with the reply: the connection goes back to the pool if the body ended
        cleanly and the server keeps it alive, and is closed otherwise."""
        conn, self._conn = self._conn, None
        self._stop_timer()
        if conn is not None:
            conn.finish(self, reusable=self.done and self.error is None)

    def close(self) -> None:
        """Done with the reply before its end: close the connection."""
        conn, self._conn = self._conn, None
        self._stop_timer()
        if conn is not None:
            conn.finish(self, reusable=False)

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    # -- the connection's side ------------------------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None and not self.done:
            self.error = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _expire(self) -> None:
        """The request's deadline passed."""
        self._timer = None
        exc = TimeoutError("the upstream did not finish in time")
        self._fail(exc)
        conn, self._conn = self._conn, None
        if conn is not None:
            head, conn.head = conn.head, None
            if head is not None and not head.done():
                head.set_exception(exc)  # `post` is waiting for the reply's head
            conn.finish(self, reusable=False)


class _Connection(asyncio.Protocol):
    """One TCP (or TLS) connection, reading one reply at a time."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        self.loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.head: asyncio.Future[None] | None = None
        """Resolved once the reply's headers are complete."""
        self.head_bytes = 0
        """Bytes of the reply's head parsed so far (names and values)."""
        self.head_raw = 0
        """Bytes received while the head is incomplete (httptools buffers a partial line)."""
        self.framed = False
        """The body has a length or is chunked (else it ends with the connection)."""
        self.decoder: zlib._Decompress | None = None
        self.keep_alive = False
        self.paused = False
        self.closed = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self._header_name = b""

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        resp = self.response
        if resp is None:  # bytes on an idle connection: it cannot be reused
            self.abort()
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._broken(HttpProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            cause = exc.__context__  # what one of the callbacks raised, if one did
            if not isinstance(cause, HttpProtocolError):
                cause = HttpProtocolError(f"the upstream's reply is not valid HTTP: {exc}")
            self._broken(cause)
        else:
            if self.head is not None:  # the head is incomplete: bound it as it arrives
                self.head_raw += len(data)
                if self.head_raw > MAX_HEADER_BYTES:
                    self._broken(
                        HttpProtocolError(f"the upstream's head exceeds {MAX_HEADER_BYTES} bytes")
                    )

    def eof_received(self) -> bool | None:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        self._cancel_idle()
        resp = self.response
        if resp is None:
            return
        if resp.status and not self.framed and not resp.done and self.head is None:
            self.on_message_complete()  # a body delimited by the end of the connection
            return
        self._broken(UpstreamClosed("the upstream closed the connection before the reply ended"))

    def pause_writing(self) -> None:  # the request is small; nothing to hold back
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ----------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > MAX_HEADER_BYTES:
            raise HttpProtocolError(f"the upstream's headers exceed {MAX_HEADER_BYTES} bytes")
        resp = self.response
        assert resp is not None
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = resp.headers.get(key)
        resp.headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        resp = self.response
        assert resp is not None
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim reply (103 Early Hints): the real one follows
            resp.headers = {}
            self.head_bytes = 0
            return
        resp.status = status
        headers = resp.headers
        self.framed = "content-length" in headers or "chunked" in headers.get(
            "transfer-encoding", ""
        ).lower().replace(" ", "").split(",")
        self.keep_alive = self.framed and self.parser.should_keep_alive()
        coding = headers.get("content-encoding", "identity").strip().lower()
        if coding in ("gzip", "x-gzip", "deflate"):
            self.decoder = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header
        elif coding not in ("identity", ""):
            raise HttpProtocolError(f"the upstream used content-encoding {coding!r}")
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.set_result(None)

    def on_body(self, body: bytes) -> None:
        resp = self.response
        assert resp is not None
        if self.decoder is not None:
            try:
                body = self.decoder.decompress(body)
            except zlib.error as exc:
                raise HttpProtocolError(f"the upstream's gzip body is corrupt: {exc}") from None
            if not body:
                return
        resp._pieces.append(body)
        resp.unread += len(body)
        if resp.unread >= HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        resp._wake()

    def on_message_complete(self) -> None:
        resp = self.response
        if resp is None or not resp.status:
            return  # the end of an interim reply
        decoder = self.decoder
        if decoder is not None:
            tail = decoder.flush()
            if tail:
                resp._pieces.append(tail)
                resp.unread += len(tail)
            if not decoder.eof:  # the body ended inside the compressed stream
                self._broken(HttpProtocolError("the upstream's compressed body is cut short"))
                return
        resp.done = True
        resp._wake()

    # -- the pool's side --------------------------------------------------------------

    def send(self, request: bytes, resp: Response) -> None:
        """Write one request and expect its reply."""
        self._cancel_idle()
        self.response = resp
        self.head = self.loop.create_future()
        self.head_bytes = 0
        self.head_raw = 0
        self.framed = False
        self.decoder = None
        self.keep_alive = False
        assert self.transport is not None
        self.transport.write(request)

    def finish(self, resp: Response, *, reusable: bool) -> None:
        if self.response is not resp:
            return
        self.response = None
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.cancel()  # nobody waits for it any more
        if reusable and self.keep_alive and not self.closed and not self.paused:
            self.pool.put_back(self)
        else:
            self.abort()

    def resume(self) -> None:
        self.paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def abort(self) -> None:
        """Close the connection now (the server sees it at once)."""
        self._cancel_idle()
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
        self.pool.forget(self)

    def _broken(self, exc: BaseException) -> None:
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.set_exception(exc)
        resp = self.response
        if resp is not None:
            resp._fail(exc)
        self.abort()

    def _cancel_idle(self) -> None:
        timer, self.idle_timer = self.idle_timer, None
        if timer is not None:
            timer.cancel()


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
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
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

    async def post(
        self,
        path: str,
        headers: bytes,
        body: bytes,
        *,
        timeout: float,
        connect_timeout: float,
    ) -> Response:
        """Send ``POST {base path}{path}`` and return once the reply's headers are in.

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
            f"POST {self.base_path}{path} HTTP/1.1\r\nhost: {self.authority}\r\n"
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

    async def _acquire(self, deadline: float, connect_timeout: float) -> _Connection:
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

    async def _connect(self, deadline: float, connect_timeout: float) -> _Connection:
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
                        lambda: _Connection(self),
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

    def put_back(self, conn: _Connection) -> None:
        conn.idle_timer = self.loop.call_later(self.keepalive_timeout, conn.abort)
        self._idle.append(conn)
        self._wake_one()

    def forget(self, conn: _Connection) -> None:
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
