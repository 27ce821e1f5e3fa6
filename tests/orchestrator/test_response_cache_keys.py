"""The exact-match response cache's keys (what enters them and what does not) and which calls
it takes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from llmesh.services.core.call import ChatCall
from llmesh.services.core.chat import (
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    ReasoningEffort,
    Role,
    ServiceTier,
    TextPart,
    ThinkingBlock,
    Tool,
    ToolCall,
    ToolChoiceMode,
)
from llmesh.services.core.embeddings import (
    EmbeddingEncoding,
    EmbeddingRequest,
)
from llmesh.services.orchestrator.response_cache import (
    cache_key,
    cacheable,
    embedding_cache_key,
)

WEATHER = Tool("get_weather", "Weather in a city", {"type": "object", "properties": {}})


def _request(**kwargs: Any) -> ChatRequest:
    messages = (Message(Role.SYSTEM, "be brief"), Message(Role.USER, "hello"))
    return ChatRequest(messages, temperature=0.0, **kwargs)


def _key(model: str, fallbacks: Any, request: ChatRequest, **kwargs: Any) -> str:
    kwargs.setdefault("tenant", "acme")
    return cache_key(model, fallbacks, request, **kwargs)


# -- keys ----------------------------------------------------------------------------------


def test_key_is_stable_and_versioned() -> None:
    key = _key("fast", ["slow"], _request())
    assert key == _key("fast", ("slow",), _request())
    # pinned: entries stored by earlier releases keep being found
    assert key == "rc2:8d0413be9952412543a0ac09f422747f8c45504d3014343b14eb5fd4d6b0cf57"
    prefix, digest = key.split(":")
    assert prefix == "rc2" and len(digest) == 64
    int(digest, 16)


def test_key_ignores_what_does_not_change_the_reply() -> None:
    """Metadata and request ids live on the call, not in the key."""
    request = _request()
    a = ChatCall("fast", request, metadata={"user": "a", "request_id": "r1"})
    b = ChatCall("fast", request, metadata={"user": "b"})
    assert _key(a.model, a.fallbacks, a.request) == _key(b.model, b.fallbacks, b.request)
    off = replace(request, prompt_cache="off", prompt_cache_ttl="1h")
    assert _key("fast", (), off) == _key("fast", (), request)
    # int and float temperatures normalize alike
    assert _key("fast", (), replace(request, temperature=0)) == _key("fast", (), request)


def test_key_changes_with_the_parts() -> None:
    """Two prompts that differ only in an image's or a document's bytes are not one entry."""

    def with_parts(*parts: Any) -> ChatRequest:
        return ChatRequest((Message(Role.USER, parts=parts),), temperature=0)

    keys = {
        _key("fast", (), with_parts(TextPart("what is it"))),
        _key(
            "fast",
            (),
            with_parts(TextPart("what is it"), ImagePart(data=b"a", media_type="image/png")),
        ),
        _key(
            "fast",
            (),
            with_parts(TextPart("what is it"), ImagePart(data=b"b", media_type="image/png")),
        ),
        _key("fast", (), with_parts(TextPart("what is it"), ImagePart(url="https://x/a.png"))),
        _key("fast", (), with_parts(TextPart("what is it"), DocumentPart(b"%PDF-a"))),
        _key("fast", (), with_parts(TextPart("what is it"), DocumentPart(b"%PDF-b"))),
    }
    assert len(keys) == 6


def test_key_separates_tenants() -> None:
    """A reply generated for one tenant is never served to another."""
    request = _request()
    acme = cache_key("fast", (), request, tenant="acme")
    assert cache_key("fast", (), request, tenant="globex") != acme
    assert cache_key("fast", (), request, tenant="acme") == acme


def test_key_changes_with_the_cost_cap() -> None:
    """A cost cap decides which targets may answer, so it decides the reply."""
    request = _request()
    assert _key("fast", (), request, max_cost_usd=0.01) != _key("fast", (), request)


def test_tool_schema_key_order_does_not_matter() -> None:
    one = Tool("t", parameters={"type": "object", "properties": {"a": {}, "b": {}}})
    two = Tool("t", parameters={"properties": {"b": {}, "a": {}}, "type": "object"})
    assert _key("m", (), _request(tools=(one,))) == _key("m", (), _request(tools=(two,)))


@pytest.mark.parametrize(
    ("model", "fallbacks", "change"),
    [
        ("other", (), {}),
        ("fast", ("slow",), {}),
        ("fast", (), {"temperature": 0.7}),
        ("fast", (), {"top_p": 0.9}),
        ("fast", (), {"max_tokens": 10}),
        ("fast", (), {"stop": ("\n",)}),
        ("fast", (), {"seed": 7}),
        ("fast", (), {"tools": (WEATHER,)}),
        ("fast", (), {"tools": (WEATHER,), "tool_choice": ToolChoiceMode.REQUIRED}),
        (
            "fast",
            (),
            {"tools": (WEATHER,), "tool_choice": ToolChoiceMode.TOOL, "tool_choice_name": "x"},
        ),
        ("fast", (), {"messages": (Message(Role.USER, "hello"),)}),
        ("fast", (), {"messages": (Message(Role.USER, "hello", name="ann"),)}),
        ("fast", (), {"messages": (Message(Role.SYSTEM, "be brief"), Message(Role.USER, "hi"))}),
    ],
)
def test_key_changes_with_what_changes_the_reply(
    model: str, fallbacks: tuple[str, ...], change: dict[str, Any]
) -> None:
    base = _key("fast", (), _request())
    assert _key(model, fallbacks, replace(_request(), **change)) != base


def test_key_distinguishes_tool_calls_and_results() -> None:
    call = ToolCall("c1", "get_weather", '{"city":"Oslo"}')
    turns = (
        Message(Role.USER, "weather?"),
        Message(Role.ASSISTANT, tool_calls=(call,)),
        Message(Role.TOOL, "sunny", tool_call_id="c1"),
    )
    base = _key("m", (), ChatRequest(turns))
    rainy = (*turns[:2], Message(Role.TOOL, "rain", tool_call_id="c1"))
    assert _key("m", (), ChatRequest(rainy)) != base
    bergen = replace(call, arguments='{"city":"Bergen"}')
    other = (turns[0], Message(Role.ASSISTANT, tool_calls=(bergen,)), turns[2])
    assert _key("m", (), ChatRequest(other)) != base


# -- what is cacheable ---------------------------------------------------------------------


def test_cacheable_rules() -> None:
    zero = _request()
    warm = replace(zero, temperature=0.7)
    unset = replace(zero, temperature=None)
    assert cacheable(zero, opt_in=False, opt_out=False)
    assert not cacheable(warm, opt_in=False, opt_out=False)
    assert not cacheable(unset, opt_in=False, opt_out=False)  # the provider default samples
    assert cacheable(warm, opt_in=True, opt_out=False)
    assert cacheable(unset, opt_in=True, opt_out=False)
    assert not cacheable(zero, opt_in=False, opt_out=True)
    assert not cacheable(zero, opt_in=True, opt_out=True)  # opting out wins
    assert cacheable(replace(zero, tools=(WEATHER,)), opt_in=False, opt_out=False)


def test_key_changes_with_reasoning_and_thinking_sent_back() -> None:
    base = _key("m", [], _request())
    assert _key("m", [], _request(thinking_budget_tokens=1024)) != base
    assert _key("m", [], _request(reasoning_effort=ReasoningEffort.HIGH)) != base
    said = Message(Role.ASSISTANT, "yes", thinking=(ThinkingBlock("hm", "sig"),))
    other = Message(Role.ASSISTANT, "yes", thinking=(ThinkingBlock("hm", "sig2"),))
    plain = Message(Role.ASSISTANT, "yes")
    keys = {
        _key("m", [], ChatRequest((Message(Role.USER, "q"), m), temperature=0.0))
        for m in (said, other, plain)
    }
    assert len(keys) == 3


def test_embedding_keys_cover_what_decides_the_vectors() -> None:
    base = EmbeddingRequest(("a", "b"))

    def key(request: EmbeddingRequest = base, **kwargs: Any) -> str:
        args: dict[str, Any] = {"model": "m", "fallbacks": (), "tenant": "t", **kwargs}
        return embedding_cache_key(args.pop("model"), args.pop("fallbacks"), request, **args)

    assert key() == key() and key().startswith("re2:")
    variants = {
        key(),
        key(model="other"),
        key(fallbacks=("f",)),
        key(tenant="u"),
        key(max_cost_usd=0.01),
        key(EmbeddingRequest(("a",))),
        key(EmbeddingRequest(("b", "a"))),
        key(EmbeddingRequest(("a", "b"), 256)),
    }
    assert len(variants) == 8
    # the vectors are the same however they are returned and whoever asks: one entry serves all
    assert key(EmbeddingRequest(("a", "b"), encoding=EmbeddingEncoding.BASE64)) == key()
    assert key(EmbeddingRequest(("a", "b"), user="someone")) == key()


def test_penalties_bias_and_tier_enter_the_key_only_when_set() -> None:
    plain = ChatRequest((Message(Role.USER, "hi"),), temperature=0)
    base = cache_key("fast", (), plain, tenant="t")
    variants = [
        replace(plain, presence_penalty=0.5),
        replace(plain, frequency_penalty=0.5),
        replace(plain, logit_bias={"1": 5}),
        replace(plain, logit_bias={"1": 6}),
        replace(plain, service_tier=ServiceTier.FLEX),
    ]
    keys = {cache_key("fast", (), v, tenant="t") for v in variants}
    assert len(keys) == len(variants) and base not in keys
    assert cache_key("fast", (), replace(plain), tenant="t") == base
