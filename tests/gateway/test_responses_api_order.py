"""The order of an assistant turn's blocks on ``/v1/responses``: consecutive assistant-side
input items become one message whose ``block_order`` keeps their order when it is not the
usual one, and a reply with a ``block_order`` becomes output items in that order."""

from __future__ import annotations

from typing import Any

from llmesh.gateway.responses_api.items import add_items
from llmesh.gateway.responses_api.render import output_items
from llmesh.v1 import chat_pb2

TH, TEXT, CALL = (
    chat_pb2.BLOCK_KIND_THINKING,
    chat_pb2.BLOCK_KIND_TEXT,
    chat_pb2.BLOCK_KIND_TOOL_CALL,
)
ASK: dict[str, Any] = {"role": "user", "content": "go"}
PLAN: dict[str, Any] = {
    "type": "reasoning",
    "summary": [{"type": "summary_text", "text": "Plan."}],
    "encrypted_content": "sig1",
}
AGAIN: dict[str, Any] = {
    "type": "reasoning",
    "summary": [{"type": "summary_text", "text": "Again."}],
    "encrypted_content": "sig2",
}
CALL_F: dict[str, Any] = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
RESULT: dict[str, Any] = {"type": "function_call_output", "call_id": "c1", "output": "ok"}


def _said(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text}],
    }


def _messages(items: list[Any]) -> list[chat_pb2.Message]:
    chat = chat_pb2.ChatInput()
    add_items(items, chat, lambda i: f"input[{i}]")
    return list(chat.messages)


def _refs(m: chat_pb2.Message) -> list[tuple[int, int, int]]:
    return [(r.kind, r.index, r.text_length) for r in m.block_order]


def test_an_interleaved_turn_is_one_message_in_its_order() -> None:
    user, turn, tool = _messages([ASK, PLAN, CALL_F, AGAIN, _said("Calling."), RESULT])
    assert (user.role, turn.role, tool.role) == (
        chat_pb2.ROLE_USER,
        chat_pb2.ROLE_ASSISTANT,
        chat_pb2.ROLE_TOOL,
    )
    assert [b.signature for b in turn.thinking] == ["sig1", "sig2"]
    assert turn.content == "Calling." and turn.tool_calls[0].id == "c1"
    assert _refs(turn) == [(TH, 0, 0), (CALL, 0, 0), (TH, 1, 0), (TEXT, 0, 8)]


def test_text_runs_around_a_call_are_cut_from_the_content() -> None:
    (_, turn) = _messages([ASK, _said("Hi."), CALL_F, _said("Bye.")])
    assert turn.content == "Hi.Bye."
    assert _refs(turn) == [(TEXT, 0, 3), (CALL, 0, 0), (TEXT, 0, 4)]


def test_the_usual_order_adds_nothing() -> None:
    (_, turn) = _messages([ASK, PLAN, AGAIN, _said("Calling."), CALL_F])
    assert _refs(turn) == [] and len(turn.thinking) == 2 and turn.content == "Calling."
    (_, only) = _messages([ASK, CALL_F])
    assert _refs(only) == [] and only.content == ""


def test_turns_end_at_a_tool_output_or_a_second_message() -> None:
    messages = _messages([ASK, PLAN, CALL_F, RESULT, AGAIN, _said("Done."), _said("More.")])
    roles = [m.role for m in messages]
    assert roles == [
        chat_pb2.ROLE_USER,
        chat_pb2.ROLE_ASSISTANT,
        chat_pb2.ROLE_TOOL,
        chat_pb2.ROLE_ASSISTANT,
        chat_pb2.ROLE_ASSISTANT,
    ]
    assert [m.content for m in messages[3:]] == ["Done.", "More."]
    assert all(not m.block_order for m in messages)


def _interleaved() -> chat_pb2.Message:
    m = chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, content="Hi.Bye.")
    m.thinking.add(thinking="Plan.", signature="sig1")
    m.thinking.add(redacted_data="xyz")
    m.tool_calls.add(id="c1", name="f", arguments='{"a":1}')
    for kind, index, length in ((TH, 0, 0), (TEXT, 0, 3), (CALL, 0, 0), (TH, 1, 0), (TEXT, 0, 4)):
        m.block_order.add(kind=kind, index=index, text_length=length)
    return m


def test_a_reply_becomes_items_in_its_order() -> None:
    items = output_items(_interleaved(), "completed")
    assert [i["type"] for i in items] == [
        "reasoning",
        "message",
        "function_call",
        "reasoning",
        "message",
    ]
    assert [i["content"][0]["text"] for i in items if i["type"] == "message"] == ["Hi.", "Bye."]
    assert items[0]["encrypted_content"] == "sig1"
    assert items[3]["encrypted_content"] == "redacted_thinking:xyz"
    assert items[2]["call_id"] == "c1" and items[2]["arguments"] == '{"a":1}'
    assert len({i["id"] for i in items}) == 5


def test_items_of_a_reply_come_back_as_the_same_message() -> None:
    reply = _interleaved()
    (_, back) = _messages([ASK, *output_items(reply, "completed")])
    assert back == reply


def test_a_lone_text_of_length_zero_is_the_whole_content() -> None:
    m = chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, content="All of it.")
    m.tool_calls.add(id="c1", name="f", arguments="{}")
    m.block_order.add(kind=CALL, index=0)
    m.block_order.add(kind=TEXT, index=0)
    items = output_items(m, "completed")
    assert [i["type"] for i in items] == ["function_call", "message"]
    assert items[1]["content"][0]["text"] == "All of it."
