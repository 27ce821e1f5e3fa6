"""``context_windows``: a prompt over a model's window gets the provider's own error, counted
as the emulator counts prompts (nine pieces + 3 framing + 3 priming = 15 for `USER`), and
one leaving less than the reply's max_tokens gets the error the provider answers then."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from llmesh.services.emulator import EmulatorSettings
from tests.emulator.helpers import MODEL, USER


@pytest.fixture
def settings() -> EmulatorSettings:
    return EmulatorSettings.from_mapping(
        {"host": "127.0.0.1", "port": 0, "context_windows": {"tiny": 14, "snug": 15}}
    )


async def test_openai_answers_context_length_exceeded_over_the_window(
    oai: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": USER}]
        )
    assert info.value.code == "context_length_exceeded"
    assert "maximum context length is 14 tokens" in info.value.message
    assert "resulted in 15 tokens" in info.value.message
    for model in ("snug", MODEL):  # at the window, and without one: answered
        reply = await oai.chat.completions.create(
            model=model, messages=[{"role": "user", "content": USER}]
        )
        assert reply.choices[0].message.content == USER


async def test_anthropic_answers_prompt_is_too_long(ant: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await ant.messages.create(
            model="tiny", max_tokens=10, messages=[{"role": "user", "content": USER}]
        )
    assert "prompt is too long:" in str(info.value) and "> 14 maximum" in str(info.value)


def test_windows_must_be_positive_integers() -> None:
    with pytest.raises(ValueError, match="context_windows"):
        EmulatorSettings.from_mapping({"context_windows": {"m": 0}})
    with pytest.raises(ValueError, match="context_windows"):
        EmulatorSettings.from_mapping({"context_windows": {"m": "8k"}})


async def test_a_prompt_leaving_less_than_max_tokens_is_refused_as_each_provider_does(
    oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    messages: Any = [{"role": "user", "content": USER}]  # 15 tokens: at the snug window
    with pytest.raises(openai.BadRequestError) as info:
        await oai.chat.completions.create(model="snug", messages=messages, max_tokens=5)
    assert info.value.code == "context_length_exceeded"
    assert "However, you requested 20 tokens (15 in the messages, 5 in the completion)" in (
        info.value.message
    )
    with pytest.raises(anthropic.BadRequestError) as refused:
        await ant.messages.create(model="snug", max_tokens=5, messages=messages)
    assert "input length and `max_tokens` exceed context limit: 15 + 5 > 15" in str(refused.value)
    with pytest.raises(anthropic.BadRequestError) as refused:  # over the window by itself
        await ant.messages.create(model="tiny", max_tokens=5, messages=messages)
    assert "prompt is too long: 15 tokens > 14 maximum" in str(refused.value)
