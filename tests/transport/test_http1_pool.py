"""The HTTP/1.1 client's pool against raw servers: keep-alive, the connection limit,
deadlines, cancellation, back-pressure, https, and closing and reopening the pool.

The request and the framing of replies are in `test_http1.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest

from bench.ports import free_port
from llmesh.services.transport.http1 import (
    HIGH_WATER,
    ConnectionPool,
    UpstreamClosed,
)
from tests.support.http1 import CHUNKED, OK, Run, fetch, post, serving
from tests.support.raw_server import (
    Peer,
    Script,
    hanging_up,
    raw_server,
    replying,
    stalling,
    until,
)

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
            resp = await pool.request("POST", "/chat", b"", b"{}", timeout=10, connect_timeout=5)
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

    port = free_port()
    pool = ConnectionPool(f"http://127.0.0.1:{port}")
    assert asyncio.run(serve_one(pool, port)) == b"ok"
    assert asyncio.run(serve_one(pool, port)) == b"ok"  # a new loop: the pool follows it
