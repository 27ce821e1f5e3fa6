"""The lean transport's HTTP/1.1 client against raw servers that write exact bytes.

Each server connection runs a script (`tests.support.raw_server`), so a test controls the
wire byte by byte; the core paths also run on uvloop, which production uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import socket
import ssl
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest
import trustme
import uvloop

from services.orchestrator.providers.http1 import (
    HIGH_WATER,
    MAX_HEADER_BYTES,
    ConnectionPool,
    HttpProtocolError,
    Response,
    UpstreamClosed,
    render_headers,
)
from tests.support.raw_server import (
    Peer,
    RawServer,
    Script,
    hanging_up,
    raw_server,
    replying,
    stalling,
    until,
)

OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
BROTLI = b"HTTP/1.1 200 OK\r\ncontent-encoding: br\r\ncontent-length: 2\r\n\r\nok"
NOT_GZIP = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 8\r\n\r\nnot gzip"
HUGE_HEAD = b"HTTP/1.1 200 OK\r\n" + b"x-h: %s\r\n" % (b"v" * 100) * 700 + b"\r\n"

Run = Callable[[Coroutine[Any, Any, None]], None]
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
    return await pool.post("/chat", b"", b"{}", timeout=timeout, connect_timeout=timeout)


async def fetch(pool: ConnectionPool) -> bytes:
    """One whole reply's body, its connection released."""
    resp = await post(pool)
    body = await resp.read()
    resp.release()
    return body


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Run:
    """Runs a coroutine to its end on a fresh loop of each kind in turn."""

    def run(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as runner:
            runner.run(coro)

    return run


@pytest.fixture(scope="module")
def tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 from a test CA, and a client one
    trusting that CA."""
    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


# -- the request ------------------------------------------------------------------------


def test_request_line_host_length_headers_and_body_on_the_wire(run: Run) -> None:
    async def scenario() -> None:
        async with serving(replying(OK), path="/v1/") as (up, pool):
            headers = render_headers({"authorization": "Bearer k", "x-a": "b"})
            resp = await pool.post("/chat", headers, b'{"a":1}', timeout=2, connect_timeout=2)
            resp.close()
            assert up.requests == [
                b"POST /v1/chat HTTP/1.1\r\nhost: 127.0.0.1:%d\r\ncontent-length: 7\r\n"
                b'authorization: Bearer k\r\nx-a: b\r\n\r\n{"a":1}' % up.port
            ]

    run(scenario())


@pytest.mark.skipif(not _ipv6(), reason="no IPv6 loopback")
async def test_host_header_brackets_an_ipv6_address() -> None:
    async with serving(replying(OK), host="::1") as (up, pool):
        (await post(pool)).close()
        assert b"\r\nhost: [::1]:%d\r\n" % up.port in up.requests[0]


@pytest.mark.parametrize(
    ("url", "authority"),
    [
        ("http://example.com", "example.com"),
        ("http://example.com:80/v1", "example.com"),
        ("https://example.com:443", "example.com"),
        ("https://example.com:80", "example.com:80"),
        ("http://example.com:8080", "example.com:8080"),
        ("http://[::1]", "[::1]"),
        ("https://[2001:db8::1]:8443/", "[2001:db8::1]:8443"),
    ],
)
def test_authority_has_the_port_unless_default_and_brackets_ipv6(url: str, authority: str) -> None:
    assert ConnectionPool(url).authority == authority


@pytest.mark.parametrize("url", ["ftp://example.com", "http://", "example.com"])
def test_pool_refuses_a_url_that_is_not_http(url: str) -> None:
    with pytest.raises(ValueError):
        ConnectionPool(url)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        *[("", "v"), ("a\rb", "v"), ("a\nb", "v"), ("a\0b", "v"), ("a:b", "v")],
        *[("a", "x\ry"), ("a", "x\ny"), ("a", "x\0y"), ("a", "v\r\nhost: evil")],
    ],
)
def test_render_headers_refuses_cr_lf_nul_anywhere_and_a_colon_in_a_name(
    name: str, value: str
) -> None:
    with pytest.raises(ValueError):
        render_headers({name: value})


# -- the reply --------------------------------------------------------------------------


def test_content_length_reply_status_and_headers(run: Run) -> None:
    reply = (
        b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Multi: a\r\n"
        b"Content-Type: text/plain\r\nx-multi: b\r\n\r\nhello"
    )

    async def scenario() -> None:
        async with serving(replying(reply)) as (_, pool):
            resp = await post(pool)
            assert resp.status == 201
            assert resp.headers == {
                "content-length": "5",
                "x-multi": "a, b",
                "content-type": "text/plain",
            }
            assert await resp.read() == b"hello"
            assert await resp.read_chunk() == b""
            assert await resp.read_chunk() == b""
            assert resp.at_eof
            resp.release()

    run(scenario())


def test_chunked_reply_split_at_every_byte(run: Run) -> None:
    reply = CHUNKED + b"5\r\nhello\r\n6;ext=1\r\n world\r\n1\r\n!\r\n0\r\n\r\n"

    async def scenario() -> None:
        async with serving(hanging_up(reply, pace=0.001)) as (_, pool):
            resp = await post(pool)
            assert resp.headers == {"transfer-encoding": "chunked"}
            pieces = []
            while piece := await resp.read_chunk():
                pieces.append(piece)
            assert b"".join(pieces) == b"hello world!"
            assert len(pieces) > 1  # it did arrive in pieces
            assert resp.at_eof

    run(scenario())


def test_reply_delimited_by_the_end_of_the_connection(run: Run) -> None:
    reply = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nhello world"

    async def scenario() -> None:
        async with serving(hanging_up(reply)) as (_, pool):
            resp = await post(pool)
            assert resp.status == 200
            assert await resp.read() == b"hello world"
            assert await resp.read_chunk() == b""
            resp.release()
            assert pool.connections == 0

    run(scenario())


async def test_an_interim_103_reply_is_skipped() -> None:
    reply = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK.replace(
        b"OK\r\n", b"OK\r\nx: 1\r\n"
    )
    async with serving(replying(reply)) as (_, pool):
        resp = await post(pool)
        assert (resp.status, resp.headers) == (200, {"x": "1", "content-length": "2"})
        assert await resp.read() == b"ok"
        resp.release()
        assert pool.connections == 1


@pytest.mark.parametrize(
    ("coding", "compress"), [("gzip", gzip.compress), ("deflate", zlib.compress)]
)
async def test_compressed_body_is_decoded(coding: str, compress: Callable[[bytes], bytes]) -> None:
    data = compress(b"hello world " * 100)
    half = len(data) // 2
    reply = CHUNKED.replace(b"\r\n\r\n", b"\r\ncontent-encoding: %s\r\n\r\n" % coding.encode())
    for piece in data[:half], data[half:]:
        reply += b"%x\r\n%s\r\n" % (len(piece), piece)
    async with serving(replying(reply + b"0\r\n\r\n")) as (_, pool):
        resp = await post(pool)
        assert await resp.read() == b"hello world " * 100
        resp.release()


async def test_a_compressed_body_cut_short_is_an_error() -> None:
    data = gzip.compress(b"hello world " * 100)[:-12]  # framed right, but not the whole stream
    reply = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(data)
    async with serving(replying(reply + data)) as (_, pool):
        resp = await post(pool)
        with pytest.raises(HttpProtocolError, match="cut short"):
            await resp.read()
        resp.close()
        assert pool.connections == 0


@pytest.mark.parametrize(
    "reply",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: h2c\r\nconnection: upgrade\r\n\r\n",
        HUGE_HEAD,
        BROTLI,
        NOT_GZIP,
    ],
    ids=["garbage", "bad-status", "upgrade", "huge-head", "brotli", "corrupt-gzip"],
)
async def test_malformed_reply_is_a_protocol_error(reply: bytes) -> None:
    async with serving(stalling(reply)) as (up, pool):
        with pytest.raises(HttpProtocolError) as caught:
            await (await post(pool)).read()
        assert isinstance(caught.value, ConnectionError)
        await until(lambda: up.eofs == 1 and pool.connections == 0)


async def test_head_just_under_the_header_limit_is_accepted() -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\n" + b"x-h: %s\r\n" % (b"v" * 100) * 500 + b"content-length: 0\r\n\r\n"
    )
    async with serving(replying(reply)) as (_, pool):
        resp = await post(pool)
        assert resp.headers["x-h"].count("v") == 50_000
        resp.release()


@pytest.mark.parametrize(
    ("reply", "reason"),
    [(BROTLI, "content-encoding 'br'"), (NOT_GZIP, "corrupt"), (HUGE_HEAD, "exceed")],
    ids=["brotli", "not-gzip", "huge-head"],
)
async def test_a_protocol_error_says_what_was_wrong(reply: bytes, reason: str) -> None:
    async with serving(stalling(reply)) as (_, pool):
        with pytest.raises(HttpProtocolError, match=reason):
            await (await post(pool)).read()


async def test_an_unterminated_header_over_the_limit_is_refused_at_once() -> None:
    head = b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * (2 * MAX_HEADER_BYTES)
    async with serving(stalling(head)) as (_, pool):
        with pytest.raises(HttpProtocolError):
            await post(pool, timeout=0.3)


@pytest.mark.parametrize("sent", [b"", b"HTTP/1.1 200 OK\r\ncontent-le"])
async def test_server_closing_before_the_head_fails_the_post(sent: bytes) -> None:
    async with serving(hanging_up(sent)) as (_, pool):
        with pytest.raises(UpstreamClosed):
            await post(pool)
        assert pool.connections == 0


@pytest.mark.parametrize(
    ("sent", "body"),
    [
        (CHUNKED + b"5\r\nhello\r\n3\r\nwor", b"hellowor"),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 99\r\n\r\nhello", b"hello"),
    ],
    ids=["chunked", "content-length"],
)
async def test_server_closing_mid_body_fails_the_read(sent: bytes, body: bytes) -> None:
    async with serving(hanging_up(sent)) as (_, pool):
        resp = await post(pool)
        received = b""
        with pytest.raises(UpstreamClosed):
            while True:
                received += await resp.read_chunk()
        assert received == body
        assert pool.connections == 0


# -- keep-alive -------------------------------------------------------------------------


def test_sequential_requests_reuse_one_connection(run: Run) -> None:
    async def scenario() -> None:
        async with serving(replying(OK)) as (up, pool):
            for _ in range(3):
                resp = await post(pool)
                assert await resp.read() == b"ok"
                resp.release()
            assert (up.accepted, len(up.requests), pool.connections) == (1, 3, 1)

    run(scenario())


@pytest.mark.parametrize(
    "script",
    [
        replying(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"),
        replying(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"),
        hanging_up(b"HTTP/1.1 200 OK\r\n\r\nok"),
    ],
    ids=["connection-close", "http-1.0", "close-delimited"],
)
async def test_a_reply_that_ends_the_connection_is_not_reused(script: Script) -> None:
    async with serving(script) as (up, pool):
        for _ in range(2):
            assert await fetch(pool) == b"ok"
        assert up.accepted == 2


@pytest.mark.parametrize("how", ["close", "release"])
async def test_leaving_a_reply_before_its_end_closes_the_connection(how: str) -> None:
    async with serving(stalling(CHUNKED + b"5\r\nhello\r\n")) as (up, pool):
        resp = await post(pool)
        assert await resp.read_chunk() == b"hello"
        getattr(resp, how)()
        assert pool.connections == 0
        with pytest.raises(UpstreamClosed):
            await resp.read_chunk()
        await until(lambda: up.eofs == 1, within=1.0)


async def test_server_closing_an_idle_connection_leads_to_a_new_one() -> None:
    async with serving(hanging_up(OK), replying(OK)) as (up, pool):
        assert await fetch(pool) == b"ok"
        await until(lambda: pool.connections == 0)
        assert await fetch(pool) == b"ok"
        assert up.accepted == 2


async def test_idle_connection_is_closed_after_the_keepalive_timeout() -> None:
    async with serving(replying(OK), keepalive_timeout=0.05) as (up, pool):
        assert await fetch(pool) == b"ok"
        assert pool.connections == 1
        await until(lambda: up.eofs == 1 and pool.connections == 0)


async def test_bytes_on_an_idle_connection_make_it_unusable() -> None:
    go = asyncio.Event()

    async def chatty(peer: Peer) -> None:
        await peer.request()
        await peer.send(OK)
        await go.wait()
        await peer.send(OK)  # unasked for
        await peer.wait_closed()

    async with serving(chatty, replying(OK)) as (up, pool):
        assert await fetch(pool) == b"ok"
        assert pool.connections == 1
        go.set()
        await until(lambda: up.eofs == 1 and pool.connections == 0)
        assert await fetch(pool) == b"ok"
        assert up.accepted == 2


async def test_aclose_closes_idle_and_busy_connections_and_the_pool_works_after() -> None:
    scripts = (replying(OK), stalling(CHUNKED + b"5\r\nhello\r\n"), replying(OK))
    async with serving(*scripts) as (up, pool):
        idle, busy = await post(pool), await post(pool)
        assert await idle.read() == b"ok"
        idle.release()
        assert await busy.read_chunk() == b"hello"
        reading = asyncio.create_task(busy.read_chunk())
        await asyncio.sleep(0.01)
        await pool.aclose()
        with pytest.raises(UpstreamClosed):
            await reading
        assert pool.connections == 0
        await until(lambda: up.eofs == 2)
        assert await fetch(pool) == b"ok"
        assert up.accepted == 3


# -- the connection limit ---------------------------------------------------------------


async def test_max_connections_makes_a_third_request_wait_for_a_release() -> None:
    async with serving(replying(OK), max_connections=2) as (up, pool):
        first, second = await post(pool), await post(pool)
        third = asyncio.create_task(post(pool))
        await asyncio.sleep(0.05)
        assert not third.done()
        assert (up.accepted, pool.connections) == (2, 2)
        assert await first.read() == b"ok"
        first.release()
        assert await (await third).read() == b"ok"
        assert up.accepted == 2
        second.close()


async def test_a_waiter_past_its_deadline_times_out_and_leaves_the_slot() -> None:
    async with serving(replying(OK), max_connections=1) as (up, pool):
        held = await post(pool)
        with pytest.raises(TimeoutError):
            await post(pool, timeout=0.05)
        later = asyncio.create_task(post(pool))
        await asyncio.sleep(0.01)
        assert not later.done()
        held.close()
        assert await (await later).read() == b"ok"
        assert up.accepted == 2


async def test_a_failed_connect_wakes_a_request_waiting_for_its_slot(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async with serving(replying(OK), tls=tls[0], max_connections=1) as (_, pool):
        first = asyncio.create_task(post(pool))  # the default trust: the handshake fails
        second = asyncio.create_task(post(pool, timeout=0.4))  # waits for the slot
        with pytest.raises(ssl.SSLCertVerificationError):
            await first
        with pytest.raises(ssl.SSLCertVerificationError):
            await second


# -- deadlines and cancellation ---------------------------------------------------------


async def test_server_that_never_answers_times_out_at_post() -> None:
    async with serving(stalling()) as (up, pool):
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError):
            await post(pool, timeout=0.1)
        assert 0.09 <= loop.time() - start < 1.0
        assert pool.connections == 0
        await until(lambda: up.eofs == 1)


async def test_server_stalling_mid_body_times_out_in_read_chunk() -> None:
    async with serving(stalling(CHUNKED + b"5\r\nhello\r\n")) as (up, pool):
        resp = await post(pool, timeout=0.15)
        assert await resp.read_chunk() == b"hello"
        with pytest.raises(TimeoutError):
            await resp.read_chunk()
        assert pool.connections == 0
        await until(lambda: up.eofs == 1)


async def test_refused_connection_raises_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        pool = ConnectionPool(f"http://127.0.0.1:{sock.getsockname()[1]}")
        with pytest.raises(ConnectionRefusedError):
            await post(pool)
        assert pool.connections == 0


@contextlib.contextmanager
def blackhole() -> Iterator[tuple[str, int]]:
    """An address whose connects hang: a listener with a full backlog drops new SYNs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = []
        try:
            for _ in range(4):  # never accepted, they fill the backlog
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(listener.getsockname())
                fillers.append(filler)
            yield listener.getsockname()
        finally:
            for filler in fillers:
                filler.close()


async def test_a_dead_first_address_costs_the_happy_eyeballs_delay_not_the_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with serving(replying(OK)) as (up, pool):
        with blackhole() as dead:
            live = ("127.0.0.1", int(up.url.rsplit(":", 1)[1]))
            infos = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", a) for a in (dead, live)]

            async def resolve(*_: Any, **__: Any) -> list[Any]:
                return infos

            monkeypatch.setattr(pool.loop, "getaddrinfo", resolve)
            started = pool.loop.time()
            resp = await pool.post("/chat", b"", b"{}", timeout=10, connect_timeout=5)
            assert await resp.read() == b"ok"
            assert pool.loop.time() - started < 3  # the blackholed address alone hangs for 5 s
            resp.release()


async def test_cancelling_post_closes_the_connection_and_frees_the_slot() -> None:
    async with serving(stalling(), replying(OK), max_connections=1) as (up, pool):
        task = asyncio.create_task(post(pool))
        await until(lambda: len(up.requests) == 1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await until(lambda: up.eofs == 1 and pool.connections == 0, within=1.0)
        assert await fetch(pool) == b"ok"


async def test_cancelling_read_chunk_then_closing_frees_the_connection() -> None:
    scripts = (stalling(CHUNKED + b"5\r\nhello\r\n"), replying(OK))
    async with serving(*scripts, max_connections=1) as (up, pool):
        resp = await post(pool)
        assert await resp.read_chunk() == b"hello"
        task = asyncio.create_task(resp.read_chunk())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        resp.close()
        await until(lambda: up.eofs == 1 and pool.connections == 0, within=1.0)
        assert await fetch(pool) == b"ok"


# -- back-pressure ----------------------------------------------------------------------


def test_back_pressure_pauses_reading_and_loses_nothing(run: Run) -> None:
    body = os.urandom(8 * HIGH_WATER)
    reply = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    async def scenario() -> None:
        async with serving(replying(reply)) as (_, pool):
            resp = await post(pool)
            conn = resp._conn
            assert conn is not None and conn.transport is not None
            await until(lambda: conn.paused)
            assert not conn.transport.is_reading()
            held = resp.unread
            await asyncio.sleep(0.02)
            assert HIGH_WATER <= resp.unread == held < len(body)
            assert await resp.read() == body
            assert not conn.paused
            resp.release()
            assert pool.connections == 1

    run(scenario())


# -- https ------------------------------------------------------------------------------


def test_https_with_a_context_that_trusts_the_server(
    run: Run, tls: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    async def scenario() -> None:
        async with serving(replying(OK), tls=tls[0], ssl_context=tls[1]) as (up, pool):
            for _ in range(2):
                resp = await post(pool)
                assert (resp.status, await resp.read()) == (200, b"ok")
                resp.release()
            assert up.accepted == 1
            assert b"\r\nhost: 127.0.0.1:%d\r\n" % up.port in up.requests[0]

    run(scenario())


async def test_https_with_the_default_trust_refuses_a_self_signed_server(
    tls: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    async with serving(replying(OK), tls=tls[0]) as (_, pool):
        with pytest.raises(ssl.SSLCertVerificationError):
            await post(pool)
        assert pool.connections == 0


def test_a_closed_pool_serves_again_from_another_event_loop() -> None:
    async def serve_one(pool: ConnectionPool, port: int) -> bytes:
        async with raw_server(replying(OK), port=port):
            body = await fetch(pool)
            await pool.aclose()
            return body

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = ConnectionPool(f"http://127.0.0.1:{port}")
    assert asyncio.run(serve_one(pool, port)) == b"ok"
    assert asyncio.run(serve_one(pool, port)) == b"ok"  # a new loop: the pool follows it
