"""The OpenAI Responses API through the official SDK, against the emulator's Anthropic and
OpenAI models: plain, streamed, function calls over two turns, structured output, reasoning
items carrying Anthropic signatures, stored responses and errors."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh

MODELS = ["anthropic/claude-haiku-4-5", "openai/gpt-4o-mini"]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


def _client(mesh: Mesh, **headers: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=f"{mesh.gateway_url}/v1",
        api_key="unused",
        max_retries=0,
        default_headers=headers or None,
    )


@pytest.mark.parametrize("model", MODELS)
async def test_create_plain(mesh: Mesh, model: str) -> None:
    async with _client(mesh) as client:
        response = await client.responses.create(
            model=model, input="hello there", instructions="Be brief.", metadata={"k": "v"}
        )
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed" and response.model == model
    assert response.output_text == "hello there"
    message = response.output[-1]
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "output_text" and message.content[0].annotations == []
    assert response.usage is not None
    assert response.usage.output_tokens == 2
    assert response.usage.total_tokens == response.usage.input_tokens + 2
    assert response.instructions == "Be brief." and response.metadata == {"k": "v"}


@pytest.mark.parametrize("model", MODELS)
async def test_stream_events_in_order_and_the_final_response(mesh: Mesh, model: str) -> None:
    async with (
        _client(mesh) as client,
        client.responses.stream(model=model, input="hello big world") as stream,
    ):
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "hello big world"
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text == "hello big world" and final.status == "completed"
    assert final.usage is not None and final.usage.output_tokens == 3
    assert final.id == events[0].response.id  # type: ignore[union-attr]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("chained", [True, False], ids=["previous_response_id", "replayed"])
async def test_a_function_call_and_its_output_over_two_turns(
    mesh: Mesh, model: str, chained: bool
) -> None:
    question: list[Any] = [{"role": "user", "content": "get_weather for Paris please"}]
    async with _client(mesh) as client:
        first = await client.responses.create(model=model, input=question, tools=[WEATHER])
        calls = [o for o in first.output if o.type == "function_call"]
        assert len(calls) == 1 and calls[0].name == "get_weather"
        assert "city" in json.loads(calls[0].arguments)
        result = {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"}
        if chained:
            second = await client.responses.create(
                model=model, input=[result], tools=[WEATHER], previous_response_id=first.id
            )
            assert second.previous_response_id == first.id
        else:
            replay = [*question, *(o.model_dump(exclude_none=True) for o in first.output), result]
            second = await client.responses.create(model=model, input=replay, tools=[WEATHER])
    assert second.output_text == "Tool result: sunny"


@pytest.mark.parametrize("model", MODELS)
async def test_streamed_function_call_arguments(mesh: Mesh, model: str) -> None:
    async with (
        _client(mesh) as client,
        client.responses.stream(
            model=model, input="call get_weather now", tools=[WEATHER]
        ) as stream,
    ):
        events = [event async for event in stream]
        final = await stream.get_final_response()
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = [e for e in events if e.type == "response.function_call_arguments.done"]
    call = final.output[-1]
    assert call.type == "function_call" and call.name == "get_weather"
    assert done[0].arguments == deltas == call.arguments
    assert json.loads(call.arguments)["city"]


class City(BaseModel):
    name: str
    population: int


@pytest.mark.parametrize("model", MODELS)
async def test_json_schema_with_parse(mesh: Mesh, model: str) -> None:
    async with _client(mesh) as client:
        parsed = await client.responses.parse(model=model, input="a city", text_format=City)
    assert isinstance(parsed.output_parsed, City)
    assert City.model_validate_json(parsed.output_text) == parsed.output_parsed


THINKING: dict[str, Any] = {"thinking_budget_tokens": 1024}


async def test_a_reasoning_item_round_trips_to_anthropic_with_its_signature(mesh: Mesh) -> None:
    model = "anthropic/claude-sonnet-4-6"
    question: list[Any] = [{"role": "user", "content": "get_weather in Rome"}]
    async with _client(mesh) as client:
        first = await client.responses.create(
            model=model,
            input=question,
            tools=[WEATHER],
            max_output_tokens=2048,
            include=["reasoning.encrypted_content"],
            extra_body=THINKING,
        )
        reasoning = first.output[0]
        assert reasoning.type == "reasoning" and reasoning.summary[0].text
        assert reasoning.encrypted_content  # the thinking block's signature
        call = first.output[-1]
        assert call.type == "function_call"
        result = {"type": "function_call_output", "call_id": call.call_id, "output": "warm"}
        replay = [*question, *(o.model_dump(exclude_none=True) for o in first.output), result]
        second = await client.responses.create(
            model=model, input=replay, tools=[WEATHER], max_output_tokens=2048, extra_body=THINKING
        )
        chained = await client.responses.create(
            model=model,
            input=[result],
            previous_response_id=first.id,
            tools=[WEATHER],
            max_output_tokens=2048,
            extra_body=THINKING,
        )
        replay[1] = {**replay[1], "encrypted_content": "forged"}
        with pytest.raises(openai.BadRequestError):  # the emulator checks signatures
            await client.responses.create(
                model=model,
                input=replay,
                tools=[WEATHER],
                max_output_tokens=2048,
                extra_body=THINKING,
            )
    assert second.output_text == chained.output_text == "Tool result: warm"


async def test_streamed_reasoning_summary_then_text(mesh: Mesh) -> None:
    async with (
        _client(mesh) as client,
        client.responses.stream(
            model="anthropic/claude-sonnet-4-6",
            input="hello there",
            max_output_tokens=2048,
            extra_body=THINKING,
        ) as stream,
    ):
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [e.type for e in events]
    first_text = kinds.index("response.output_text.delta")
    assert kinds.index("response.reasoning_summary_text.delta") < first_text
    summary = "".join(e.delta for e in events if e.type == "response.reasoning_summary_text.delta")
    reasoning = final.output[0]
    assert reasoning.type == "reasoning" and reasoning.summary[0].text == summary
    assert reasoning.encrypted_content and final.output_text == "hello there"


async def test_errors_are_the_sdk_exception_types(mesh: Mesh) -> None:
    async with _client(mesh) as client:
        with pytest.raises(openai.NotFoundError):
            await client.responses.create(model="nope/model", input="hi")
        with pytest.raises(openai.BadRequestError) as unknown:
            await client.responses.create(
                model="emulator/echo", input="hi", extra_body={"frobnicate": 1, "volume": 2}
            )
        with pytest.raises(openai.BadRequestError) as file_id:
            await client.responses.create(
                model="emulator/echo",
                input=[{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}],
            )
        with pytest.raises(openai.BadRequestError) as include:
            await client.responses.create(
                model="emulator/echo", input="hi", include=["message.output_text.logprobs"]
            )
        with pytest.raises(openai.NotFoundError) as previous:
            await client.responses.create(
                model="emulator/echo", input="hi", previous_response_id="resp_missing"
            )
    assert unknown.value.code == "unknown_parameter" and unknown.value.param == "frobnicate"
    assert "volume" in unknown.value.message
    assert file_id.value.param == "input[0].content[0].file_id"
    assert include.value.param == "include[0]"
    assert previous.value.code == "previous_response_not_found"
    assert previous.value.param == "previous_response_id"


async def test_stored_responses_belong_to_their_tenant(mesh: Mesh) -> None:
    async with (
        _client(mesh, **{"x-llmesh-tenant": "alpha"}) as alpha,
        _client(mesh, **{"x-llmesh-tenant": "beta"}) as beta,
    ):
        made = await alpha.responses.create(model="emulator/echo", input="remember me")
        assert made.store is True
        assert (await alpha.responses.retrieve(made.id)).output_text == "remember me"
        with pytest.raises(openai.NotFoundError):
            await beta.responses.retrieve(made.id)
        with pytest.raises(openai.NotFoundError):
            await beta.responses.create(
                model="emulator/echo", input="hi", previous_response_id=made.id
            )
        with pytest.raises(openai.NotFoundError):
            await beta.responses.delete(made.id)
        await alpha.responses.delete(made.id)
        with pytest.raises(openai.NotFoundError):
            await alpha.responses.retrieve(made.id)
        unstored = await alpha.responses.create(
            model="emulator/echo", input="forget me", store=False
        )
        assert unstored.store is False
        with pytest.raises(openai.NotFoundError):
            await alpha.responses.retrieve(unstored.id)


async def test_fallbacks_and_the_ledger_apply(mesh: Mesh) -> None:
    mesh.set_fault("responses-quota", "quota")
    async with _client(mesh) as client:
        raw = await client.responses.with_raw_response.create(
            model="openai/responses-quota",
            input="fall back please",
            user="alice",
            store=False,
            extra_body={"fallbacks": ["emulator/echo"]},
        )
    response = raw.parse()
    assert response.output_text == "fall back please"
    record = await ledger_record(mesh.config.database_url, raw.headers["x-request-id"])  # type: ignore[union-attr]
    assert (record.provider, record.model, record.user) == ("emulator", "echo", "alice")
    assert record.output_tokens == response.usage.output_tokens  # type: ignore[union-attr]
    assert raw.headers["x-llmesh-attempts"]
