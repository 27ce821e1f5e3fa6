"""Reasoning through /v1: ``reasoning_content`` deltas apart from ``content``, reasoning
tokens in the usage, ``reasoning_effort`` accepted."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.support.mesh import Mesh

HELLO = [{"role": "user", "content": "hello there"}]
THINKING: dict[str, Any] = {"thinking_budget_tokens": 1024}


def _client(mesh: Mesh) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{mesh.gateway_url}/v1", api_key="unused", max_retries=0)


@pytest.mark.parametrize(
    ("model", "extra"),
    [
        ("anthropic/claude-sonnet-4-6", THINKING),  # extended thinking
        ("compat/deepseek-reasoner", {}),  # an OpenAI-compatible server's reasoning_content
    ],
)
async def test_reasoning_streams_apart_from_the_content(
    mesh: Mesh, model: str, extra: dict[str, Any]
) -> None:
    async with _client(mesh) as client:
        stream = await client.chat.completions.create(
            model=model,
            messages=HELLO,
            max_tokens=2048,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=extra,
        )
        chunks = [c async for c in stream]
        whole = await client.chat.completions.create(
            model=model, messages=HELLO, max_tokens=2048, extra_body=extra
        )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = [(d.model_extra or {}).get("reasoning_content") for d in deltas]
    content = [d.content for d in deltas]
    assert any(reasoning)
    assert not [d for d in deltas if d.content and (d.model_extra or {}).get("reasoning_content")]
    first_text = next(i for i, c in enumerate(content) if c)
    assert max(i for i, r in enumerate(reasoning) if r) < first_text  # thinking comes first
    assert "".join(c or "" for c in content) == "hello there"
    message = whole.choices[0].message
    assert message.content == "hello there"
    assert (message.model_extra or {})["reasoning_content"] == "".join(r or "" for r in reasoning)


async def test_reasoning_effort_and_reasoning_tokens(mesh: Mesh) -> None:
    async with _client(mesh) as client:
        whole = await client.chat.completions.create(
            model="openai/o4-mini", messages=HELLO, reasoning_effort="low"
        )
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(
                model="openai/o4-mini",
                messages=HELLO,
                reasoning_effort="extreme",  # type: ignore[arg-type]
            )
    usage = whole.usage
    assert usage is not None and usage.completion_tokens_details is not None
    reasoning = usage.completion_tokens_details.reasoning_tokens
    assert reasoning and 0 < reasoning < usage.completion_tokens
    assert "reasoning_content" not in (whole.choices[0].message.model_extra or {})
    assert info.value.param == "reasoning_effort"
