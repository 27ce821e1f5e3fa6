"""The SSE decoder: whole streams, byte by byte, and split at every point."""

from __future__ import annotations

import pytest

from llmesh.services.transport.sse import SSEDecoder


def _decode(chunks: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    decoder = SSEDecoder()
    out: list[tuple[bytes | None, bytes]] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out


SSE_CASES = [
    (b"data: {}\n\n", [(None, b"{}")]),
    (b'event: ping\ndata: {"a": 1}\n\n', [(b"ping", b'{"a": 1}')]),
    (b"data:x\r\n\r\ndata: y\r\rdata: z\n\n", [(None, b"x"), (None, b"y"), (None, b"z")]),
    (b"data: a\ndata: b\n\n", [(None, b"a\nb")]),
    (b": keep-alive\nid: 7\nretry: 10\ndata: x\n\n", [(None, b"x")]),
    (b"event: lonely\n\ndata: x\n\n", [(None, b"x")]),  # no data: not dispatched
    (b"\xef\xbb\xbfdata: bom\n\n", [(None, b"bom")]),
    (b"data\n\ndata:\n\n", [(None, b""), (None, b"")]),
    (b"data:  two spaces\n\n", [(None, b" two spaces")]),
    (b"data: [DONE]\n\ndata: unterminated", [(None, b"[DONE]")]),
    (b"event:\ndata: x\n\n", [(None, b"x")]),
    (b"dataX: no\nevents: no\ndata: y\n\n", [(None, b"y")]),
]


@pytest.mark.parametrize(("raw", "expected"), SSE_CASES)
def test_sse_decoder_whole_and_byte_by_byte(
    raw: bytes, expected: list[tuple[bytes | None, bytes]]
) -> None:
    assert _decode([raw]) == expected
    assert _decode([raw[i : i + 1] for i in range(len(raw))]) == expected
    for cut in range(len(raw)):
        assert _decode([raw[:cut], raw[cut:]]) == expected


def test_sse_decoder_one_whole_event_per_read_after_the_first() -> None:
    """The shortcut for a read holding exactly one ``data:`` event, and what it must not take."""
    one = b'data: {"a": 1}\n\n'
    assert _decode([b": open\n\n", one, one]) == [(None, b'{"a": 1}')] * 2
    assert _decode([b": open\n\n", b"data: a\n", b"data: b\n\n"]) == [(None, b"a\nb")]
    assert _decode([b": open\n\n", b"event: x\n", b"data: y\n\n"]) == [(b"x", b"y")]
    assert _decode([b": open\n\n", b"data: a\r", b"\ndata: b\n\n"]) == [(None, b"a\nb")]
    assert _decode([b": open\n\n", b"data: a\r\n\r\n"]) == [(None, b"a")]
    assert _decode([b": open\n\n", b"data: a\n\ndata: b\n\n"]) == [(None, b"a"), (None, b"b")]
    assert _decode([b": open\n\n", b"data: [DONE]\n\n"]) == [(None, b"[DONE]")]


def test_sse_decoder_crlf_split_between_chunks_ends_one_line() -> None:
    assert _decode([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [(None, b"a\nb")]


def test_sse_decoder_bom_only_at_the_start() -> None:
    assert _decode([b"\xef", b"\xbb", b"\xbfdata: a\n\n"]) == [(None, b"a")]
    assert _decode([b"\xef\xbb\xbf"]) == []
    # later, the same bytes open an unknown field, which is ignored
    assert _decode([b"data: a\n", b"\xef\xbb\xbfdata: b\n\n"]) == [(None, b"a")]
    assert _decode([b"da", b"ta: a\n\n"]) == [(None, b"a")]
