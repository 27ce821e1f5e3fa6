"""Penalties, logit bias and service tier on the emulator, checked as the real APIs check
them, counted in ``/emulator/stats`` (``params``) and, for OpenAI, the tier echoed back."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.emulator.helpers import MODEL, USER

HI: list[Any] = [{"role": "user", "content": USER}]


async def params(http: httpx.AsyncClient) -> dict[str, int]:
    return dict((await http.get("/emulator/stats")).json()["params"])


@pytest.mark.parametrize(
    ("asked", "served"),
    [(None, "default"), ("auto", "default"), ("flex", "flex"), ("priority", "priority")],
)
async def test_openai_reports_the_tier_that_served_the_call(
    oai: openai.AsyncOpenAI, asked: str | None, served: str
) -> None:
    extra = {} if asked is None else {"service_tier": asked}
    whole = await oai.chat.completions.create(model=MODEL, messages=HI, **extra)
    assert whole.service_tier == served
    stream = await oai.chat.completions.create(model=MODEL, messages=HI, stream=True, **extra)
    assert {c.service_tier async for c in stream} == {served}


async def test_openai_counts_the_parameters_it_received(
    oai: openai.AsyncOpenAI, http: httpx.AsyncClient
) -> None:
    await oai.chat.completions.create(
        model=MODEL,
        messages=HI,
        presence_penalty=2,
        frequency_penalty=-2.0,
        logit_bias={str(i): -100 for i in range(300)},
        service_tier="scale",
    )
    await oai.chat.completions.create(model=MODEL, messages=HI, logit_bias={})
    assert await params(http) == {
        "presence_penalty": 1,
        "frequency_penalty": 1,
        "logit_bias": 1,
        "service_tier=scale": 1,
    }
    assert (await http.post("/emulator/reset")).status_code == 200
    assert await params(http) == {}


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [
        ({"presence_penalty": 2.5}, "presence_penalty", "decimal_above_max_value"),
        ({"frequency_penalty": -3}, "frequency_penalty", "integer_below_min_value"),
        ({"frequency_penalty": "high"}, "frequency_penalty", "invalid_type"),
        ({"logit_bias": {"50256": 101}}, "logit_bias.50256", "integer_above_max_value"),
        ({"logit_bias": {"token": 1}}, "logit_bias", "invalid_value"),
        ({"logit_bias": [1]}, "logit_bias", "invalid_type"),
        (
            {"logit_bias": {str(i): 1 for i in range(301)}},
            "logit_bias",
            "object_above_max_properties",
        ),
        ({"service_tier": "turbo"}, "service_tier", "invalid_value"),
    ],
)
async def test_openai_refuses_values_out_of_range(
    oai: openai.AsyncOpenAI, fields: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await oai.chat.completions.create(model=MODEL, messages=HI, extra_body=fields)
    body = raised.value.body
    assert isinstance(body, dict) and (body["param"], body["code"]) == (param, code)


@pytest.mark.parametrize("tier", ["auto", "standard_only"])
async def test_anthropic_takes_its_service_tiers(
    ant: anthropic.AsyncAnthropic, http: httpx.AsyncClient, tier: str
) -> None:
    reply = await ant.messages.create(
        model=MODEL, max_tokens=64, messages=HI, extra_body={"service_tier": tier}
    )
    assert reply.content
    assert await params(http) == {f"service_tier={tier}": 1}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"service_tier": "flex"}, "service_tier: Input should be 'auto' or 'standard_only'"),
        ({"presence_penalty": 0.5}, "presence_penalty: Extra inputs are not permitted"),
        ({"logit_bias": {"1": 1}}, "logit_bias: Extra inputs are not permitted"),
    ],
)
async def test_anthropic_refuses_what_it_has_no_use_for(
    ant: anthropic.AsyncAnthropic, fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        await ant.messages.create(model=MODEL, max_tokens=64, messages=HI, extra_body=fields)
    assert message in str(raised.value)


async def test_openai_logprobs_are_deterministic_and_match_the_stream(
    oai: openai.AsyncOpenAI,
) -> None:
    whole = await oai.chat.completions.create(
        model=MODEL, messages=HI, logprobs=True, top_logprobs=3
    )
    again = await oai.chat.completions.create(
        model=MODEL, messages=HI, logprobs=True, top_logprobs=3
    )
    choice = whole.choices[0]
    assert choice.logprobs is not None and choice.logprobs.content
    content = choice.logprobs.content
    assert "".join(t.token for t in content) == choice.message.content
    for t in content:
        assert t.logprob < 0 and bytes(t.bytes or []) == t.token.encode()
        assert len(t.top_logprobs) == 3 and t.top_logprobs[0].token == t.token
        assert [x.logprob for x in t.top_logprobs] == sorted(
            (x.logprob for x in t.top_logprobs), reverse=True
        )
    assert again.choices[0].logprobs == choice.logprobs
    stream = await oai.chat.completions.create(
        model=MODEL, messages=HI, logprobs=True, top_logprobs=3, stream=True
    )
    streamed = [
        t
        async for c in stream
        if c.choices and c.choices[0].logprobs
        for t in c.choices[0].logprobs.content or []
    ]
    assert streamed == content


async def test_openai_sends_no_logprobs_unless_asked(oai: openai.AsyncOpenAI) -> None:
    whole = await oai.chat.completions.create(model=MODEL, messages=HI)
    assert whole.choices[0].logprobs is None
    bare = await oai.chat.completions.create(model=MODEL, messages=HI, logprobs=True)
    assert bare.choices[0].logprobs is not None
    assert all(t.top_logprobs == [] for t in bare.choices[0].logprobs.content or [])


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"logprobs": True, "top_logprobs": 21}, "integer_above_max_value"),
        ({"top_logprobs": 2}, "invalid_value"),
        ({"logprobs": False, "top_logprobs": 2}, "invalid_value"),
    ],
)
async def test_openai_checks_top_logprobs(
    oai: openai.AsyncOpenAI, fields: dict[str, Any], code: str
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        await oai.chat.completions.create(model=MODEL, messages=HI, extra_body=fields)
    body = raised.value.body
    assert isinstance(body, dict) and (body["param"], body["code"]) == ("top_logprobs", code)


async def test_anthropic_has_no_logprobs(ant: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        await ant.messages.create(
            model=MODEL, max_tokens=64, messages=HI, extra_body={"logprobs": True}
        )
    assert "logprobs: Extra inputs are not permitted" in str(raised.value)
