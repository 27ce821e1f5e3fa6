"""The lean transport's HTTP/1.1 client against raw servers that write exact bytes: the
request it sends and every way a reply can be framed, encoded or broken.

Each server connection runs a script (`tests.support.raw_server`), so a test controls the
wire byte by byte; the core paths also run on uvloop, which production uses. The pool's
side (keep-alive, limits, deadlines, cancellation) is in `test_http1_pool.py`.
"""

from __future__ import annotations

import gzip
import socket
import zlib
from collections.abc import Callable

import pytest

from llmesh.services.transport.http1 import (
    MAX_HEADER_BYTES,
    ConnectionPool,
    HttpProtocolError,
    UpstreamClosed,
    render_headers,
)
from tests.support.http1 import CHUNKED, OK, Run, post, serving
from tests.support.raw_server import (
    hanging_up,
    replying,
    stalling,
    until,
)

BROTLI = b"HTTP/1.1 200 OK\r\ncontent-encoding: br\r\ncontent-length: 2\r\n\r\nok"
NOT_GZIP = b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: 8\r\n\r\nnot gzip"
HUGE_HEAD = b"HTTP/1.1 200 OK\r\n" + b"x-h: %s\r\n" % (b"v" * 100) * 700 + b"\r\n"


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
            resp = await pool.request(
                "POST", "/chat", headers, b'{"a":1}', timeout=2, connect_timeout=2
            )
            resp.close()
            assert up.requests == [
                b"POST /v1/chat HTTP/1.1\r\nhost: 127.0.0.1:%d\r\ncontent-length: 7\r\n"
                b'authorization: Bearer k\r\nx-a: b\r\n\r\n{"a":1}' % up.port
            ]

    run(scenario())


async def test_request_sends_the_method_it_is_given() -> None:
    async with serving(replying(OK)) as (up, pool):
        resp = await pool.request("GET", "/v1/models", b"", b"", timeout=2, connect_timeout=2)
        assert await resp.read() == b"ok"
        resp.release()
        assert up.requests[0].startswith(b"GET /v1/models HTTP/1.1\r\n")


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
