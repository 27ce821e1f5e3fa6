"""A request's optional features (penalties, logit bias, service tier) are sent only to
targets whose adapters honour them: the others are skipped, and a call no target can serve
fails INVALID_REQUEST naming the fields (OpenAI's ``unsupported_parameter``)."""

from __future__ import annotations

import pytest

from llmesh.services.common.errors import OPENAI_CODE, LlmeshError, Reason
from llmesh.services.core.call import ChatCall
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role, ServiceTier
from llmesh.services.core.events import Completed, Finish, TextDelta
from llmesh.services.core.trail import Outcome, Trail
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.providers import anthropic_wire, openai_wire
from tests.orchestrator.scripted import Scripted, engine

OK = [TextDelta("hi"), Finish(FinishReason.STOP, "stop", Usage(3, 1))]
HI = (Message(Role.USER, "hello"),)


def call(request: ChatRequest, fallbacks: tuple[str, ...] = ()) -> ChatCall:
    return ChatCall("a/m", request, fallbacks)


def test_a_request_names_the_features_it_asks_for() -> None:
    assert ChatRequest(HI).options() == {}
    request = ChatRequest(
        HI,
        presence_penalty=0.5,
        frequency_penalty=0.0,
        logit_bias={"1": 2},
        service_tier=ServiceTier.FLEX,
    )
    assert request.options() == {
        "presence_penalty": "presence_penalty",
        "frequency_penalty": "frequency_penalty",
        "logit_bias": "logit_bias",
        "service_tier:flex": "service_tier",
    }


def test_each_api_declares_what_it_honours() -> None:
    asked = ChatRequest(
        HI,
        presence_penalty=1,
        frequency_penalty=1,
        logit_bias={"1": 1},
        service_tier=ServiceTier.SCALE,
    ).options()
    assert set(asked) <= openai_wire.OPTIONS
    assert {"service_tier:auto", "service_tier:default"} == anthropic_wire.OPTIONS


async def test_targets_that_cannot_honour_a_field_are_skipped_and_recorded() -> None:
    a = Scripted("a", OK)  # honours nothing optional, like Anthropic for a penalty
    b = Scripted("b", OK, options=openai_wire.OPTIONS)
    events = [
        e async for e in engine(a, b).stream(call(ChatRequest(HI, presence_penalty=1.0), ("b/n",)))
    ]
    done = events[-1]
    assert isinstance(done, Completed)
    assert [(r.target.name, r.outcome, r.reason) for r in done.attempts] == [
        ("a/m", Outcome.SKIPPED, Reason.INVALID_REQUEST),
        ("b/n", Outcome.SUCCEEDED, None),
    ]
    assert a.calls == [] and b.calls[0].presence_penalty == 1.0


async def test_a_call_no_target_can_serve_fails_naming_the_fields() -> None:
    a = Scripted("a", OK, options=anthropic_wire.OPTIONS)
    request = ChatRequest(HI, logit_bias={"5": -100}, service_tier=ServiceTier.PRIORITY)
    trail = Trail(started=0.0)
    with pytest.raises(LlmeshError) as raised:
        async for _ in engine(a).stream(call(request), trail=trail):
            pass
    err = raised.value
    assert err.reason is Reason.INVALID_REQUEST
    assert [v.field for v in err.violations] == ["logit_bias", "service_tier"]
    assert err.metadata[OPENAI_CODE] == "unsupported_parameter"
    assert "a/m" in err.message
    assert a.calls == []
    assert [r.outcome for r in trail.attempts] == [Outcome.SKIPPED]


async def test_a_tier_the_target_honours_goes_through() -> None:
    a = Scripted("a", OK, options=anthropic_wire.OPTIONS)
    request = ChatRequest(HI, service_tier=ServiceTier.DEFAULT)
    events = [e async for e in engine(a).stream(call(request))]
    assert isinstance(events[-1], Completed)
    assert a.calls[0].service_tier is ServiceTier.DEFAULT
