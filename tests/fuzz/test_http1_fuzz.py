"""The HTTP/1.1 client's reply parser (`llmesh.services.transport.http1_conn.Connection`, on
httptools) driven byte by byte without a socket: a well-formed reply, cut into reads anywhere,
parses to the same status, headers and body; a reply cut short never looks finished; and any
bytes at all end in a finished reply or one of its documented failures (`HttpProtocolError`,
`UpstreamClosed`), never another exception and never a reply left waiting for more once the
connection is gone (the caller would hang on it).
"""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass, field

from hypothesis import given
from hypothesis import strategies as st

from llmesh.services.transport.http1_conn import (
    Connection,
    HttpProtocolError,
    Response,
    UpstreamClosed,
)


class _Transport:
    """What `Connection` needs of an asyncio transport, recording what it is asked."""

    def __init__(self) -> None:
        self.aborted = False
        self.written = b""

    def write(self, data: bytes) -> None:
        self.written += data

    def abort(self) -> None:
        self.aborted = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


@dataclass
class _Owner:
    """The pool's side of a connection (`http1_conn.Owner`)."""

    loop: asyncio.AbstractEventLoop
    kept: list[Connection] = field(default_factory=list)
    forgotten: list[Connection] = field(default_factory=list)

    def put_back(self, conn: Connection) -> None:
        self.kept.append(conn)

    def forget(self, conn: Connection) -> None:
        self.forgotten.append(conn)


@dataclass
class Outcome:
    """What the caller of one request saw."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: BaseException | None = None
    """The failure the request or the body's read raised."""
    finished: bool = False
    """The body arrived whole (the reply looked complete)."""


async def _exchange(chunks: list[bytes], close: bool) -> Outcome:
    owner = _Owner(asyncio.get_running_loop())
    conn = Connection(owner)
    transport = _Transport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    resp = Response(conn)
    conn.send(b"POST /chat HTTP/1.1\r\n\r\n{}", resp)
    head = conn.head
    assert head is not None
    for chunk in chunks:
        if transport.aborted:  # a closed transport delivers nothing more
            break
        conn.data_received(chunk)  # must never raise: asyncio would only log it
    if close or transport.aborted:
        conn.connection_lost(None)
    out = Outcome()
    if not head.done():
        # Only an open connection may still be waiting for the head: more bytes can come.
        assert not close and not transport.aborted, "the head is awaited on a closed connection"
        return out
    if head.exception() is not None:
        out.error = head.exception()
        return out
    out.status, out.headers = resp.status, dict(resp.headers)
    if not (resp.done or resp.error is not None):
        assert not close and not transport.aborted, "the body is awaited on a closed connection"
        return out
    try:
        out.body = await resp.read()
    except ConnectionError as exc:
        out.error = exc
    out.finished = out.error is None
    resp.release()
    return out


def exchange(chunks: list[bytes], *, close: bool) -> Outcome:
    """Feed `chunks` to a fresh connection as its reply (then close it, with `close`)."""
    with asyncio.Runner() as runner:
        return runner.run(_exchange(chunks, close))


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted(min(c, len(data)) for c in cuts)
    chunks, start = [], 0
    for point in points:
        chunks.append(data[start:point])
        start = point
    chunks.append(data[start:])
    return chunks


# -- well-formed replies -----------------------------------------------------------------

_TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
_VALUE = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)
_RESERVED = {"content-length", "transfer-encoding", "content-encoding", "connection"}


@dataclass(frozen=True)
class Reply:
    """A well-formed reply: its bytes and what they should parse to."""

    wire: bytes
    status: int
    headers: dict[str, str]
    body: bytes
    framed: bool


