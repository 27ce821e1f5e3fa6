"""Prompt-cache simulation: deterministic given the sequence of requests (and the clock).

OpenAI caches automatically: a prompt of at least ``min_tokens`` tokens is remembered at
every message boundary; a later prompt whose prefix up to the end of one of its messages
(never the last) was remembered reads that prefix, rounded down to a multiple of 128, as
``prompt_tokens_details.cached_tokens``. ``prompt_tokens`` includes the cached tokens.

Anthropic caches where asked: each block with ``cache_control`` (on a tool, a system block or
a message content block) marks a breakpoint; the prefix up to a breakpoint counts when it
has at least ``min_tokens`` tokens. The longest remembered breakpoint prefix is read
(``cache_read_input_tokens``); the tokens from there to the last breakpoint are written
(``cache_creation_input_tokens``) and remembered for the breakpoint's ttl (``5m`` or ``1h``);
``input_tokens`` is what remains, excluding both.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llmesh.services.emulator.replies import Unit

OPENAI_BLOCK = 128
"""OpenAI reports cached tokens in multiples of this."""


@dataclass(frozen=True, slots=True)
class AnthropicCacheUsage:
    """How an Anthropic prompt splits between fresh input, cache reads and cache writes."""

    input_tokens: int
    cache_read: int
    cache_creation: int
    creation_5m: int
    creation_1h: int


class PromptCache:
    """Remembered prompt prefixes, by hash, with an expiry time each."""

    def __init__(
        self,
        *,
        ttl_s: float = 300.0,
        long_ttl_s: float = 3600.0,
        min_tokens: int = 1024,
        max_entries: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_s
        self._long_ttl = long_ttl_s
        self._min = min_tokens
        self._max = max_entries
        self._clock = clock
        self._entries: dict[bytes, float] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget every prefix."""
        self._entries.clear()

    def openai(self, units: Iterable[Unit], total: int) -> int:
        """Look up and remember an OpenAI prompt; return its cached tokens."""
        if total < self._min:
            return 0
        now = self._clock()
        bounds = [(key, tokens) for key, tokens, _ in _prefixes(units, boundaries=True)]
        cached = 0
        for key, tokens in reversed(bounds[:-1]):
            if tokens >= self._min and self._alive(key, now):
                cached = tokens // OPENAI_BLOCK * OPENAI_BLOCK
                break
        for key, tokens in bounds:
            if tokens >= self._min:
                self._put(key, now + self._ttl)
        return cached

    def anthropic(self, units: Iterable[Unit], total: int) -> AnthropicCacheUsage:
        """Look up and remember an Anthropic prompt's breakpoints."""
        marks = [m for m in _prefixes(units, boundaries=False) if m[1] >= self._min]
        if not marks:
            return AnthropicCacheUsage(total, 0, 0, 0, 0)
        now = self._clock()
        read = 0
        for key, tokens, ttl in reversed(marks):
            if self._alive(key, now):
                read = tokens
                self._put(key, now + self._lifetime(ttl))
                break
        _, last_tokens, last_ttl = marks[-1]
        write = last_tokens - read
        for key, tokens, ttl in marks:
            if tokens > read:
                self._put(key, now + self._lifetime(ttl))
        long = self._lifetime(last_ttl) == self._long_ttl and self._long_ttl != self._ttl
        return AnthropicCacheUsage(
            input_tokens=total - read - write,
            cache_read=read,
            cache_creation=write,
            creation_5m=0 if long else write,
            creation_1h=write if long else 0,
        )

    def _lifetime(self, ttl: str | None) -> float:
        return self._long_ttl if ttl == "1h" else self._ttl

    def _alive(self, key: bytes, now: float) -> bool:
        expiry = self._entries.get(key)
        if expiry is None:
            return False
        if expiry <= now:
            del self._entries[key]
            return False
        return True

    def _put(self, key: bytes, expiry: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = expiry
        while len(self._entries) > self._max:
            del self._entries[next(iter(self._entries))]


def _prefixes(
    units: Iterable[Unit], *, boundaries: bool
) -> Iterable[tuple[bytes, int, str | None]]:
    """Hash and token count of the prompt prefix at each boundary or cache breakpoint."""
    h = hashlib.blake2b(digest_size=16)
    tokens = 0
    for unit in units:
        h.update(b"\x00%s\x00%d\x00" % (unit.kind.encode(), len(unit.text)))
        h.update(unit.text.encode())
        tokens += unit.tokens
        if unit.boundary if boundaries else unit.cache_ttl is not None:
            yield h.copy().digest(), tokens, unit.cache_ttl
