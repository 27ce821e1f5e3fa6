"""The order of an assistant turn's blocks on ``/v1/messages``: kept from the request in
``block_order`` when it is not the usual one, and followed when a whole reply is
rendered."""

from __future__ import annotations

from typing import Any

from llmesh.gateway.anthropic.render import message
from llmesh.gateway.anthropic.request import parse_messages_request
from llmesh.v1 import chat_pb2, orchestrator_pb2

THINK: dict[str, Any] = {"type": "thinking", "thinking": "Plan.", "signature": "sig1"}
AGAIN: dict[str, Any] = {"type": "thinking", "thinking": "Again.", "signature": "sig2"}
USE: dict[str, Any] = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
TEXT: dict[str, Any] = {"type": "text", "text": "Calling."}


def _assistant(blocks: list[dict[str, Any]]) -> chat_pb2.Message:
    body = {
        "model": "m",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": blocks},
            {"role": "user", "content": "more"},
        ],
    }
    return parse_messages_request(body).input.messages[1]


def _refs(m: chat_pb2.Message) -> list[tuple[int, int, int]]:
    return [(r.kind, r.index, r.text_length) for r in m.block_order]


def test_an_interleaved_turn_keeps_its_order() -> None:
    turn = _assistant([THINK, USE, AGAIN, TEXT])
    assert turn.content == "Calling." and len(turn.thinking) == 2
    assert _refs(turn) == [
        (chat_pb2.BLOCK_KIND_THINKING, 0, 0),
        (chat_pb2.BLOCK_KIND_TOOL_CALL, 0, 0),
        (chat_pb2.BLOCK_KIND_THINKING, 1, 0),
        (chat_pb2.BLOCK_KIND_TEXT, 0, 0),  # the one text block: the whole content
    ]
    two_texts = _assistant([TEXT, USE, {"type": "text", "text": "Done."}])
    assert [p.text for p in two_texts.parts] == ["Calling.", "Done."]
    assert [r.index for r in two_texts.block_order] == [0, 0, 1]


def test_the_usual_order_adds_nothing() -> None:
    assert _refs(_assistant([THINK, AGAIN, TEXT, USE])) == []
    assert _refs(_assistant([TEXT])) == []


def test_a_whole_reply_follows_its_order() -> None:
    reply = orchestrator_pb2.ChatResponse(request_id="r1")
    m = reply.message
    m.content = "Hi.Bye."
    m.thinking.add(thinking="Plan.", signature="sig1")
    m.tool_calls.add(id="toolu_1", name="f", arguments='{"a":1}')
    for kind, index, length in ((1, 0, 0), (2, 0, 3), (3, 0, 0), (2, 0, 4)):
        m.block_order.add(kind=kind, index=index, text_length=length)
    content = message(reply, "m")["content"]
    assert content == [
        {"type": "thinking", "thinking": "Plan.", "signature": "sig1"},
        {"type": "text", "text": "Hi."},
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
        {"type": "text", "text": "Bye."},
    ]
    del m.block_order[:]
    assert [b["type"] for b in message(reply, "m")["content"]] == ["thinking", "text", "tool_use"]
