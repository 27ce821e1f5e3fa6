"""Fitting a conversation to a budget: system kept, recent suffix kept, tool groups intact."""

from __future__ import annotations

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.fit_summary import SUMMARY_PREFIX, summary_message
from llmesh.services.core.chat import Message, Role, ToolCall
from llmesh.services.processor.fit import FitResult, fit_context, fit_counted, summary_span
from llmesh.services.processor.tokenizers import Tokenizers


class Words:
    """A counter easy to reason about: 1 token per message plus 1 per word; priming 2."""

    reply_priming = 2

    def message_tokens(self, message: Message) -> int:
        return 1 + len(message.content.split())


def sys(text: str) -> Message:
    return Message(Role.SYSTEM, text)


def user(text: str) -> Message:
    return Message(Role.USER, text)


def bot(text: str) -> Message:
    return Message(Role.ASSISTANT, text)


def calls(*ids: str) -> Message:
    return Message(Role.ASSISTANT, tool_calls=tuple(ToolCall(i, "lookup", "{}") for i in ids))


def result(call_id: str, text: str) -> Message:
    return Message(Role.TOOL, text, tool_call_id=call_id)


def fit(messages: list[Message], max_tokens: int) -> FitResult:
    out = fit_context(messages, max_tokens, Words())
    total = sum(Words().message_tokens(m) for m in messages) + Words.reply_priming
    assert out.tokens + out.dropped_tokens == total
    assert out.tokens <= max_tokens
    assert sorted(out.kept_indices + out.dropped_indices) == list(range(len(messages)))
    assert out.messages == tuple(messages[i] for i in out.kept_indices)
    return out


def test_everything_fits() -> None:
    conversation = [sys("be brief"), user("hi there"), bot("hello")]
    out = fit(conversation, 100)
    assert out.kept_indices == (0, 1, 2)
    assert out.dropped_indices == ()
    assert out.dropped_tokens == 0
    assert out.tokens == 3 + 3 + 2 + 2


def test_system_kept_and_oldest_turns_dropped() -> None:
    conversation = [
        sys("be brief"),  # 3
        user("one two three four"),  # 5
        bot("five six"),  # 3
        user("seven"),  # 2
        bot("eight"),  # 2
        user("last"),  # 2
    ]
    out = fit(conversation, 3 + 2 + 2 + 2 + 3 + 2)  # system + the last four + priming
    assert out.kept_indices == (0, 2, 3, 4, 5)
    assert out.dropped_indices == (1,)
    assert out.dropped_tokens == 5
    out = fit(conversation, 3 + 2 + 2 + 2 + 2)
    assert out.kept_indices == (0, 3, 4, 5)
    assert out.dropped_indices == (1, 2)
    assert out.dropped_tokens == 8


def test_all_leading_system_messages_are_kept_but_later_ones_may_go() -> None:
    conversation = [sys("a"), sys("b"), user("c"), sys("d"), user("e")]
    out = fit(conversation, 2 + 2 + 2 + 2)
    assert out.kept_indices == (0, 1, 4)
    assert out.dropped_indices == (2, 3)


def test_kept_turns_are_contiguous() -> None:
    conversation = [sys("s"), user("x"), bot("a b c d e f g h"), user("y")]
    # "x" (2) would fit beside "y" (2), but not without the long answer between them.
    out = fit(conversation, 2 + 2 + 2 + 2)
    assert out.kept_indices == (0, 3)
    assert out.dropped_indices == (1, 2)


def test_without_system_messages() -> None:
    out = fit([user("a b"), bot("c"), user("d")], 2 + 2 + 2)
    assert out.kept_indices == (1, 2)


def test_tool_results_are_dropped_with_their_call() -> None:
    conversation = [
        sys("s"),  # 2
        user("what is up"),  # 4
        calls("c1", "c2"),  # 1
        result("c1", "one"),  # 2
        result("c2", "two"),  # 2
        user("thanks and more"),  # 4
    ]
    # The two results and the last message fit (2 + 2 + 4), but not their call (+1).
    out = fit(conversation, 2 + 2 + 2 + 4 + 2)
    assert out.kept_indices == (0, 5)
    assert out.dropped_indices == (1, 2, 3, 4)
    out = fit(conversation, 2 + 1 + 2 + 2 + 4 + 2)
    assert out.kept_indices == (0, 2, 3, 4, 5)
    assert out.dropped_indices == (1,)


def test_a_last_tool_result_needs_its_whole_group() -> None:
    conversation = [sys("s"), user("q"), calls("c1"), result("c1", "a b c")]
    out = fit(conversation, 2 + 1 + 4 + 2)
    assert out.kept_indices == (0, 2, 3)
    with pytest.raises(LlmeshError) as info:
        fit(conversation, 2 + 4 + 2)  # the result fits alone, but not with its call
    assert info.value.reason is Reason.CONTEXT_TOO_LONG
    assert info.value.metadata == {"tokens": "9", "max_tokens": "8"}


