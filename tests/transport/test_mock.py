"""`MockTransport`: requests reach the handler as sent, replies come back as recorded."""

from __future__ import annotations

import pytest

from llmesh.services.transport import (
    MockRequest,
    MockResponse,
    MockTransport,
    Transport,
    render_headers,
)


async def _send(transport: Transport, body: bytes = b'{"a": 1}') -> MockResponse:
    reply = await transport.request(
        "POST",
        "/chat",
        render_headers({"Content-Type": "application/json", "x-k": " v "}),
        body,
        timeout=3.0,
        connect_timeout=1.0,
    )
    assert isinstance(reply, MockResponse)
    return reply


async def test_the_handler_sees_the_request_as_sent() -> None:
    seen: list[MockRequest] = []

    def handler(request: MockRequest) -> MockResponse:
        seen.append(request)
        return MockResponse(204)

    transport = MockTransport(handler, base_url="http://up.test/v1/")
    reply = await _send(transport)
    assert reply.status == 204
    (request,) = seen
    assert transport.requests == seen
    assert request.method == "POST"
    assert request.url == "http://up.test/v1/chat"
    assert request.headers == {"content-type": "application/json", "x-k": "v"}
    assert request.json() == {"a": 1}
    assert (request.timeout, request.connect_timeout) == (3.0, 1.0)


async def test_an_async_handler_and_a_body_in_pieces() -> None:
    async def handler(request: MockRequest) -> MockResponse:
        return MockResponse(200, {"Retry-After": "2"}, [b"one", b"", b"two"])

    reply = await _send(MockTransport(handler))
    assert reply.headers == {"retry-after": "2"}
    assert [await reply.read_chunk() for _ in range(3)] == [b"one", b"two", b""]
    assert reply.at_eof
    reply.release()
    assert reply.released and not reply.closed


async def test_read_returns_the_whole_body() -> None:
    reply = await _send(MockTransport(lambda r: MockResponse(429, body=[b"ab", b"cd"])))
    assert not reply.at_eof
    assert await reply.read() == b"abcd"
    assert reply.at_eof


async def test_an_error_after_the_pieces_is_a_cut_stream() -> None:
    reset = ConnectionResetError("reset by peer")
    reply = await _send(MockTransport(lambda r: MockResponse(200, body=[b"x"], error=reset)))
    assert await reply.read_chunk() == b"x"
    assert not reply.at_eof
    with pytest.raises(ConnectionResetError):
        await reply.read_chunk()


async def test_a_handler_that_raises_fails_the_request() -> None:
    def refuse(request: MockRequest) -> MockResponse:
        raise ConnectionRefusedError("refused")

    transport = MockTransport(refuse)
    with pytest.raises(ConnectionRefusedError):
        await _send(transport)
    assert len(transport.requests) == 1


async def test_a_closed_reply_cannot_be_read_further() -> None:
    reply = await _send(MockTransport(lambda r: MockResponse(200, body=[b"a", b"b"])))
    assert await reply.read_chunk() == b"a"
    reply.close()
    assert reply.closed and not reply.released
    with pytest.raises(ConnectionError):
        await reply.read_chunk()


async def test_a_response_is_handed_out_once() -> None:
    once = MockResponse(200)
    transport = MockTransport(lambda r: once)
    await _send(transport)
    with pytest.raises(RuntimeError, match="read once"):
        await _send(transport)


async def test_aclose_is_counted_and_the_transport_stays_usable() -> None:
    transport = MockTransport(lambda r: MockResponse(200, body=b"ok"))
    await transport.aclose()
    assert transport.closes == 1
    assert await (await _send(transport)).read() == b"ok"
