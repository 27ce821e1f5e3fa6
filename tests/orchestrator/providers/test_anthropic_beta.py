"""Per-request Anthropic beta features and caller-placed breakpoints on the wire: both
transports (the SDK adapter and the lean one) send the same ``anthropic-beta`` header and
the same ``cache_control`` blocks; OpenAI receives neither."""

from __future__ import annotations

import dataclasses

from llmesh.services.core.chat import CacheControl, ChatRequest, Message, Role, TextPart, Tool
from tests.support.lean_reference import TEXT, Upstream, both, json_body, upstream

__all__ = ["upstream"]  # the fixture, used by name

BETAS = ("context-1m-2025-08-07", "interleaved-thinking-2025-05-14")


async def test_beta_features_reach_anthropic_on_both_transports(upstream: Upstream) -> None:
    request = dataclasses.replace(TEXT, anthropic_beta=BETAS)
    upstream.seen.clear()
    lean_out, sdk_out = await both("anthropic", upstream.url, request)
    assert lean_out.error is None and sdk_out.error is None
    assert [s.headers.getall("anthropic-beta", []) for s in upstream.seen] == [
        [",".join(BETAS)]
    ] * 2
    upstream.seen.clear()
    await both("openai", upstream.url, request)
    assert [s.headers.getall("anthropic-beta", []) for s in upstream.seen] == [[], []]


async def test_no_beta_header_without_beta_features(upstream: Upstream) -> None:
    upstream.seen.clear()
    await both("anthropic", upstream.url, TEXT)
    assert [s.headers.getall("anthropic-beta", []) for s in upstream.seen] == [[], []]


async def test_caller_breakpoints_reach_anthropic_on_both_transports(upstream: Upstream) -> None:
    long = "word " * 40
    request = ChatRequest(
        (
            Message(Role.SYSTEM, parts=(TextPart(long, CacheControl("1h")),)),
            Message(Role.USER, parts=(TextPart("question", CacheControl()),)),
        ),
        tools=(Tool("lookup", "find", {"type": "object"}, CacheControl("1h")),),
        prompt_cache="off",
    )
    upstream.seen.clear()
    lean_out, sdk_out = await both("anthropic", upstream.url, request)
    assert sdk_out.error is None and lean_out.error is None
    sent, ref = (json_body(s.body) for s in upstream.seen)
    assert sent == ref
    assert sent["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    assert sent["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert sent["tools"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
