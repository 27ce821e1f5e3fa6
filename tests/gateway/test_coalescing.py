"""The gateway's HTTP connections write a response's head and body as one segment."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from llmesh.gateway.coalescing import CoalescingHttpToolsProtocol, CoalescingTransport
from llmesh.gateway.server import uvicorn_config
from llmesh.gateway.settings import GatewaySettings


class _Transport:
    """Records what reaches the socket."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False
        self.aborted = False
        self.eof = False

    def write(self, data: bytes) -> None:
        assert not self.closing, "written after close"
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def write_eof(self) -> None:
        self.eof = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 1)}.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 7


def _coalescing() -> tuple[CoalescingTransport, _Transport]:
    raw = _Transport()
    return CoalescingTransport(raw, asyncio.get_running_loop()), raw  # type: ignore[arg-type]


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


async def test_a_head_goes_out_with_the_body_after_it() -> None:
    t, raw = _coalescing()
    t.write(HEAD)
    assert raw.writes == []
    t.write(b"{}")
    assert raw.writes == [HEAD + b"{}"]  # at once, not at the end of the turn
    await asyncio.sleep(0)
    assert raw.writes == [HEAD + b"{}"]


async def test_a_head_alone_goes_out_at_the_end_of_the_turn_and_a_body_at_once() -> None:
    t, raw = _coalescing()
    t.write(HEAD.replace(b"content-length: 2", b"transfer-encoding: chunked"))
    await asyncio.sleep(0)  # a stream waiting for its first event
    assert len(raw.writes) == 1
    t.write(b"5\r\nhello\r\n")  # each event goes out as it comes
    assert raw.writes[1:] == [b"5\r\nhello\r\n"]


async def test_close_and_eof_send_a_held_head_first_and_abort_drops_it() -> None:
    t, raw = _coalescing()
    t.write(HEAD)
    t.write_eof()
    assert raw.writes == [HEAD] and raw.eof
    t.write(HEAD)
    t.close()
    assert raw.writes == [HEAD, HEAD] and raw.closing
    await asyncio.sleep(0)  # the scheduled flush finds nothing left
    assert raw.writes == [HEAD, HEAD]
    t, raw = _coalescing()
    t.write(HEAD)
    t.abort()
    await asyncio.sleep(0)
    assert raw.writes == [] and raw.aborted


async def test_nothing_is_written_once_the_peer_left() -> None:
    t, raw = _coalescing()
    t.write(HEAD)
    raw.closing = True  # the connection was lost before the turn ended
    await asyncio.sleep(0)
    assert raw.writes == []
    assert t.get_extra_info("peername") == ("127.0.0.1", 1)
    assert t.get_write_buffer_size() == 7  # anything else: the transport's own


def test_the_gateway_serves_http_with_the_coalescing_protocol() -> None:
    pytest.importorskip("httptools")
    config = uvicorn_config(GatewaySettings(), "127.0.0.1", 0)
    assert config.http is CoalescingHttpToolsProtocol


def _data_segments_in(sock: socket.socket) -> int:
    """``tcpi_data_segs_in`` of the socket's ``TCP_INFO`` (Linux 4.6 and later)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < 156:
        pytest.skip("TCP_INFO without data_segs_in")
    return int.from_bytes(info[152:156], "little")


async def test_a_reply_reaches_the_client_in_one_segment(gateway: Any) -> None:
    """Head and body in one TCP segment: the client's kernel counts one data segment in."""
    if not hasattr(socket, "TCP_INFO"):
        pytest.skip("no TCP_INFO on this platform")
    host, _, port = gateway.url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.endswith(b"}"):
            chunk = await asyncio.to_thread(sock.recv, 65536)
            assert chunk, reply
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 "), reply
        assert _data_segments_in(sock) == 1, reply
