"""Penalties, logit bias and service tier through the whole mesh (gateway, orchestrator,
emulator), with the official SDK: honoured where the provider can, refused by name where it
cannot, and per-route / unknown-field dropping named in the reply."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from llmesh.services.common.config import RouteConfig
from tests.support.mesh import Mesh

OPENAI = "openai/gpt-4o-mini"
ANTHROPIC = "anthropic/claude-haiku-4-5"
HI = [{"role": "user", "content": "hi"}]
ROUTES = {
    "mixed": RouteConfig("mixed", (ANTHROPIC, OPENAI)),
    "lenient": RouteConfig("lenient", (OPENAI,), drop_params=("verbosity",)),
}


@pytest.fixture(scope="module")
def sampling_mesh() -> Iterator[Mesh]:
    """A mesh of its own (its emulator's counters are this module's), with two routes and
    unknown fields dropped."""
    m = Mesh().start({"routes": ROUTES, "gateway_unknown_fields": "drop"})
    try:
        yield m
    finally:
        m.stop()


def _client(mesh: Mesh) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{mesh.gateway_url}/v1", api_key="unused", max_retries=0)


async def _params(mesh: Mesh) -> dict[str, int]:
    stats = await asyncio.to_thread(mesh.stats)
    return dict(stats["params"])


def _grown(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


@pytest.mark.parametrize("stream", [False, True])
async def test_the_sdk_fields_reach_an_openai_provider(sampling_mesh: Mesh, stream: bool) -> None:
    before = await _params(sampling_mesh)
    async with _client(sampling_mesh) as client:
        reply = await client.chat.completions.create(
            model=OPENAI,
            messages=HI,  # type: ignore[arg-type]
            presence_penalty=0.5,
            frequency_penalty=-1.5,
            logit_bias={"50256": -100, "1": 5},
            service_tier="flex",
            stream=stream,
        )
        if stream:
            chunks = [c async for c in reply]  # type: ignore[union-attr]
            assert chunks[-1].choices[0].finish_reason == "stop"
    assert _grown(before, await _params(sampling_mesh)) == {
        "presence_penalty": 1,
        "frequency_penalty": 1,
        "logit_bias": 1,
        "service_tier=flex": 1,
    }


async def test_no_op_values_are_not_sent(sampling_mesh: Mesh) -> None:
    before = await _params(sampling_mesh)
    async with _client(sampling_mesh) as client:
        await client.chat.completions.create(
            model=ANTHROPIC,
            messages=HI,  # type: ignore[arg-type]
            presence_penalty=0,
            frequency_penalty=0.0,
            logit_bias={},
        )
    assert _grown(before, await _params(sampling_mesh)) == {}


@pytest.mark.parametrize(("tier", "sent"), [("default", "standard_only"), ("auto", "auto")])
async def test_anthropic_gets_its_own_service_tier(
    sampling_mesh: Mesh, tier: str, sent: str
) -> None:
    before = await _params(sampling_mesh)
    async with _client(sampling_mesh) as client:
        reply = await client.chat.completions.create(
            model=ANTHROPIC,
            messages=HI,  # type: ignore[arg-type]
            service_tier=tier,  # type: ignore[arg-type]
        )
    assert reply.choices[0].message.content
    assert _grown(before, await _params(sampling_mesh)) == {f"service_tier={sent}": 1}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("presence_penalty", 1.0),
        ("frequency_penalty", 0.3),
        ("logit_bias", {"42": 10}),
        ("service_tier", "flex"),
        ("service_tier", "priority"),
    ],
)
async def test_a_field_anthropic_cannot_honour_is_refused_by_name(
    sampling_mesh: Mesh, field: str, value: Any
) -> None:
    before = await asyncio.to_thread(sampling_mesh.stats)
    async with _client(sampling_mesh) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(
                model=ANTHROPIC,
                messages=HI,  # type: ignore[arg-type]
                **{field: value},
            )
    error = raised.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == (field, "unsupported_parameter")
    assert ANTHROPIC in error["message"]
    after = await asyncio.to_thread(sampling_mesh.stats)
    assert after["requests"] == before["requests"]  # nothing was sent


async def test_a_route_skips_the_targets_that_cannot_honour_a_field(sampling_mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=sampling_mesh.gateway_url, timeout=10) as http:
        r = await http.post(
            "/v1/chat/completions",
            json={"model": "mixed", "messages": HI, "presence_penalty": 0.7},
        )
    assert r.status_code == 200, r.text
    attempts = json.loads(r.headers["x-llmesh-attempts"])
    assert [(a["target"], a["outcome"]) for a in attempts] == [
        (ANTHROPIC, "skipped"),
        (OPENAI, "succeeded"),
    ]
    assert attempts[0]["reason"] == "INVALID_REQUEST"


async def test_a_route_drops_the_fields_it_lists(sampling_mesh: Mesh) -> None:
    async with httpx.AsyncClient(base_url=sampling_mesh.gateway_url, timeout=10) as http:
        dropped = await http.post(
            "/v1/chat/completions", json={"model": "lenient", "messages": HI, "verbosity": "low"}
        )
        refused = await http.post(
            "/v1/chat/completions", json={"model": OPENAI, "messages": HI, "verbosity": "low"}
        )
    assert dropped.status_code == 200, dropped.text
    assert dropped.headers["x-llmesh-dropped-params"] == "verbosity"
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "verbosity"


async def test_unknown_fields_are_dropped_and_named_when_configured(sampling_mesh: Mesh) -> None:
    async with _client(sampling_mesh) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=OPENAI,
            messages=[{"role": "user", "content": "hi", "x_note": 1}],  # type: ignore[list-item]
            extra_body={"x_vendor_hint": {"a": 1}},
        )
        assert raw.headers["x-llmesh-dropped-params"] == "x_vendor_hint, messages[0].x_note"
        assert raw.parse().choices[0].message.content
        with pytest.raises(openai.BadRequestError) as raised:  # known, unsupported: refused
            await client.chat.completions.create(
                model=OPENAI,
                messages=HI,  # type: ignore[arg-type]
                extra_body={"x_vendor_hint": 1},
                store=True,
            )
    assert isinstance(raised.value.body, dict) and raised.value.body["param"] == "store"


@pytest.mark.parametrize("stream", [False, True])
async def test_logprobs_come_back_in_openais_shape(sampling_mesh: Mesh, stream: bool) -> None:
    async with _client(sampling_mesh) as client:
        reply = await client.chat.completions.create(
            model=OPENAI,
            messages=[{"role": "user", "content": "one two three"}],
            logprobs=True,
            top_logprobs=2,
            stream=stream,
        )
        if stream:
            chunks = [c async for c in reply]  # type: ignore[union-attr]
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            tokens = [
                t
                for c in chunks
                if c.choices and c.choices[0].logprobs
                for t in c.choices[0].logprobs.content or []
            ]
        else:
            text = reply.choices[0].message.content or ""  # type: ignore[union-attr]
            tokens = reply.choices[0].logprobs.content or []  # type: ignore[union-attr]
    assert text == "one two three"
    assert "".join(t.token for t in tokens) == text
    assert all(len(t.top_logprobs) == 2 and t.top_logprobs[0].token == t.token for t in tokens)
    assert all(t.logprob < 0 and bytes(t.bytes or []) == t.token.encode() for t in tokens)


async def test_logprobs_are_refused_by_name_for_anthropic(sampling_mesh: Mesh) -> None:
    async with _client(sampling_mesh) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.chat.completions.create(
                model=ANTHROPIC,
                messages=HI,  # type: ignore[arg-type]
                logprobs=True,
            )
    error = raised.value.body
    assert isinstance(error, dict)
    assert (error["param"], error["code"]) == ("logprobs", "unsupported_parameter")


@pytest.mark.parametrize("model", [OPENAI, ANTHROPIC])
async def test_n_choices_are_n_calls_merged(sampling_mesh: Mesh, model: str) -> None:
    before = (await asyncio.to_thread(sampling_mesh.stats))["requests"]
    async with _client(sampling_mesh) as client:
        one = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "alpha beta"}]
        )
        whole = await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "alpha beta"}], n=3
        )
    assert [c.index for c in whole.choices] == [0, 1, 2]
    assert all(c.message.content == "alpha beta" for c in whole.choices)
    assert all(c.finish_reason == "stop" for c in whole.choices)
    assert whole.usage is not None and one.usage is not None
    assert whole.usage.completion_tokens == 3 * one.usage.completion_tokens
    assert whole.usage.prompt_tokens == 3 * one.usage.prompt_tokens
    after = (await asyncio.to_thread(sampling_mesh.stats))["requests"]
    assert after - before == 4  # one call, then three


async def test_n_streamed_choices_interleave_under_one_id(sampling_mesh: Mesh) -> None:
    async with _client(sampling_mesh) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model=OPENAI,
            messages=[{"role": "user", "content": "one two three"}],
            n=2,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in raw.parse()]
    assert len({c.id for c in chunks}) == 1
    assert raw.headers["x-request-id"] == chunks[0].id.removeprefix("chatcmpl-")
    texts: dict[int, str] = {}
    finishes: dict[int, str | None] = {}
    for c in chunks:
        for choice in c.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert texts == {0: "one two three", 1: "one two three"}
    assert finishes == {0: "stop", 1: "stop"}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 2 * 3


async def test_one_failing_choice_fails_the_reply(sampling_mesh: Mesh) -> None:
    await asyncio.to_thread(sampling_mesh.set_fault, "n-down", "unavailable")
    async with _client(sampling_mesh) as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await client.chat.completions.create(
                model="openai/n-down",
                messages=HI,
                n=2,  # type: ignore[arg-type]
            )
        with pytest.raises(openai.APIStatusError):
            stream = await client.chat.completions.create(
                model="openai/n-down",
                messages=HI,  # type: ignore[arg-type]
                n=2,
                stream=True,
            )
            async for _ in stream:
                pass
    assert raised.value.status_code == 503
