"""Reasoning in the emulator: Anthropic extended thinking (signed blocks, checked when sent
back) and OpenAI reasoning models (reasoning tokens, ``reasoning_content`` deltas)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest

from llmesh.services.emulator.thinking import sign
from tests.emulator.helpers import MODEL, USER
from tests.emulator.test_anthropic_api import events, user

THINKING: dict[str, Any] = {"type": "enabled", "budget_tokens": 1024}


async def test_non_stream_thinking_block_comes_first(ant: anthropic.AsyncAnthropic) -> None:
    plain = await ant.messages.create(model=MODEL, max_tokens=2048, messages=user())
    message = await ant.messages.create(
        model=MODEL, max_tokens=2048, messages=user(), thinking=THINKING
    )
    assert [b.type for b in message.content] == ["thinking", "text"]
    block = message.content[0]
    assert block.type == "thinking" and block.thinking
    assert block.signature == sign(block.thinking)
    assert message.content[1].type == "text" and message.content[1].text == USER
    assert message.usage.output_tokens > plain.usage.output_tokens  # thinking is billed output


async def test_stream_thinking_deltas_then_signature_then_text(http: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "max_tokens": 2048, "messages": user(), "stream": True}
    got = await events(http, {**body, "thinking": THINKING})
    starts = [d["content_block"]["type"] for n, d in got if n == "content_block_start"]
    assert starts == ["thinking", "text"]
    deltas = [d["delta"] for n, d in got if n == "content_block_delta"]
    kinds = [d["type"] for d in deltas]
    first_text = kinds.index("text_delta")
    assert set(kinds[: first_text - 1]) == {"thinking_delta"}
    assert kinds[first_text - 1] == "signature_delta"
    thought = "".join(d["thinking"] for d in deltas if d["type"] == "thinking_delta")
    assert deltas[first_text - 1]["signature"] == sign(thought)
    texts = [d for n, d in got if n == "content_block_delta" and d["delta"]["type"] == "text_delta"]
    assert {d["index"] for d in texts} == {1}


def _history(thinking: str, signature: str) -> list[dict[str, Any]]:
    block = {"type": "thinking", "thinking": thinking, "signature": signature}
    return [
        *user(),
        {"role": "assistant", "content": [block, {"type": "text", "text": "ok"}]},
        *user("again"),
    ]


async def test_thinking_sent_back_is_verified(ant: anthropic.AsyncAnthropic) -> None:
    good = _history("Hm.", sign("Hm."))
    reply = await ant.messages.create(
        model=MODEL, max_tokens=2048, messages=good, thinking=THINKING
    )
    assert reply.content[-1].type == "text"
    with pytest.raises(anthropic.BadRequestError) as info:
        await ant.messages.create(
            model=MODEL, max_tokens=2048, messages=_history("Hm.", sign("Hm!")), thinking=THINKING
        )
    body = info.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "invalid_request_error"
    assert "signature" in body["error"]["message"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"max_tokens": 1024}, "max_tokens"),  # must exceed the budget
        ({"thinking": {"type": "enabled", "budget_tokens": 10}}, "budget_tokens"),
        ({"temperature": 0.2}, "temperature"),
    ],
)
async def test_thinking_constraints(
    ant: anthropic.AsyncAnthropic, extra: dict[str, Any], words: str
) -> None:
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 2048, "messages": user()}
    body.update({"thinking": THINKING, **extra})
    sampling = {k: body.pop(k) for k in ("temperature",) if k in body}  # not an SDK argument
    with pytest.raises(anthropic.BadRequestError) as info:
        await ant.messages.create(**body, extra_body=sampling or None)
    assert words in str(info.value)


async def test_openai_reasoning_models_count_reasoning_tokens(oai: openai.AsyncOpenAI) -> None:
    msgs: Any = [{"role": "user", "content": USER}]
    plain = await oai.chat.completions.create(model="gpt-4o-mini", messages=msgs)
    hidden = await oai.chat.completions.create(model="o4-mini", messages=msgs)
    assert plain.usage and plain.usage.completion_tokens_details
    assert hidden.usage and hidden.usage.completion_tokens_details
    assert plain.usage.completion_tokens_details.reasoning_tokens == 0
    reasoning = hidden.usage.completion_tokens_details.reasoning_tokens
    assert reasoning and hidden.usage.completion_tokens == plain.usage.completion_tokens + reasoning
    assert "reasoning_content" not in (hidden.choices[0].message.model_extra or {})


async def test_compatible_reasoning_models_stream_reasoning_content(
    oai: openai.AsyncOpenAI,
) -> None:
    msgs: Any = [{"role": "user", "content": USER}]
    stream = await oai.chat.completions.create(
        model="deepseek-reasoner", messages=msgs, stream=True
    )
    deltas = [c.choices[0].delta async for c in stream if c.choices]
    reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    content = "".join(d.content or "" for d in deltas)
    assert reasoning and content == USER
    whole = await oai.chat.completions.create(model="deepseek-reasoner", messages=msgs)
    assert (whole.choices[0].message.model_extra or {})["reasoning_content"] == reasoning
