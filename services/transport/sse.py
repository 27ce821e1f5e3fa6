"""An incremental Server-Sent Events decoder over raw bytes.

Built for the hot path of the lean transport: it splits each received chunk into lines at
the bytes level (no text decoding, no regular expressions), keeps only the unfinished last
line between chunks, and hands back ``(event name, data)`` pairs whose data goes straight
to a JSON parser that reads bytes. It follows the WHATWG event-stream rules that matter for
LLM APIs: LF, CRLF and CR line ends (a CRLF split between two chunks included), ``data:``
lines joined with LF, ``event:`` names, comment lines (``:``), an optional space after the
colon, and a leading byte order mark. ``id:`` and ``retry:`` are ignored (nothing
reconnects), and an event without any ``data:`` line is not dispatched, as the standard
says. An event left unterminated when the body ends is dropped, as by the SDKs' decoders.
"""

from __future__ import annotations

__all__ = ["SSEDecoder", "SSEEvent"]

SSEEvent = tuple[bytes | None, bytes]
"""One dispatched event: its ``event:`` name (None when it has none) and its data."""

_BOM = b"\xef\xbb\xbf"


class SSEDecoder:
    """Feed it the body's chunks in order; each call returns the events they completed."""

    __slots__ = ("_data", "_event", "_fresh", "_skip_lf", "_tail")

    def __init__(self) -> None:
        self._tail = b""
        """The unfinished last line of the bytes seen so far."""
        self._event: bytes | None = None
        self._data: bytes | None = None
        """The data of the event being read; None until a ``data:`` line arrives."""
        self._skip_lf = False
        """The previous chunk ended with CR: an LF opening the next one ends no line."""
        self._fresh = True
        """Nothing fed yet (a byte order mark may open the stream)."""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events completed by `chunk` (often none, one, or a handful)."""
        if (  # the usual read of a paced stream: exactly one whole ``data:`` event
            not self._tail
            and self._data is None
            and self._event is None
            and not self._fresh
            and not self._skip_lf
            and chunk.startswith(b"data: ")
            and chunk.endswith(b"\n\n")
            and chunk.count(b"\n") == 2
            and b"\r" not in chunk
        ):
            return [(None, chunk[6:-2])]
        if self._fresh:
            chunk = self._tail + chunk
            self._tail = b""
            if len(chunk) < len(_BOM) and _BOM.startswith(chunk):
                self._tail = chunk  # too short to tell yet
                return []
            self._fresh = False
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM) :]
        if not chunk:  # nothing to read; an empty chunk must not forget a pending CR
            return []
        if self._skip_lf:
            self._skip_lf = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk.endswith(b"\r")
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._tail:
            chunk = self._tail + chunk
        lines = chunk.split(b"\n")
        self._tail = lines.pop()
        out: list[SSEEvent] = []
        event = self._event
        data = self._data
        for line in lines:
            if not line:  # a blank line dispatches the event
                if data is not None:
                    out.append((event, data))
                    data = None
                event = None
            elif line.startswith(b"data:"):
                value = line[6:] if line.startswith(b"data: ") else line[5:]
                data = value if data is None else data + b"\n" + value
            elif line.startswith(b"event:"):
                event = (line[7:] if line.startswith(b"event: ") else line[6:]) or None
            elif line == b"data":  # a field without a colon has an empty value
                data = b"" if data is None else data + b"\n"
            elif line == b"event":  # an empty name: the event is a plain message again
                event = None
            # anything else is a comment (":" first), id, retry or an unknown field
        self._event = event
        self._data = data
        return out
