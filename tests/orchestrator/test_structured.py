"""The structured-output layer: JSON replies validated before they finish, and repaired."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from llmesh.services.common.config import Config, ProviderConfig
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import ChatCall, RoutedCall
from llmesh.services.core.chat import (
    ChatRequest,
    FinishReason,
    Message,
    ResponseFormat,
    ResponseFormatType,
    Role,
)
from llmesh.services.core.events import (
    CallEvent,
    Completed,
    Finish,
    Started,
    TextDelta,
    ToolCallDelta,
)
from llmesh.services.core.trail import Outcome
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.assembly import assemble
from llmesh.services.orchestrator.engine import Orchestrator
from llmesh.services.orchestrator.layers import Structured
from llmesh.services.orchestrator.structured import reply_error
from tests.orchestrator.scripted import Scripted, Step, engine

SCHEMA = {
    "type": "object",
    "properties": {"n": {"type": "integer"}},
    "required": ["n"],
    "additionalProperties": False,
}


def _reply(*parts: str) -> list[Step]:
    return [*(TextDelta(p) for p in parts), Finish(FinishReason.STOP, "stop", Usage(5, 2))]


GOOD = _reply('{"n"', ": 4}")
BAD = _reply('{"n": "four"}')


def _call(repairs: int = 0, kind: ResponseFormatType = ResponseFormatType.JSON_SCHEMA) -> ChatCall:
    fmt = ResponseFormat(kind, "count", SCHEMA, repair_attempts=repairs)
    request = ChatRequest((Message(Role.USER, "count"),), response_format=fmt)
    return ChatCall("p/m", request)


def _run(*scripts: Sequence[Step]) -> tuple[Scripted, Any]:
    provider = Scripted("p", *scripts)
    eng = engine(provider)
    return provider, eng


async def _events(eng: Any, call: ChatCall, out: list[CallEvent]) -> RoutedCall[Any]:
    routed = eng.route(call)
    async for event in Structured(eng.engine).stream(routed):
        out.append(event)
    return routed


async def test_a_valid_reply_passes_unchanged() -> None:
    provider, eng = _run(GOOD)
    events: list[CallEvent] = []
    await _events(eng, _call(), events)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == '{"n": 4}'
    assert isinstance(events[-1], Completed) and events[-1].reason is FinishReason.STOP
    assert len(provider.calls) == 1


async def test_an_invalid_reply_without_repairs_fails_after_streaming() -> None:
    provider, eng = _run(BAD, GOOD)
    events: list[CallEvent] = []
    with pytest.raises(LlmeshError) as raised:
        await _events(eng, _call(repairs=0), events)
    err = raised.value
    assert err.reason is Reason.SCHEMA_VALIDATION_FAILED
    assert err.metadata["output"] == '{"n": "four"}'
    assert "is not of type 'integer'" in err.metadata["validation_error"]
    assert err.metadata["provider"] == "p" and err.usage == Usage(5, 2)
    # no repair: the deltas reached the caller as they came, and no Completed followed
    assert [type(e) for e in events] == [Started, TextDelta]
    assert len(provider.calls) == 1


async def test_one_repair_sends_the_reply_and_the_error_back_and_succeeds() -> None:
    provider, eng = _run(BAD, GOOD)
    events: list[CallEvent] = []
    routed = await _events(eng, _call(repairs=1), events)
    # the invalid reply was held back: the caller sees only the repaired one
    assert [type(e) for e in events] == [Started, TextDelta, TextDelta, Completed]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == '{"n": 4}'
    done = events[-1]
    assert isinstance(done, Completed) and done.usage == Usage(10, 4)
    assert [a.outcome for a in done.attempts] == [Outcome.SUCCEEDED, Outcome.SUCCEEDED]
    assert len(routed.trail.attempts) == 2
    repair = provider.calls[1].messages
    assert repair[-2] == Message(Role.ASSISTANT, '{"n": "four"}')
    assert repair[-1].role is Role.USER and "is not of type 'integer'" in repair[-1].content


async def test_repairs_running_out_fail_with_the_last_output() -> None:
    provider, eng = _run(BAD, _reply("not json"))
    events: list[CallEvent] = []
    with pytest.raises(LlmeshError) as raised:
        await _events(eng, _call(repairs=1), events)
    assert raised.value.reason is Reason.SCHEMA_VALIDATION_FAILED
    assert raised.value.metadata["output"] == "not json"
    assert raised.value.usage == Usage(10, 4)
    # the last attempt, with no repair left to hold it for, streamed as it came
    assert events[1:] == [TextDelta("not json")] and len(provider.calls) == 2


async def test_tool_call_replies_and_plain_calls_are_not_checked() -> None:
    tool = [ToolCallDelta(0, "c1", "f", "{}"), Finish(FinishReason.TOOL_CALLS, "tool_calls", None)]
    _, eng = _run(tool)
    events: list[CallEvent] = []
    await _events(eng, _call(), events)
    assert isinstance(events[-1], Completed)
    _, eng = _run(_reply("plain text"))
    plain = ChatCall("p/m", ChatRequest((Message(Role.USER, "hi"),)))
    events = [e async for e in Structured(eng.engine).stream(eng.route(plain))]
    assert isinstance(events[-1], Completed)


def test_reply_error_checks_json_objects_and_schemas() -> None:
    obj = ResponseFormat(ResponseFormatType.JSON_OBJECT)
    assert reply_error('{"a": 1}', obj) is None
    assert reply_error("[1]", obj) == "the reply is not a JSON object"
    assert (reply_error("{", obj) or "").startswith("the reply is not valid JSON")
    schema = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "s", SCHEMA)
    assert reply_error(json.dumps({"n": 1}), schema) is None
    assert "Additional properties" in (reply_error('{"n": 1, "x": 2}', schema) or "")
    assert reply_error("anything", ResponseFormat(ResponseFormatType.TEXT)) is None


async def test_assembly_puts_the_layer_on_the_chat_path(tmp_path: Path) -> None:
    config = Config(
        providers={"p": ProviderConfig("p", "openai-compatible", base_url="http://x")},
        database_url=f"sqlite:///{tmp_path}/ledger.db",
    )
    provider = Scripted("p", BAD, GOOD)
    assembly = await assemble(config, Orchestrator({"p": provider}), bind_host="127.0.0.1")
    try:
        with pytest.raises(LlmeshError) as raised:
            async for _ in assembly.path.stream(_call()):
                pass
        events = [e async for e in assembly.path.stream(_call(repairs=1))]
    finally:
        await assembly.aclose()
    assert raised.value.reason is Reason.SCHEMA_VALIDATION_FAILED
    assert isinstance(events[-1], Completed)