@st.composite
def replies(draw: st.DrawFn) -> Reply:
    status = draw(st.sampled_from([200, 201, 400, 401, 404, 429, 500, 502, 503, 529]))
    body = draw(st.binary(max_size=300))
    pairs = draw(
        st.lists(st.tuples(_TOKEN.filter(lambda n: n not in _RESERVED), _VALUE), max_size=6)
    )
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    coded = draw(st.booleans())
    payload = gzip.compress(body, mtime=0) if coded else body
    head = [f"HTTP/1.1 {status} Whatever\r\n".encode()]
    interim = draw(
        st.sampled_from(
            [
                b"",
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n",
            ]
        )
    )
    expected: dict[str, str] = {}
    for name, value in pairs:
        head.append(f"{name}: {value}\r\n".encode())
        old = expected.get(name)
        expected[name] = value if old is None else f"{old}, {value}"
    if coded:
        head.append(b"content-encoding: gzip\r\n")
        expected["content-encoding"] = "gzip"
    if framing == "length":
        head.append(b"content-length: %d\r\n" % len(payload))
        expected["content-length"] = str(len(payload))
        rest = payload
    elif framing == "chunked":
        head.append(b"transfer-encoding: chunked\r\n")
        expected["transfer-encoding"] = "chunked"
        sizes = draw(st.lists(st.integers(min_value=1, max_value=64), max_size=10))
        pieces, start = [], 0
        for size in sizes:
            piece = payload[start : start + size]
            if piece:
                ext = draw(st.sampled_from([b"", b";x=1"]))
                pieces.append(b"%x%s\r\n%s\r\n" % (len(piece), ext, piece))
            start += size
        if start < len(payload):
            pieces.append(b"%x\r\n%s\r\n" % (len(payload) - start, payload[start:]))
        rest = b"".join(pieces) + b"0\r\n\r\n"
    else:
        head.append(b"connection: close\r\n")
        expected["connection"] = "close"
        rest = payload
    wire = interim + b"".join(head) + b"\r\n" + rest
    return Reply(wire, status, expected, body, framing != "close")


_CUTS = st.lists(st.integers(min_value=0, max_value=700), max_size=12)


@given(replies(), _CUTS, st.booleans())
def test_a_reply_parses_the_same_whatever_the_reads(
    reply: Reply, cuts: list[int], close: bool
) -> None:
    out = exchange(_cut(reply.wire, cuts), close=close or not reply.framed)
    assert out.error is None
    assert out.finished
    assert (out.status, out.headers, out.body) == (reply.status, reply.headers, reply.body)


@given(replies(), st.data())
def test_a_reply_cut_short_never_looks_finished(reply: Reply, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(reply.wire) - 1))
    out = exchange([reply.wire[:cut]], close=True)
    if reply.framed:
        assert not out.finished
        assert isinstance(out.error, HttpProtocolError | UpstreamClosed)
    elif out.finished:  # a body ended by the connection: a cut one is shorter, never longer
        assert reply.body.startswith(out.body) or out.headers.get("content-encoding")


# -- anything at all ---------------------------------------------------------------------

_NOISE = st.binary(max_size=200) | st.lists(
    st.sampled_from(
        [
            b"HTTP/1.1 200 OK\r\n",
            b"\r\n",
            b"content-length: 3\r\n",
            b"content-length: x\r\n",
            b"transfer-encoding: chunked\r\n",
            b"content-encoding: gzip\r\n",
            b"0\r\n",
            b"5\r\n",
            b"abc",
            b"\x00",
            b"HTTP/1.1 101 Switching\r\nupgrade: h2c\r\n",
            b"HTTP/1.1 103 E\r\n",
            b"HTTP/2 200\r\n",
            b"\x1f\x8b",
            b"zz\r\n",
        ]
    ),
    max_size=16,
).map(b"".join)


@given(_NOISE, _CUTS, st.booleans())
def test_any_bytes_end_in_a_reply_or_a_documented_failure(
    data: bytes, cuts: list[int], close: bool
) -> None:
    out = exchange(_cut(data, cuts), close=close)
    if out.error is not None:
        assert isinstance(out.error, HttpProtocolError | UpstreamClosed), repr(out.error)


@given(replies(), st.data())
def test_a_damaged_reply_ends_in_a_reply_or_a_documented_failure(
    reply: Reply, data: st.DataObject
) -> None:
    wire = bytearray(reply.wire)
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(wire) - 1))
        wire[at] = data.draw(st.integers(min_value=0, max_value=255))
    cuts = data.draw(_CUTS)
    out = exchange(_cut(bytes(wire), cuts), close=True)
    if out.error is not None:
        assert isinstance(out.error, HttpProtocolError | UpstreamClosed), repr(out.error)
