"""``/v1/responses`` against the fake orchestrator: what reaches it, streams that break or
are cut short, response storage turned off, and stored responses scoped by API key."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmesh.gateway import GatewaySettings, RunningGateway, start
from llmesh.services.auth import open_key_store
from llmesh.v1 import chat_pb2
from tests.gateway.fakes import FakeMesh

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


@pytest.fixture
def gateway_settings(fake_mesh: FakeMesh) -> GatewaySettings:
    """Storage off, unless a test turns it on."""
    return GatewaySettings(
        orchestrator_address=fake_mesh.address,
        processor_address=fake_mesh.address,
        shutdown_grace=5,
        response_store_url=None,
    )


def _sse(raw: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.splitlines() if line.startswith("data: ")]


async def test_items_become_one_conversation(http: httpx.AsyncClient, fake_mesh: FakeMesh) -> None:
    items: list[Any] = [
        {"role": "developer", "content": "Be terse."},
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "what is this?"},
                {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
                {"type": "input_file", "file_url": "https://example.com/a.pdf"},
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [{"type": "summary_text", "text": "Thinking."}],
            "encrypted_content": "sig-1",
        },
        {
            "type": "reasoning",
            "id": "rs_2",
            "summary": [],
            "encrypted_content": "redacted_thinking:xyz",
        },
        {
            "type": "message",
            "role": "assistant",
            "id": "msg_1",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}],
        },
        {"type": "function_call", "call_id": "c1", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "a cat"},
    ]
    r = await http.post(
        "/v1/responses",
        json={
            "model": "fake/text",
            "input": items,
            "instructions": "Answer.",
            "max_output_tokens": 9,
        },
    )
    assert r.status_code == 200, r.text
    chat = fake_mesh.orchestrator.calls[-1].input
    roles = [m.role for m in chat.messages]
    assert roles == [
        chat_pb2.ROLE_SYSTEM,
        chat_pb2.ROLE_SYSTEM,
        chat_pb2.ROLE_USER,
        chat_pb2.ROLE_ASSISTANT,
        chat_pb2.ROLE_TOOL,
    ]
    assert [m.content for m in chat.messages[:2]] == ["Answer.", "Be terse."]
    user = chat.messages[2]
    assert [p.WhichOneof("kind") for p in user.parts] == ["text", "image", "document"]
    assert user.parts[1].image.media_type == "image/png"
    assert user.parts[2].document.url == "https://example.com/a.pdf"
    turn = chat.messages[3]
    assert turn.content == "Let me look." and turn.tool_calls[0].id == "c1"
    assert [(b.thinking, b.signature, b.redacted_data) for b in turn.thinking] == [
        ("Thinking.", "sig-1", ""),
        ("", "", "xyz"),
    ]
    assert (chat.messages[4].tool_call_id, chat.messages[4].content) == ("c1", "a cat")
    assert chat.max_tokens == 9
    body = r.json()
    assert body["output"][0]["content"][0]["text"] == "Hello, world"
    assert body["usage"]["input_tokens"] == 15 and body["usage"]["output_tokens"] == 5
    assert body["usage"]["input_tokens_details"]["cached_tokens"] == 3
    assert body["usage"]["output_tokens_details"]["reasoning_tokens"] == 1
    assert body["store"] is False


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"input": [{"role": "user", "content": "hi", "extra": 1}]}, "input[0].extra"),
        ({"input": [{"role": "robot", "content": "hi"}]}, "input[0].role"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": "hi", "text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"input": "hi", "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
        ({"input": "hi", "truncation": "auto"}, "truncation"),
        ({"input": [], "model": "fake/text"}, "input"),
        ({"input": "hi", "store": True}, "store"),
        ({"input": "hi", "stream": "yes"}, "stream"),
        ({"input": "hi", "include": ["file_search_call.results"]}, "include[0]"),
        ({"input": "hi", "stream_options": {"obfuscate": True}}, "stream_options.obfuscate"),
        ({"input": "hi", "previous_response_id": "resp_x"}, "previous_response_id"),
    ],
)
async def test_bad_requests_name_the_field(
    http: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    r = await http.post("/v1/responses", json={"model": "fake/text", **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


async def test_storage_off_says_so(http: httpx.AsyncClient) -> None:
    r = await http.post(
        "/v1/responses", json={"model": "fake/text", "input": "hi", "previous_response_id": "r"}
    )
    assert "response storage is off" in r.json()["error"]["message"]
    r = await http.get("/v1/responses/resp_x")
    assert r.status_code == 400 and "response storage is off" in r.json()["error"]["message"]


async def test_length_is_incomplete(openai_client: openai.AsyncOpenAI) -> None:
    whole = await openai_client.responses.create(model="fake/length", input="hi")
    assert whole.status == "incomplete"
    assert whole.incomplete_details is not None
    assert whole.incomplete_details.reason == "max_output_tokens"
    assert whole.output[0].status == "incomplete"  # type: ignore[union-attr]
    stream = await openai_client.responses.create(model="fake/length", input="hi", stream=True)
    events = [e async for e in stream]
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"  # type: ignore[union-attr]


async def test_parallel_calls_stream_as_two_items(openai_client: openai.AsyncOpenAI) -> None:
    async with openai_client.responses.stream(model="fake/tools", input="hi") as stream:
        final = await stream.get_final_response()
    calls = [(o.call_id, o.name, o.arguments) for o in final.output if o.type == "function_call"]
    assert calls == [
        ("call_0", "get_weather", '{"city": "Paris"}'),
        ("call_1", "get_time", '{"tz": "CET"}'),
    ]


@pytest.mark.parametrize(
    ("model", "code"),
    [("fake/cut", "stream_interrupted"), ("fake/no-finish", "stream_interrupted")],
)
async def test_a_broken_stream_ends_with_error_and_failed(
    http: httpx.AsyncClient, openai_client: openai.AsyncOpenAI, model: str, code: str
) -> None:
    r = await http.post("/v1/responses", json={"model": model, "input": "hi", "stream": True})
    events = _sse(r.text)
    assert [e["type"] for e in events[-2:]] == ["error", "response.failed"]
    assert events[-2]["code"] == code
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["code"] == code
    assert not [e for e in events if e["type"] == "response.completed"]
    with pytest.raises(RuntimeError):  # the SDK never sees a finished response
        async with openai_client.responses.stream(model=model, input="hi") as stream:
            await stream.get_final_response()


async def test_an_error_before_the_stream_is_an_http_error(
    openai_client: openai.AsyncOpenAI,
) -> None:
    with pytest.raises(openai.RateLimitError):
        await openai_client.responses.create(model="fake/rate-limited", input="hi", stream=True)


@pytest.fixture
async def keyed(
    gateway_settings: GatewaySettings, tmp_path: Path
) -> AsyncIterator[tuple[RunningGateway, str, str]]:
    """A gateway storing responses, with API keys for tenants ``one`` and ``two``."""
    url = f"sqlite:///{tmp_path}/mesh.db"
    keys = await open_key_store(url)
    try:
        one = (await keys.create("one"))[1]
        two = (await keys.create("two"))[1]
    finally:
        await keys.aclose()
    running = await start(replace(gateway_settings, response_store_url=url, key_store_url=url))
    yield running, one, two
    await running.stop()


async def test_stored_responses_are_scoped_by_api_key(
    keyed: tuple[RunningGateway, str, str], fake_mesh: FakeMesh
) -> None:
    running, one, two = keyed

    def client(key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=f"{running.url}/v1", api_key=key, max_retries=0)

    async with (
        client(one) as first,
        client(two) as second,
        client("llm_0123456789ab_" + "x" * 43) as wrong,
    ):
        made = await first.responses.create(model="fake/text", input="hi")
        assert made.store is True
        assert (await first.responses.retrieve(made.id)).output_text == "Hello, world"
        with pytest.raises(openai.NotFoundError):
            await second.responses.retrieve(made.id)
        with pytest.raises(openai.AuthenticationError):
            await wrong.responses.retrieve(made.id)
        follow = await first.responses.create(
            model="fake/text", input="again", previous_response_id=made.id
        )
    assert follow.previous_response_id == made.id
    chat = fake_mesh.orchestrator.calls[-1].input  # the stored turn, then the new input
    assert [(m.role, m.content) for m in chat.messages] == [
        (chat_pb2.ROLE_USER, "hi"),
        (chat_pb2.ROLE_ASSISTANT, "Hello, world"),
        (chat_pb2.ROLE_USER, "again"),
    ]
