"""The deterministic reply and token rules, as pure functions."""

from __future__ import annotations

import json
import re

import pytest

from llmesh.services.emulator.replies import (
    MESSAGE_OVERHEAD,
    REPLY_OVERHEAD,
    Block,
    BlockKind,
    Conversation,
    Finish,
    ToolChoice,
    ToolDef,
    Turn,
    count_tokens,
    cut_text,
    fragments,
    input_tokens,
    pieces,
    plan_reply,
    tool_call_id,
)

TOOLS = (ToolDef("get_weather", '{"name":"get_weather"}'), ToolDef("get_time", '{"name":"x"}'))


def user(text: str) -> Turn:
    return Turn("user", (Block(BlockKind.TEXT, text),))


def conv(*turns: Turn, **kwargs: object) -> Conversation:
    return Conversation("echo", turns, **kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello big world", ["Hello", " big", " world"]),
        ("  lead", ["  lead"]),
        ("trail  ", ["trail", "  "]),
        ("a\n\nb", ["a", "\n\nb"]),
        ("", []),
        ("   ", ["   "]),
    ],
)
def test_pieces_are_words_with_their_leading_whitespace(text: str, expected: list[str]) -> None:
    assert pieces(text) == expected
    assert "".join(pieces(text)) == text
    assert count_tokens(text) == len(expected)


def test_pieces_match_the_documented_regex_on_trimmed_text() -> None:
    text = "  The quick\tbrown  fox "
    assert pieces(text)[:-1] == re.findall(r"\s*\S+", text)


def test_echo_of_the_last_user_message() -> None:
    reply = plan_reply(conv(user("first"), Turn("assistant", ()), user("second one")))
    assert (reply.text, reply.finish, reply.output_tokens) == ("second one", Finish.END, 2)


def test_max_tokens_cuts_to_that_many_pieces() -> None:
    reply = cut_text("one two three four", 2, ())
    assert (reply.text, reply.finish, reply.output_tokens) == ("one two", Finish.LENGTH, 2)
    assert cut_text("one two", 2, ()).finish is Finish.END


def test_stop_sequence_cuts_before_it() -> None:
    reply = cut_text("one two three four", None, ("four", " three"))
    assert (reply.text, reply.finish, reply.stop_sequence) == (
        "one two",
        Finish.STOP_SEQUENCE,
        " three",
    )
    # text before the stop does not fit in max_tokens: length wins
    assert cut_text("one two three four", 1, (" three",)).finish is Finish.LENGTH
    assert cut_text("one two", None, ("zzz",)).finish is Finish.END


def test_tool_results_are_summarised() -> None:
    results = (Turn("tool", (Block(BlockKind.TOOL_RESULT, "sunny"),)),)
    results += (Turn("tool", (Block(BlockKind.TOOL_RESULT, "12:00"),)),)
    reply = plan_reply(conv(user("weather?"), Turn("assistant", ()), *results, tools=TOOLS))
    assert reply.text == "Tool result: sunny\n12:00"
    assert not reply.tool_calls


def test_mentioned_tools_are_called_in_tools_order() -> None:
    reply = plan_reply(conv(user("get_time then get_weather"), tools=TOOLS))
    assert [c.name for c in reply.tool_calls] == ["get_weather", "get_time"]
    assert [c.index for c in reply.tool_calls] == [0, 1]
    assert json.loads(reply.tool_calls[0].arguments) == {}  # the tools take no parameters
    assert reply.finish is Finish.TOOL_CALLS
    assert reply.output_tokens == sum(
        count_tokens(c.name) + count_tokens(c.arguments) for c in reply.tool_calls
    )


@pytest.mark.parametrize(
    ("text", "choice", "names"),
    [
        ("no tool named here", ToolChoice("auto"), []),
        ("get_weathers is not a name", ToolChoice("auto"), []),
        ("get_weather please", ToolChoice("none"), []),
        ("nothing", ToolChoice("required"), ["get_weather"]),
        ("nothing", ToolChoice("tool", "get_time"), ["get_time"]),
        ("get_weather get_time", ToolChoice("auto", parallel=False), ["get_weather"]),
    ],
)
def test_tool_choice(text: str, choice: ToolChoice, names: list[str]) -> None:
    reply = plan_reply(conv(user(text), tools=TOOLS, tool_choice=choice))
    assert [c.name for c in reply.tool_calls] == names


def test_tool_call_ids_are_deterministic_per_request_and_index() -> None:
    c = conv(user("get_weather"), tools=TOOLS)
    assert tool_call_id("call_", c, 0) == tool_call_id("call_", c, 0)
    assert tool_call_id("call_", c, 0) != tool_call_id("call_", c, 1)
    assert tool_call_id("call_", c, 0) != tool_call_id("call_", conv(user("other")), 0)
    assert tool_call_id("toolu_", c, 0).startswith("toolu_")


def test_input_tokens_formula() -> None:
    system = Turn("system", (Block(BlockKind.TEXT, "Be brief"),))
    c = conv(system, user("Hello big world"), tools=TOOLS[:1])
    expected = 1 + (MESSAGE_OVERHEAD + 2) + (MESSAGE_OVERHEAD + 3) + REPLY_OVERHEAD
    assert input_tokens(c) == expected == 15


def test_fragments_never_split_escapes() -> None:
    text = json.dumps({"text": 'a "quoted"\nline \u00e9\\ end'}, ensure_ascii=True)
    parts = fragments(text)
    assert "".join(parts) == text
    assert len(parts) > 3
    assert all(len(p) <= 8 * 6 for p in parts)
    for p in parts:
        assert not re.search(r"(?<!\\)(\\\\)*\\$", p)  # no fragment ends inside an escape
