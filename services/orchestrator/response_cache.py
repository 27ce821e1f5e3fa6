"""An exact-match cache of whole replies, keyed by a hash of the normalized request.

The key covers who may see the reply and what decides it: the caller's tenant (a reply is
never served across tenants), the caller's model name, fallbacks and cost cap (not the
target a call was routed to, which varies with breakers and load), the messages, tools,
tool choice, sampling parameters, ``max_tokens``, stop sequences and seed. Other metadata,
request ids and prompt-cache options do not change a reply and stay out. Normalization is
canonical JSON (sorted keys) hashed with SHA-256, behind a version prefix that changes
whenever the normalization does.

A hit is replayed with the usage of the call that produced the reply and a cache-hit mark,
at no cost. By default a call is cacheable when it sets temperature 0 (an unset temperature
samples); the caller may opt in at any temperature or opt out. Calls with tools are
cacheable too: a tool call is as deterministic a reply as text. Replies with reasoning are
kept whole: the reasoning text and each thinking block (signature or redacted data
byte-for-byte) are stored and replayed as `ReasoningDelta`s before the answer, so a caller
can send the blocks back on its next turn as if the provider had answered. Reasoning
settings and thinking blocks sent back enter the key only when present, so keys of calls
without them are unchanged.

Embeddings calls are cached too, by default (they are deterministic for a model; a call
whose options opt out of the response cache is not): their keys, behind their own prefix,
cover the tenant, the caller's model name, fallbacks and cost cap, the inputs and the
dimensions (not the encoding: the vectors are stored as packed float32 bytes, whichever way
a caller wants them; see `response_cache_embeddings`). A stored reply keeps the vectors; one
with more floats than the configured cap (``cache.response.max_embedding_floats``) is not
stored, so one large batch cannot crowd the cache, which counts entries, not bytes.

Replies live in a bounded in-memory LRU with a TTL per entry by default, or in Redis (orjson
values, Redis expiry) when a URL is configured, so that replicas share them. The cache is
an optimization: a Redis failure reads as a miss and skips the store, never failing a call.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from llmesh.services.common.policy_settings import ResponseCacheConfig
from llmesh.services.core.chat import (
    ChatRequest,
    ContentPart,
    DocumentPart,
    ImagePart,
    Message,
    TextPart,
)
from llmesh.services.orchestrator.response_cache_embeddings import (
    EMBEDDING_KEY_VERSION,
    embedding_cache_key,
)
from llmesh.services.orchestrator.response_cache_replies import (
    CachedReply,
    CachedToolCall,
    order_json,
    record_reply,
    replay,
)

__all__ = [
    "EMBEDDING_KEY_VERSION",
    "KEY_VERSION",
    "CachedReply",
    "CachedToolCall",
    "ResponseCache",
    "cache_key",
    "cacheable",
    "embedding_cache_key",
    "record_reply",
    "replay",
]

KEY_VERSION = "rc2"
"""Prefix of every key; bump it when the normalization or the stored shape changes."""

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# Keys


def _normalized(
    tenant: str,
    model: str,
    fallbacks: Sequence[str],
    request: ChatRequest,
    max_cost_usd: float | None,
) -> dict[str, Any]:
    """Who may see a call's reply and the parts of the call that decide it, as JSON values.

    A response format, penalties, logit bias and service tier enter only when set, so keys
    of plain calls stay what they were.
    """
    out: dict[str, Any] = {
        "tenant": tenant,
        "model": model,
        "fallbacks": list(fallbacks),
        "max_cost_usd": max_cost_usd,
        "messages": [_message(m) for m in request.messages],
        "tools": [
            {"name": t.name, "description": t.description, "parameters": dict(t.parameters)}
            for t in request.tools
        ],
        "tool_choice": [request.tool_choice.value, request.tool_choice_name],
        "temperature": None if request.temperature is None else float(request.temperature),
        "top_p": None if request.top_p is None else float(request.top_p),
        "max_tokens": request.max_tokens,
        "stop": list(request.stop),
        "seed": request.seed,
    }
    if request.reasoning_effort.value:
        out["reasoning_effort"] = request.reasoning_effort.value
    if request.thinking_budget_tokens is not None:
        out["thinking_budget_tokens"] = request.thinking_budget_tokens
    fmt = request.response_format
    if fmt is not None:
        out["response_format"] = [fmt.type.value, fmt.name, dict(fmt.schema), fmt.strict]
    if request.parallel_tool_calls is not None:
        out["parallel_tool_calls"] = request.parallel_tool_calls
    if request.options():
        penalties = [request.presence_penalty, request.frequency_penalty]
        out["sampling"] = [*penalties, dict(request.logit_bias), request.service_tier.value]
    if request.anthropic_beta:  # a beta feature may change the reply
        out["anthropic_beta"] = sorted(request.anthropic_beta)
    return out


def _message(m: Message) -> dict[str, Any]:
    out: dict[str, Any] = {
        "role": m.role.value,
        "content": m.content,
        "tool_calls": [[c.id, c.name, c.arguments] for c in m.tool_calls],
        "tool_call_id": m.tool_call_id,
        "name": m.name,
    }
    if m.thinking:
        out["thinking"] = [[b.thinking, b.signature, b.redacted_data] for b in m.thinking]
    if m.parts:
        out["parts"] = [_part(p) for p in m.parts]
    if m.is_error:
        out["is_error"] = True
    if m.order:
        out["order"] = order_json(m.order)
    return out


def _part(p: ContentPart) -> list[Any]:
    """A content part in the key: its kind, fields and the sha256 of its bytes."""
    if isinstance(p, TextPart):
        return ["text", p.text]
    if isinstance(p, ImagePart):
        return ["image", p.url, _digest(p.data), p.media_type, p.detail]
    if isinstance(p, DocumentPart):
        return ["document", _digest(p.data), p.media_type, p.title, p.url]
    return ["input_audio", _digest(p.data), p.format]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest() if data else ""


def cache_key(
    model: str,
    fallbacks: Sequence[str],
    request: ChatRequest,
    *,
    tenant: str,
    max_cost_usd: float | None = None,
) -> str:
    """``rc2:<sha256 hex>`` of the normalized call; `model` is the caller's model name.

    `tenant` is required: replies are stored per tenant, so one tenant can never be served
    what was generated for another. `max_cost_usd` decides which targets may answer.
    """
    data = orjson.dumps(
        _normalized(tenant, model, fallbacks, request, max_cost_usd),
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    return f"{KEY_VERSION}:{hashlib.sha256(data).hexdigest()}"


def cacheable(request: ChatRequest, *, opt_in: bool, opt_out: bool) -> bool:
    """True when the reply may be served from and stored in the cache.

    Opting out wins; opting in allows any temperature; otherwise only temperature 0 (an
    unset temperature means the provider's default, which samples). A stored reply keeps
    no log probabilities, so a call asking for them is never cached.
    """
    if opt_out or request.logprobs:
        return False
    return opt_in or request.temperature == 0


# ---------------------------------------------------------------------------------------
# Storage


class ResponseCache:
    """Stored replies by key: an in-memory LRU with per-entry TTL, or Redis when configured.

    In memory, every operation is O(1) and at most `max_entries` replies are kept (the least
    recently used goes first); an expired entry is dropped when next looked up or evicted.
    In Redis, keys are ``<namespace>:<key>`` and expire by Redis itself.
    """

    def __init__(
        self,
        *,
        max_entries: int = ResponseCacheConfig.max_entries,
        default_ttl: float = ResponseCacheConfig.ttl,
        redis_url: str | None = None,
        namespace: str = "llmesh:rc",
        redis_timeout: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if not default_ttl > 0:
            raise ValueError("default_ttl must be positive")
        self._max = max_entries
        self._ttl = default_ttl
        self._namespace = namespace
        self._clock = clock
        self._entries: collections.OrderedDict[str, tuple[float, CachedReply]] = (
            collections.OrderedDict()
        )
        self._redis: aioredis.Redis | None = None
        if redis_url is not None:  # no I/O yet: the client connects on first use
            self._redis = aioredis.Redis.from_url(
                redis_url,
                socket_timeout=redis_timeout,
                socket_connect_timeout=redis_timeout,
            )

    def __len__(self) -> int:
        """Replies held in memory (expired ones included until dropped); 0 with Redis."""
        return len(self._entries)

    async def get(self, key: str) -> CachedReply | None:
        """The live reply stored under `key`, or None."""
        if self._redis is not None:
            try:
                data = await self._redis.get(f"{self._namespace}:{key}")
            except RedisError as exc:
                _log.warning("response cache read failed: %s", type(exc).__name__)
                return None
            if data is None:
                return None
            try:
                return CachedReply.from_bytes(data)
            except ValueError:
                return None  # written by another version: a miss
        entry = self._entries.get(key)
        if entry is None:
            return None
        expiry, reply = entry
        if expiry <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return reply

    async def put(self, key: str, reply: CachedReply, ttl: float | None = None) -> None:
        """Store `reply` under `key` for `ttl` seconds (the default TTL when None).

        A TTL that is not positive stores nothing.
        """
        ttl = self._ttl if ttl is None else ttl
        if not ttl > 0:
            return
        if self._redis is not None:
            try:
                await self._redis.set(
                    f"{self._namespace}:{key}", reply.to_bytes(), px=max(1, round(ttl * 1000))
                )
            except RedisError as exc:
                _log.warning("response cache write failed: %s", type(exc).__name__)
            return
        self._entries[key] = (self._clock() + ttl, reply)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def aclose(self) -> None:
        """Close the Redis connection pool, if any."""
        if self._redis is not None:
            await self._redis.aclose()
