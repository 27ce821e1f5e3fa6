"""The SSE decoder (`llmesh.services.transport.sse`) against a plain reading of the WHATWG
event-stream rules: any bytes, cut into chunks anywhere (empty chunks too), decode to the
events the rules give for the whole stream, and the decoder never raises (it has no error:
whatever is not a field it knows is skipped, as the standard says).
"""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from llmesh.services.transport.sse import SSEDecoder, SSEEvent

_BOM = b"\xef\xbb\xbf"
_LINE_END = re.compile(rb"\r\n|\r|\n")


def reference(stream: bytes) -> list[SSEEvent]:
    """The events of a whole stream, read line by line as the standard writes it."""
    if stream.startswith(_BOM):
        stream = stream[len(_BOM) :]
    lines = _LINE_END.split(stream)
    lines.pop()  # the unterminated rest: an event not ended by a blank line is dropped
    out: list[SSEEvent] = []
    event: bytes | None = None
    data: bytes | None = None
    for line in lines:
        if not line:
            if data is not None:
                out.append((event, data))
            event, data = None, None
            continue
        if line.startswith(b":"):
            continue
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data = value if data is None else data + b"\n" + value
        elif name == b"event":
            event = value or None
    return out


def decode(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    out: list[SSEEvent] = []
    for chunk in chunks:
        out += decoder.feed(chunk)
    return out


def _cut(stream: bytes, cuts: list[int], empties: bool = False) -> list[bytes]:
    """`stream` cut at `cuts` (clamped to its length), with an empty chunk after each piece
    when `empties` (a read may return nothing)."""
    points = sorted(min(c, len(stream)) for c in cuts)
    chunks, start = [], 0
    for point in points:
        chunks.append(stream[start:point])
        if empties:
            chunks.append(b"")
        start = point
    chunks.append(stream[start:])
    return chunks


_FIELDS = st.sampled_from(
    [
        *(b"data: ", b"data:", b"data", b"event: ", b"event:", b"event", b": ", b":"),
        *(b"id: ", b"retry: ", b"dataX: ", b"", b"events: "),
    ]
)
_ENDS = st.sampled_from([b"\n", b"\r\n", b"\r", b"\n\n", b"\r\n\r\n", b"\r\r"])
_VALUES = st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_LINE = st.tuples(_FIELDS, _VALUES, _ENDS).map(b"".join)
_STREAMS = st.tuples(
    st.sampled_from([b"", _BOM, _BOM[:2]]), st.lists(_LINE, max_size=12), _VALUES
).map(lambda t: t[0] + b"".join(t[1]) + t[2])
_NOISE = st.binary(max_size=64) | st.lists(
    st.sampled_from([b"\r", b"\n", b"data", b":", b" ", b"x", b"event", _BOM, b"\xef"]),
    max_size=40,
).map(b"".join)
_CUTS = st.lists(st.integers(min_value=0, max_value=64), max_size=10)


@given(_STREAMS, _CUTS, st.booleans())
@example(b"data: \nevent: x\nevent\n\n", [], False)  # an "event" line without a colon
@example(b"data: a\r\ndata: b\n\n", [8], True)  # CR, an empty read, then LF: one line end
def test_event_streams_decode_the_same_whatever_the_chunking(
    stream: bytes, cuts: list[int], empties: bool
) -> None:
    expected = reference(stream)
    assert decode([stream]) == expected
    assert decode(_cut(stream, cuts, empties)) == expected


@given(_NOISE, _CUTS, st.booleans())
def test_any_bytes_decode_as_the_standard_reads_them(
    stream: bytes, cuts: list[int], empties: bool
) -> None:
    assert decode(_cut(stream, cuts, empties)) == reference(stream)


@given(_STREAMS)
def test_byte_by_byte_is_the_same_as_whole(stream: bytes) -> None:
    assert decode([stream[i : i + 1] for i in range(len(stream))]) == reference(stream)
