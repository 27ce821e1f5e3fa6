"""One HTTP/1.1 connection of `http1.ConnectionPool`, and the reply it reads.

`Connection` is an `asyncio.Protocol` whose bytes go straight into httptools' C parser
(llhttp), which decodes chunked and length-delimited bodies; each body piece lands in the
`Response`, whose consumer takes everything that has arrived in one `read_chunk` call. The
pool that owns a connection (`Owner`) takes it back when a reply ends cleanly and forgets
it when it closes. Also here: the request's header lines (`render_headers`) and the two
failures a connection reports besides TimeoutError.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Mapping
from typing import Protocol, cast

import httptools

__all__ = [
    "HIGH_WATER",
    "MAX_HEADER_BYTES",
    "Connection",
    "HttpProtocolError",
    "Owner",
    "Response",
    "UpstreamClosed",
    "render_headers",
]

HIGH_WATER = 256 * 1024
"""Unread body bytes at which a connection pauses reading (it resumes once they are read)."""

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


class Owner(Protocol):
    """What a connection needs of the pool that owns it."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def put_back(self, conn: Connection) -> None:
        """Keep an idle connection for the next request."""

    def forget(self, conn: Connection) -> None:
        """A connection closed: it no longer counts against the limit."""


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

    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn
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


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection, reading one reply at a time, for its `Owner` pool."""

    def __init__(self, pool: Owner) -> None:
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
