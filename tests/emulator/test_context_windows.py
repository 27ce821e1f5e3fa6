"""``context_windows``: a prompt over a model's window gets the provider's own error, counted
as the emulator counts prompts (nine pieces + 3 framing + 3 priming = 15 for `USER`)."""

from __future__ import annotations

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
