"""Per-token log probabilities: asked for on the OpenAI wire, read from its chunks onto the
text deltas, folded into a whole reply, and put on the wire of the RPCs; never cached, and
never asked of Anthropic."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import (
    CallEvent,
    Completed,
    Started,
    TextDelta,
    TokenLogprob,
    TopLogprob,
)
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.aggregate import collect
from llmesh.services.orchestrator.convert import chat_call_from_proto
from llmesh.services.orchestrator.providers import anthropic_wire, openai_wire
from llmesh.services.orchestrator.replies_convert import chat_reply_to_proto, event_to_proto
from llmesh.services.orchestrator.response_cache import cacheable
from llmesh.v1 import chat_pb2

HI = (Message(Role.USER, "hi"),)
RAW = {
    "content": [
        {
            "token": "Hel",
            "logprob": -0.25,
            "bytes": [72, 101, 108],
            "top_logprobs": [
                {"token": "Hel", "logprob": -0.25, "bytes": [72, 101, 108]},
                {"token": "Hi", "logprob": -2.5, "bytes": None},
            ],
        },
        {"token": "lo", "logprob": -0.01, "bytes": [108, 111], "top_logprobs": []},
    ],
    "refusal": None,
}
HEL = TokenLogprob(
    "Hel", -0.25, b"Hel", (TopLogprob("Hel", -0.25, b"Hel"), TopLogprob("Hi", -2.5, b"Hi"))
)
LO = TokenLogprob("lo", -0.01, b"lo")


def test_the_request_asks_for_them() -> None:
    body = openai_wire.to_provider_request("m", ChatRequest(HI, logprobs=True, top_logprobs=5))
    assert (body["logprobs"], body["top_logprobs"]) == (True, 5)
    assert "logprobs" not in openai_wire.to_provider_request("m", ChatRequest(HI))
    assert ChatRequest(HI, logprobs=True).options() == {"logprobs": "logprobs"}
    assert "logprobs" in openai_wire.OPTIONS and "logprobs" not in anthropic_wire.OPTIONS


def test_chunks_and_whole_completions_carry_them_on_the_text() -> None:
    parser = openai_wire.OpenAIStreamParser()
    chunk = {"choices": [{"index": 0, "delta": {"content": "Hello"}, "logprobs": RAW}]}
    assert parser.feed(chunk) == [TextDelta("Hello", (HEL, LO))]
    plain = {"choices": [{"index": 0, "delta": {"content": "x"}, "logprobs": None}]}
    assert parser.feed(plain) == [TextDelta("x")]
    whole = {
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello"},
                "logprobs": RAW,
                "finish_reason": "stop",
            }
        ]
    }
    assert openai_wire.from_completion(whole)[0] == TextDelta("Hello", (HEL, LO))


async def _events(*events: CallEvent) -> AsyncIterator[CallEvent]:
    for event in events:
        yield event


async def test_a_whole_reply_keeps_them_in_order_and_on_the_wire() -> None:
    reply = await collect(
        _events(
            Started("r1", "openai", "m"),
            TextDelta("Hel", (HEL,)),
            TextDelta("lo", (LO,)),
            Completed(FinishReason.STOP, "stop", Usage(1, 2), (), 0.0),
        )
    )
    assert reply.logprobs == (HEL, LO)
    wire = chat_reply_to_proto(reply)
    assert [(t.token, t.logprob, t.bytes) for t in wire.logprobs] == [
        ("Hel", -0.25, b"Hel"),
        ("lo", -0.01, b"lo"),
    ]
    assert [t.token for t in wire.logprobs[0].top_logprobs] == ["Hel", "Hi"]
    delta = event_to_proto(TextDelta("Hel", (HEL,))).text_delta
    assert delta.text == "Hel" and delta.logprobs[0].top_logprobs[1].logprob == -2.5
    assert not event_to_proto(TextDelta("x")).text_delta.logprobs


def test_a_call_asking_for_them_is_never_cached() -> None:
    request = ChatRequest(HI, temperature=0, logprobs=True)
    assert not cacheable(request, opt_in=True, opt_out=False)
    assert cacheable(ChatRequest(HI, temperature=0), opt_in=False, opt_out=False)


def _chat(**fields: object) -> chat_pb2.ChatInput:
    return chat_pb2.ChatInput(
        model="a/m", messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="hi")], **fields
    )


def test_the_input_maps_and_checks_them() -> None:
    request = chat_call_from_proto(_chat(logprobs=True, top_logprobs=20), True).request
    assert (request.logprobs, request.top_logprobs) == (True, 20)
    for bad in (_chat(logprobs=True, top_logprobs=21), _chat(top_logprobs=2)):
        with pytest.raises(LlmeshError) as raised:
            chat_call_from_proto(bad, True)
        assert [v.field for v in raised.value.violations] == ["input.top_logprobs"]
