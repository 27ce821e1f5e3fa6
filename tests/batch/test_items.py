"""The JSONL item file and the checks every batch's items pass."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from llmesh.services.batch.items import check_items, fill_model, parse_jsonl
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.v1 import batches_pb2, embeddings_pb2
from tests.batch.conftest import chat_item


def _line(item: batches_pb2.BatchItem) -> str:
    return json_format.MessageToJson(item, indent=None)


def test_lines_become_items_and_blank_lines_are_skipped() -> None:
    text = "\n".join([_line(chat_item("a")), "", "   ", _line(chat_item("b"))]) + "\n"
    items = parse_jsonl(text, max_items=10)
    assert [i.custom_id for i in items] == ["a", "b"]
    assert items[0].chat.messages[0].content == "hi"


@pytest.mark.parametrize(
    ("lines", "says"),
    [
        (["{not json"], "line 1"),
        ([_line(chat_item("a")), '{"custom_id": "b", "nope": 1}'], "line 2"),
        (
            [_line(chat_item("a")), "", _line(chat_item("a"))],
            "line 3.custom_id duplicates custom_id 'a'",
        ),
        (['{"custom_id": "x"}'], "line 1 (custom_id 'x') must hold a chat or embed call"),
        ([_line(chat_item("c" * 65))], "line 1.custom_id must be 1 to 64"),
        (["", " "], "holds no items"),
        ([_line(chat_item(f"i{n}")) for n in range(4)], "more than 3 items"),
    ],
)
def test_bad_files_name_the_line(lines: list[str], says: str) -> None:
    with pytest.raises(LlmeshError) as caught:
        parse_jsonl("\n".join(lines), max_items=3)
    assert caught.value.reason is Reason.INVALID_REQUEST
    assert says in caught.value.message


def test_inline_items_name_their_index() -> None:
    with pytest.raises(LlmeshError, match=r"items\[1\]\.custom_id duplicates custom_id 'a'"):
        check_items([chat_item("a"), chat_item("a")])
    with pytest.raises(LlmeshError, match=r"items\[0\]\.custom_id must be 1 to 64"):
        check_items([chat_item("")])


def test_the_default_model_fills_only_items_without_one() -> None:
    chat = chat_item("a", model="")
    named = chat_item("b", model="openai/gpt-4o-mini")
    embed = batches_pb2.BatchItem(custom_id="e", embed=embeddings_pb2.EmbedRequest(inputs=["x"]))
    for item in (chat, named, embed):
        fill_model(item, "emulator/echo")
    assert (chat.chat.model, named.chat.model, embed.embed.model) == (
        "emulator/echo",
        "openai/gpt-4o-mini",
        "emulator/echo",
    )
