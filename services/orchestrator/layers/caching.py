"""The response cache layer: a hit is replayed as a stream, at no cost; a finished reply
is stored.

Chat calls the caller allows to be cached (temperature 0, or an explicit opt-in; never
with an opt-out) and embeddings calls (unless opted out) touch the cache; every other call
passes straight through. An embeddings reply with more floats than the cap is not stored.
Keys are per tenant, so one tenant is never served what was generated for another. A hit
is recorded in the ledger (its tokens, no cost) when its terminal event is yielded: a
caller that has its reply may close the stream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from llmesh.services.common.policy_settings import ResponseCacheConfig
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.embeddings import EmbeddingRequest
from llmesh.services.core.events import CallEvent, Completed
from llmesh.services.core.handler import Handler
from llmesh.services.orchestrator.accounting import Accounting
from llmesh.services.orchestrator.response_cache import (
    ResponseCache,
    cache_key,
    cacheable,
    embedding_cache_key,
    record_reply,
    replay,
)

__all__ = ["Cached"]


class Cached:
    """Serves and stores replies of cacheable calls."""

    def __init__(
        self,
        inner: Handler,
        cache: ResponseCache,
        accounting: Accounting,
        *,
        default_ttl: float,
        max_embedding_floats: int = ResponseCacheConfig.max_embedding_floats,
    ) -> None:
        self._inner = inner
        self._cache = cache
        self._accounting = accounting
        self._ttl = default_ttl
        self._max_floats = max_embedding_floats

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events, from the cache when it holds the reply."""
        c = call.call
        request = c.request
        if isinstance(request, EmbeddingRequest):
            if c.response_cache is False:
                return self._inner.stream(call)
            key = embedding_cache_key(
                c.model, c.fallbacks, request, tenant=c.caller.tenant, max_cost_usd=c.max_cost_usd
            )
            return self._cached(call, key)
        if (
            not isinstance(request, ChatRequest)
            or c.template is not None  # rendered (and its version picked) further in
            or not cacheable(
                request, opt_in=c.response_cache is True, opt_out=c.response_cache is False
            )
        ):
            return self._inner.stream(call)
        key = cache_key(
            c.model, c.fallbacks, request, tenant=c.caller.tenant, max_cost_usd=c.max_cost_usd
        )
        return self._cached(call, key)

    async def _cached(self, call: RoutedCall[Any], key: str) -> AsyncGenerator[CallEvent, None]:
        wall = time.time()
        hit = await self._cache.get(key)
        if hit is not None:
            for event in replay(hit, call.request_id):
                if isinstance(event, Completed):
                    event = replace(event, cost_usd=0.0)
                    self._accounting.record_hit(call, wall, hit)
                yield event
            return
        collected: list[CallEvent] = []
        finished = False
        try:
            async with aclosing(self._inner.stream(call)) as events:
                async for event in events:
                    collected.append(event)
                    if isinstance(event, Completed):
                        finished = True
                    yield event
        finally:
            reply = record_reply(collected) if finished else None
            if reply is not None and reply.floats <= self._max_floats:
                await self._cache.put(key, reply, call.call.response_cache_ttl or self._ttl)
