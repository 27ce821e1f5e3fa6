"""How a Messages reply ends, through the official SDK against the running mesh: the stop
sequence that matched is the one the provider named, whole and streamed, and null when the
provider does not say (OpenAI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from tests.support.mesh import Mesh

CLAUDE = "anthropic/claude-sonnet-4-6"
GPT = "openai/gpt-4o-mini"
FOX: list[Any] = [{"role": "user", "content": "the quick brown fox jumps over the lazy dog"}]


@pytest.fixture
async def client(mesh: Mesh) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=mesh.gateway_url, api_key="unused", max_retries=0, timeout=20
    ) as c:
        yield c


async def test_the_matched_stop_sequence_of_several(client: anthropic.AsyncAnthropic) -> None:
    whole = await client.messages.create(
        model=CLAUDE, max_tokens=100, messages=FOX, stop_sequences=["lazy", " fox"]
    )
    assert whole.content[0].text == "the quick brown"  # type: ignore[union-attr]
    assert (whole.stop_reason, whole.stop_sequence) == ("stop_sequence", " fox")
    async with client.messages.stream(
        model=CLAUDE, max_tokens=100, messages=FOX, stop_sequences=[" over", "zebra"]
    ) as stream:
        final = await stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", " over")


async def test_no_stop_sequence_when_none_matched(client: anthropic.AsyncAnthropic) -> None:
    whole = await client.messages.create(
        model=CLAUDE, max_tokens=100, messages=FOX, stop_sequences=["zebra"]
    )
    assert (whole.stop_reason, whole.stop_sequence) == ("end_turn", None)


@pytest.mark.parametrize("stream", [False, True])
async def test_an_openai_model_names_no_stop_sequence(
    client: anthropic.AsyncAnthropic, stream: bool
) -> None:
    if stream:
        async with client.messages.stream(
            model=GPT, max_tokens=100, messages=FOX, stop_sequences=[" fox"]
        ) as events:
            reply = await events.get_final_message()
    else:
        reply = await client.messages.create(
            model=GPT, max_tokens=100, messages=FOX, stop_sequences=[" fox"]
        )
    assert reply.stop_sequence is None
