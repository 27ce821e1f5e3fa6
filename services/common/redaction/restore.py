"""Putting pseudonymized values back into a reply streamed in pieces.

A placeholder (``<EMAIL_1>``) may arrive split across deltas (``<EMA`` then ``IL_1>``): the
`Restorer` holds back a tail that may still become a placeholder until it completes (then
replaced) or cannot (then released as it is). Text without ``<`` passes through untouched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

__all__ = ["PLACEHOLDER", "Restorer", "json_escaped"]

PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_\d+>")
"""What a placeholder looks like: ``<EMAIL_1>``."""


def json_escaped(values: Mapping[str, str]) -> dict[str, str]:
    """`values` with each value escaped for the inside of a JSON string (tool arguments)."""
    return {k: json.dumps(v, ensure_ascii=False)[1:-1] for k, v in values.items()}


class Restorer:
    """Restores placeholders (placeholder -> value) in a stream of text pieces."""

    __slots__ = ("_held", "_longest", "_prefixes", "_values")

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        self._longest = max((len(p) for p in self._values), default=0)
        self._held = ""
        self._prefixes: frozenset[str] | None = None
        """The placeholders' proper prefixes, made when a piece first holds ``<``."""

    def feed(self, text: str) -> str:
        """The text that can be released now, placeholders restored; a possible start of a
        placeholder at the end is held back for the next piece."""
        held = self._held
        if not held:
            if "<" not in text:
                return text
            buf = text
        else:
            buf = held + text
        cut = self._hold_point(buf)
        if cut == len(buf):
            self._held = ""
            return self.replace(buf)
        self._held = buf[cut:]
        return self.replace(buf[:cut])

    def flush(self) -> str:
        """What is still held (the stream ended), restored."""
        held, self._held = self._held, ""
        return self.replace(held)

    def replace(self, text: str) -> str:
        """`text` with its complete placeholders restored."""
        if "<" not in text:
            return text
        values = self._values
        return PLACEHOLDER.sub(lambda m: values.get(m.group(), m.group()), text)

    def _hold_point(self, buf: str) -> int:
        """Where a possible unfinished placeholder starts at the end of `buf` (or its end)."""
        size = len(buf)
        start = buf.rfind("<", size - self._longest if size > self._longest else 0)
        if start < 0:
            return size
        prefixes = self._prefixes
        if prefixes is None:
            prefixes = self._prefixes = frozenset(
                p[:i] for p in self._values for i in range(1, len(p))
            )
        tail = buf[start:]
        return size if tail in self._values or tail not in prefixes else start
