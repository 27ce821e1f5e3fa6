"""An assistant turn's block order (interleaved thinking): recorded from a reply's events,
carried on gRPC, checked when a caller gives it, kept by the response cache, and sent to
Anthropic in that order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import replace

import pytest

from llmesh.services.common.errors import LlmeshError
from llmesh.services.core.blocks import OrderRecorder, order_problem, ordered
from llmesh.services.core.chat import (
    BlockKind,
    BlockRef,
    CacheControl,
    ChatRequest,
    FinishReason,
    Message,
    Role,
    TextPart,
    ThinkingBlock,
    ToolCall,
)
from llmesh.services.core.events import (
    CallEvent,
    Completed,
    ReasoningDelta,
    Started,
    TextDelta,
    ToolCallDelta,
)
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.aggregate import collect
from llmesh.services.orchestrator.convert import chat_call_from_proto
from llmesh.services.orchestrator.providers.anthropic_wire import to_provider_request
from llmesh.services.orchestrator.replies_convert import chat_reply_to_proto
from llmesh.services.orchestrator.response_cache import (
    CachedReply,
    cache_key,
    record_reply,
    replay,
)
from llmesh.v1 import chat_pb2

T, X, C = BlockKind.THINKING, BlockKind.TEXT, BlockKind.TOOL_CALL
FIRST, SECOND = ThinkingBlock("Plan.", "sig1"), ThinkingBlock("Again.", "sig2")
CALL = ToolCall("toolu_1", "get_weather", '{"city":"Paris"}')
# thinking, tool call, thinking, text: what interleaved thinking answers
INTERLEAVED = (BlockRef(T, 0), BlockRef(C, 0), BlockRef(T, 1), BlockRef(X, 0, 8))
TURN = Message(Role.ASSISTANT, "Calling.", (CALL,), thinking=(FIRST, SECOND), order=INTERLEAVED)


def _events() -> list[CallEvent]:
    return [
        Started("req_1", "anthropic", "claude-test"),
        ReasoningDelta("Plan.", 0),
        ReasoningDelta("", 0, signature="sig1"),
        ToolCallDelta(0, id="toolu_1", name="get_weather", arguments_delta='{"city":'),
        ToolCallDelta(0, arguments_delta='"Paris"}'),
        ReasoningDelta("Again.", 1),
        ReasoningDelta("", 1, signature="sig2"),
        TextDelta("Call"),
        TextDelta("ing."),
        Completed(FinishReason.TOOL_CALLS, "tool_use", Usage(10, 5)),
    ]


async def _stream(events: Sequence[CallEvent]) -> AsyncIterator[CallEvent]:
    for event in events:
        yield event


def test_ordered_walks_the_blocks_in_order() -> None:
    kinds = [(kind, k, block) for kind, k, block in ordered(TURN)]
    assert kinds == [
        (T, 0, FIRST),
        (C, 0, CALL),
        (T, 1, SECOND),
        (X, 0, TextPart("Calling.")),
    ]
    usual = replace(TURN, order=())
    assert [kind for kind, _, _ in ordered(usual)] == [T, T, X, C]


def test_text_runs_are_cut_from_the_content() -> None:
    refs = (BlockRef(X, 0, 3), BlockRef(C, 0), BlockRef(X, 0, 4))
    m = Message(Role.ASSISTANT, "Hi.Bye.", (CALL,), cache_control=CacheControl("1h"), order=refs)
    assert order_problem(m) is None
    texts = [b for kind, _, b in ordered(m) if kind is X]
    assert texts == [TextPart("Hi."), TextPart("Bye.", CacheControl("1h"))]


@pytest.mark.parametrize(
    ("order", "problem"),
    [
        ((BlockRef(T, 0), BlockRef(C, 0), BlockRef(X, 0, 8)), "thinking block 1"),
        ((*INTERLEAVED, BlockRef(C, 0)), "tool_call block 0 exactly once"),
        ((*INTERLEAVED, BlockRef(C, 3)), "tool_call block 3, which"),
        ((BlockRef(T, 0), BlockRef(C, 0), BlockRef(T, 1), BlockRef(X, 0, 5)), "add up to 5"),
    ],
)
def test_a_bad_order_is_named(order: tuple[BlockRef, ...], problem: str) -> None:
    found = order_problem(replace(TURN, order=order))
    assert found is not None and problem in found


def test_the_recorder_keeps_only_an_unusual_order() -> None:
    usual = OrderRecorder()
    usual.block(T, 0)
    usual.text(4)
    usual.text(3)
    usual.block(C, 0)
    usual.block(C, 1)
    assert usual.order([0], [0, 1]) == ()
    mixed = OrderRecorder()
    for kind, index in ((T, 5), (C, 2), (T, 7)):
        mixed.block(kind, index)
    mixed.text(8)
    assert mixed.order([5, 7], [2]) == INTERLEAVED  # stream indexes become list positions
    mixed.clear()
    assert mixed.order([], []) == ()


async def test_a_whole_reply_keeps_the_order_on_grpc() -> None:
    reply = await collect(_stream(_events()))
    assert reply.order == INTERLEAVED
    message = chat_reply_to_proto(reply).message
    assert message.content == "Calling." and len(message.thinking) == 2
    assert [(r.kind, r.index, r.text_length) for r in message.block_order] == [
        (chat_pb2.BLOCK_KIND_THINKING, 0, 0),
        (chat_pb2.BLOCK_KIND_TOOL_CALL, 0, 0),
        (chat_pb2.BLOCK_KIND_THINKING, 1, 0),
        (chat_pb2.BLOCK_KIND_TEXT, 0, 8),
    ]
    # ... and it comes back in as the same domain message
    inp = chat_pb2.ChatInput(model="anthropic/claude-test", messages=[message])
    inp.messages.insert(0, chat_pb2.Message(role=chat_pb2.ROLE_USER, content="go"))
    back = chat_call_from_proto(inp, True).request.messages[1]
    assert back.order == INTERLEAVED


def test_an_order_from_a_caller_is_checked() -> None:
    inp = chat_pb2.ChatInput(model="anthropic/claude-test")
    inp.messages.add(role=chat_pb2.ROLE_USER, content="go")
    bad = inp.messages.add(role=chat_pb2.ROLE_ASSISTANT, content="ok")
    bad.block_order.add(kind=chat_pb2.BLOCK_KIND_TOOL_CALL, index=0)
    bad.block_order.add(kind=chat_pb2.BLOCK_KIND_UNSPECIFIED)
    with pytest.raises(LlmeshError) as info:
        chat_call_from_proto(inp, True)
    fields = {v.field for v in info.value.violations}
    assert fields == {"input.messages[1].block_order", "input.messages[1].block_order[1].kind"}


def test_anthropic_receives_the_blocks_in_order() -> None:
    request = ChatRequest((Message(Role.USER, "go"), TURN))
    content = to_provider_request("claude-test", request)["messages"][1]["content"]
    assert [b["type"] for b in content] == ["thinking", "tool_use", "thinking", "text"]
    assert content[2] == {"type": "thinking", "thinking": "Again.", "signature": "sig2"}
    assert content[3] == {"type": "text", "text": "Calling."}
    usual = ChatRequest((Message(Role.USER, "go"), replace(TURN, order=())))
    regrouped = to_provider_request("claude-test", usual)["messages"][1]["content"]
    assert [b["type"] for b in regrouped] == ["thinking", "thinking", "text", "tool_use"]


def test_the_response_cache_keeps_the_order() -> None:
    reply = record_reply(_events())
    assert reply is not None and reply.order == INTERLEAVED
    assert CachedReply.from_bytes(reply.to_bytes()) == reply
    out = replay(reply, "req_2", chunk_chars=3)
    kinds = [type(e).__name__ for e in out[1:-1]]
    assert kinds == [
        "ReasoningDelta",
        "ReasoningDelta",
        "ToolCallDelta",
        "ReasoningDelta",
        "ReasoningDelta",
        "TextDelta",
        "TextDelta",
        "TextDelta",
    ]
    assert record_reply(out) == replace(reply, cost_usd=0.0)
    # a turn sent back in another order is another request
    usual = replace(TURN, order=())
    keys = {
        cache_key("m", [], ChatRequest((Message(Role.USER, "go"), m)), tenant="t")
        for m in (TURN, usual)
    }
    assert len(keys) == 2