def test_last_message_too_long() -> None:
    with pytest.raises(LlmeshError) as info:
        fit([sys("s"), user("a"), user("a b c d e f")], 10)
    assert info.value.reason is Reason.CONTEXT_TOO_LONG
    assert info.value.metadata == {"tokens": "11", "max_tokens": "10"}
    assert "last message" in info.value.message


def test_system_messages_alone_too_long() -> None:
    with pytest.raises(LlmeshError) as info:
        fit([sys("a b c"), sys("d e"), user("x")], 8)
    assert info.value.reason is Reason.CONTEXT_TOO_LONG
    assert info.value.metadata == {"tokens": "9", "max_tokens": "8"}
    assert "system" in info.value.message


def test_only_system_messages() -> None:
    out = fit([sys("a"), sys("b")], 6)
    assert out.kept_indices == (0, 1)
    assert out.tokens == 6


def test_exact_budget_is_inclusive() -> None:
    out = fit([sys("s"), user("a"), user("b")], 2 + 2 + 2 + 2)
    assert out.dropped_indices == ()


def test_fit_counted_checks_its_inputs() -> None:
    with pytest.raises(ValueError):
        fit_counted([user("a")], [], 10, 0)
    with pytest.raises(ValueError):
        fit_counted([user("a")], [1], 0, 0)


def test_counts_agree_with_the_tokenizer(tokenizers: Tokenizers) -> None:
    counter = tokenizers.for_model("openai/gpt-4o-mini")
    conversation = [
        sys("You are terse."),
        user("Tell me about the history of the printing press in detail, please."),
        bot("Gutenberg, around 1440, movable type; it spread across Europe within decades."),
        user("And paper?"),
    ]
    whole = counter.conversation_tokens(conversation)
    budget = whole - counter.message_tokens(conversation[1])
    out = fit_context(conversation, budget, counter)
    assert out.dropped_indices == (1,)
    assert out.tokens == counter.conversation_tokens(out.messages)
    assert out.tokens + out.dropped_tokens == whole


def span(messages: list[Message], max_tokens: int, keep: int = 2, summary: int = 5) -> range | None:
    sizes = [Words().message_tokens(m) for m in messages]
    return summary_span(messages, sizes, max_tokens, 2, keep_turns=keep, summary_tokens=summary)


def _agent_conversation() -> list[Message]:
    return [
        sys("be brief"),  # 0: 3
        user("one two three four"),  # 1: 5
        calls("a", "b"),  # 2: 1
        result("a", "alpha alpha alpha"),  # 3: 4
        result("b", "beta beta beta"),  # 4: 4
        bot("done with that"),  # 5: 4
        user("next question here"),  # 6: 4
        calls("c"),  # 7: 1
        result("c", "gamma"),  # 8: 2
        bot("answer"),  # 9: 2
        user("last one"),  # 10: 3
    ]


def test_the_middle_is_everything_between_the_system_and_the_kept_turns() -> None:
    messages = _agent_conversation()
    # base 3 + 2 + summary 5 = 10; the last two turns (6..10) take 12: 22 fits in 22
    assert span(messages, 22) == range(1, 6)


def test_fewer_turns_are_kept_when_the_last_ones_do_not_fit_with_the_summary() -> None:
    messages = _agent_conversation()
    # the last turn alone (10) takes 3: 13; with the one before, 22 does not fit in 21
    assert span(messages, 21) == range(1, 10)


def test_a_tool_call_and_its_results_stay_on_one_side() -> None:
    messages = _agent_conversation()
    for budget in range(13, 40):
        middle = span(messages, budget, keep=3)
        if middle is None:
            continue
        summarized = {messages[i].tool_call_id for i in middle if messages[i].role is Role.TOOL}
        called = {c.id for i in middle for c in messages[i].tool_calls}
        assert summarized == called  # no result without its call, no call without its results
        assert messages[middle.stop].role is Role.USER


def test_nothing_to_summarize_or_no_room_is_none() -> None:
    messages = _agent_conversation()
    assert span(messages, 12) is None  # the last turn and the summary do not fit
    assert span([sys("s"), user("only one turn"), bot("reply")], 8) is None  # no middle
    assert span([user("x " * 20), bot("y")], 100) is None  # one turn: nothing before it


def test_the_middle_starts_after_every_leading_system_message() -> None:
    messages = [sys("a"), sys("b"), user("old " * 10), bot("ok"), user("new")]
    assert span(messages, 20, keep=1) == range(2, 4)


def test_summary_span_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="one size per message"):
        summary_span([user("x")], [], 10, 0, keep_turns=1, summary_tokens=1)


def test_the_summary_message_is_a_system_text_with_its_prefix() -> None:
    m = summary_message("they agreed on Tuesday")
    assert m.role is Role.SYSTEM and m.content == SUMMARY_PREFIX + "they agreed on Tuesday"
