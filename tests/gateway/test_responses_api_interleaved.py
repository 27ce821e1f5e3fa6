"""Interleaved thinking over two turns of ``/v1/responses`` with the official ``openai`` SDK:
the emulator answers thinking, tool_use, thinking, text (beta header
``interleaved-thinking-2025-05-14``, which the route allows, sent as an extra header), the
output items follow that order (whole and streamed), and the next turn, sent back as items
or through ``previous_response_id``, reaches the emulator in the same order (it refuses any
other)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from llmesh.services.emulator.thinking import INTERLEAVED_BETA
from tests.gateway.conftest import INTERLEAVED_ROUTE as ROUTE
from tests.support.mesh import Mesh

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
ASK: list[Any] = [{"role": "user", "content": "call get_weather for Paris"}]
INTERLEAVED = ["reasoning", "function_call", "reasoning", "message"]


@pytest.fixture
async def client(interleaved_mesh: Mesh) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=f"{interleaved_mesh.gateway_url}/v1",
        api_key="unused",
        max_retries=0,
        timeout=20,
        default_headers={"anthropic-beta": INTERLEAVED_BETA},
    ) as c:
        yield c


async def _turn(
    client: openai.AsyncOpenAI, stream: bool, **kwargs: Any
) -> openai.types.responses.Response:
    kwargs |= {
        "model": ROUTE,
        "tools": [WEATHER],
        "max_output_tokens": 2048,
        "extra_body": {"thinking_budget_tokens": 1024},
    }
    if not stream:
        return await client.responses.create(**kwargs)
    async with client.responses.stream(**kwargs) as s:
        events = [e async for e in s]
        final = await s.get_final_response()
    added = [e for e in events if e.type == "response.output_item.added"]
    done = [e for e in events if e.type == "response.output_item.done"]
    # each item is announced and closed in its place, one after the other
    assert [e.output_index for e in added] == list(range(len(final.output)))
    assert [e.output_index for e in done] == list(range(len(final.output)))
    assert [e.item.id for e in done] == [o.id for o in final.output]
    return final


def _result(first: openai.types.responses.Response) -> dict[str, Any]:
    (call,) = [o for o in first.output if o.type == "function_call"]
    return {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_two_turns_of_interleaved_thinking(client: openai.AsyncOpenAI, stream: bool) -> None:
    first = await _turn(client, stream, input=ASK)
    assert [o.type for o in first.output] == INTERLEAVED
    assert first.output_text == "Calling get_weather."
    replay = [*ASK, *(o.model_dump(exclude_none=True) for o in first.output), _result(first)]
    # The emulator refuses the turn unless each thinking block is where it was produced.
    second = await _turn(client, stream, input=replay)
    assert second.output_text == "Tool result: sunny"
    regrouped = [*ASK, *(replay[i] for i in (1, 3, 4, 2)), replay[5]]  # the usual order
    with pytest.raises(openai.BadRequestError, match="signature"):
        await _turn(client, stream, input=regrouped)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_stored_turn_keeps_its_order(client: openai.AsyncOpenAI, stream: bool) -> None:
    first = await _turn(client, stream, input=ASK)
    assert [o.type for o in first.output] == INTERLEAVED
    chained = await _turn(client, stream, input=[_result(first)], previous_response_id=first.id)
    assert chained.output_text == "Tool result: sunny"
