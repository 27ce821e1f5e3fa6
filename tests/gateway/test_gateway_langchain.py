"""A client framework through the whole path: LangChain's ``ChatOpenAI`` against the gateway,
the orchestrator and the emulator, offline.

Structured output comes back as a validated Pydantic object, and a ``bind_tools`` loop runs a
tool call, sends the result back as a ``ToolMessage`` and ends on a text answer. Nothing here
counts tokens on the client (``ChatOpenAI`` would load tiktoken's files for that), and
tracing is switched off, so no call leaves the machine.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import NoReturn

import openai
import pydantic
import pytest
import tiktoken
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from tests.support.mesh import Mesh

MODEL = "openai/gpt-4o-mini"


class Forecast(pydantic.BaseModel):
    """A weather forecast for a city."""

    city: str
    days: int = pydantic.Field(ge=0)
    warm: bool


@tool
def get_weather(city: str, days: int) -> str:
    """The weather in `city` for the next `days` days."""
    return f"sunny in {city} for {days} days"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """LangSmith tracing off whatever the environment says, and tiktoken's encodings (which
    it downloads on first use) out of reach: a test that needs either fails instead."""
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_API_KEY"):
        monkeypatch.delenv(name, raising=False)

    def no_encoding(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("tiktoken would fetch its encoding files")

    monkeypatch.setattr(tiktoken, "get_encoding", no_encoding)
    monkeypatch.setattr(tiktoken, "encoding_for_model", no_encoding)
    yield


@pytest.fixture
async def chat(mesh: Mesh) -> AsyncIterator[ChatOpenAI]:
    """``ChatOpenAI`` on the gateway, on an HTTP client of this test's own: by default it
    shares one cached client per process, whose connections outlive each test's event loop."""
    async with openai.DefaultAsyncHttpxClient() as http:
        yield ChatOpenAI(
            base_url=f"{mesh.gateway_url}/v1",
            api_key=pydantic.SecretStr("unused"),
            model=MODEL,
            max_retries=0,
            timeout=10,
            http_async_client=http,
        )


@pytest.mark.parametrize("method", ["json_schema", None])
async def test_structured_output_is_a_validated_pydantic_object(
    chat: ChatOpenAI, method: str | None
) -> None:
    structured = (
        chat.with_structured_output(Forecast)
        if method is None
        else chat.with_structured_output(Forecast, method=method)  # type: ignore[arg-type]
    )
    result = await structured.ainvoke("Forecast for Oslo")
    assert isinstance(result, Forecast)
    # the emulator's instance of the schema: strings echo the user text, numbers are their floor
    assert result == Forecast(city="Forecast for Oslo", days=0, warm=False)


async def test_structured_output_with_raw_keeps_the_message(chat: ChatOpenAI) -> None:
    structured = chat.with_structured_output(Forecast, method="json_schema", include_raw=True)
    result = await structured.ainvoke("Oslo")
    assert isinstance(result, dict) and result["parsing_error"] is None
    assert isinstance(result["parsed"], Forecast)
    raw = result["raw"]
    assert isinstance(raw, AIMessage) and json.loads(str(raw.content))["city"] == "Oslo"


async def test_bind_tools_loop_runs_the_tool_and_ends_on_text(chat: ChatOpenAI) -> None:
    bound = chat.bind_tools([get_weather])
    messages: list[BaseMessage] = [HumanMessage("What is the weather? Use get_weather.")]
    turns = 0
    while True:
        turns += 1
        assert turns <= 3, "the loop did not end"
        reply = await bound.ainvoke(messages)
        assert isinstance(reply, AIMessage)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            assert call["name"] == "get_weather"
            # arguments valid against the tool's schema, or invoking the tool would raise
            get_weather.args_schema.model_validate(call["args"])  # type: ignore[union-attr]
            messages.append(await get_weather.ainvoke(call))
    assert turns == 2
    tool_message = messages[2]
    assert isinstance(tool_message, ToolMessage)
    assert tool_message.tool_call_id == messages[1].tool_calls[0]["id"]  # type: ignore[attr-defined]
    assert reply.content == f"Tool result: {tool_message.content}"
    assert reply.response_metadata["finish_reason"] == "stop"


async def test_bind_tools_with_a_named_tool_choice_forces_the_call(chat: ChatOpenAI) -> None:
    bound = chat.bind_tools([get_weather], tool_choice="get_weather")
    reply = await bound.ainvoke("Tell me about Oslo")
    assert isinstance(reply, AIMessage)
    assert [c["name"] for c in reply.tool_calls] == ["get_weather"]
    assert reply.tool_calls[0]["args"] == {"city": "Tell me about Oslo", "days": 0}
    assert reply.response_metadata["finish_reason"] == "tool_calls"


async def test_function_calling_works_with_parallel_tool_calls_honoured(chat: ChatOpenAI) -> None:
    # method="function_calling" always sends parallel_tool_calls=false
    structured = chat.with_structured_output(Forecast, method="function_calling")
    result = await structured.ainvoke("Forecast for Oslo")
    assert result == Forecast(city="Forecast for Oslo", days=0, warm=False)
