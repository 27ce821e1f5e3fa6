"""Responses API items <-> an assistant turn's block order, both ways.

Any run of assistant-side input items (reasoning, message, function_call, in any order)
becomes messages whose ``block_order`` the orchestrator's validation accepts, and each
assistant message rendered as output items and read back is the same message (a fixed point
after one pass), so a turn survives being sent back in the order it came.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from llmesh.gateway.responses_api.items import add_items
from llmesh.gateway.responses_api.render import output_items
from llmesh.services.orchestrator.convert import chat_call_from_proto
from llmesh.v1 import chat_pb2

_TEXT = st.text(max_size=8)


@st.composite
def _item(draw: st.DrawFn, n: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["reasoning", "message", "function_call"]))
    if kind == "reasoning":
        summary = [{"type": "summary_text", "text": t} for t in draw(st.lists(_TEXT, max_size=2))]
        return {"type": "reasoning", "summary": summary, "encrypted_content": f"sig{n}"}
    if kind == "message":
        content = [{"type": "output_text", "text": draw(_TEXT)}]
        return {"type": "message", "role": "assistant", "content": content}
    arguments = draw(st.sampled_from(["{}", '{"a": 1}']))
    return {"type": "function_call", "call_id": f"c{n}", "name": "f", "arguments": arguments}


@st.composite
def _items(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 7))
    return [draw(_item(n)) for n in range(count)]


def _chat(items: list[Any]) -> chat_pb2.ChatInput:
    chat = chat_pb2.ChatInput(model="m")
    add_items([{"role": "user", "content": "go"}, *items], chat, lambda i: f"input[{i}]")
    return chat


@given(_items())
def test_items_in_any_order_become_valid_turns(items: list[dict[str, Any]]) -> None:
    chat = _chat(items)
    chat_call_from_proto(chat, True)  # raises INVALID_REQUEST on a bad block_order
    # one turn, but for an assistant message right after one with text
    breaks = sum(1 for a, b in pairwise(items) if _said(a) and b["type"] == "message")
    assert len(chat.messages) == 2 + breaks


def _said(item: dict[str, Any]) -> bool:
    return item["type"] == "message" and bool(item["content"][0]["text"])


@given(_items())
def test_a_turn_rendered_and_read_back_is_the_same(items: list[dict[str, Any]]) -> None:
    for message in _chat(items).messages[1:]:
        again = _chat(output_items(message, "completed")).messages[1:]
        assert list(again) == [message]
