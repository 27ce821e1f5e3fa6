"""Trim a conversation to a token budget: the system prompt plus the most recent turns; or
name the middle turns a summary replaces (`summary_span`).

The result is always the leading system message(s) followed by a contiguous, most recent
suffix of the rest, so no kept message loses the turns between it and the next kept one.
The suffix never starts with a tool result: a tool message goes with the assistant
message that called it (the nearest earlier non-tool message), so they are dropped as a
group. Counts include the reply priming once, as CountTokens does for messages, so the
kept and dropped tokens add up to the count of the whole conversation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import Message, Role


class MessageCounter(Protocol):
    """What fitting needs from a token counter (a `TokenCounter` is one)."""

    @property
    def reply_priming(self) -> int:
        """Tokens priming the reply, counted once with the kept messages."""
        ...

    def message_tokens(self, message: Message) -> int:
        """The tokens of one message, framing included."""
        ...


@dataclass(frozen=True, slots=True)
class FitResult:
    """A trimmed conversation and what was dropped."""

    messages: tuple[Message, ...]
    """The kept messages, in their original order."""
    kept_indices: tuple[int, ...]
    """The indices of the kept messages in the input, ascending."""
    tokens: int
    """The tokens of the kept messages, reply priming included."""
    dropped_indices: tuple[int, ...]
    """The indices of the dropped messages in the input, ascending."""
    dropped_tokens: int
    """The tokens of the dropped messages."""


def fit_context(messages: Sequence[Message], max_tokens: int, counter: MessageCounter) -> FitResult:
    """Keep the leading system messages and as many recent turns as fit in `max_tokens`.

    Raises `LlmeshError` with reason CONTEXT_TOO_LONG when the system messages, or the
    system messages with the last message (and its tool-call group), do not fit.
    """
    sizes = [counter.message_tokens(m) for m in messages]
    return fit_counted(messages, sizes, max_tokens, counter.reply_priming)


def fit_counted(
    messages: Sequence[Message], sizes: Sequence[int], max_tokens: int, reply_priming: int
) -> FitResult:
    """`fit_context` with each message's tokens counted already (``sizes[i]`` for message i)."""
    if len(sizes) != len(messages):
        raise ValueError("one size per message is required")
    if max_tokens <= 0:
        raise ValueError("max_tokens must be positive")
    n = len(messages)
    lead = 0
    while lead < n and messages[lead].role is Role.SYSTEM:
        lead += 1
    base = sum(sizes[:lead]) + reply_priming
    if base > max_tokens:
        raise _too_long(
            f"the system messages alone take {base} tokens; the budget is {max_tokens}",
            base,
            max_tokens,
        )
    start = n  # the first kept message after the system messages; n keeps none
    used = base
    for i in range(n - 1, lead - 1, -1):
        used += sizes[i]
        if used > max_tokens:
            break
        if i == lead or messages[i].role is not Role.TOOL:
            start = i
    if start == n and n > lead:
        needed = base + sum(sizes[_group_start(messages, lead) :])
        raise _too_long(
            f"the last message needs {needed} tokens with the system messages; "
            f"the budget is {max_tokens}",
            needed,
            max_tokens,
        )
    kept = (*range(lead), *range(start, n))
    dropped = tuple(range(lead, start))
    return FitResult(
        messages=tuple(messages[i] for i in kept),
        kept_indices=kept,
        tokens=base + sum(sizes[start:]),
        dropped_indices=dropped,
        dropped_tokens=sum(sizes[lead:start]),
    )


def summary_span(
    messages: Sequence[Message],
    sizes: Sequence[int],
    max_tokens: int,
    reply_priming: int,
    *,
    keep_turns: int,
    summary_tokens: int,
) -> range | None:
    """The middle turns to replace with a summary of up to `summary_tokens`, so that the
    system messages, the summary and the last turns fit in `max_tokens`; None when no
    choice does (nothing in the middle, or the last turn is too long with the summary).

    A turn is a user message and the messages after it up to the next user message, so
    the kept turns start at a user message and a tool call and its results are never split.
    The last `keep_turns` turns are kept when they fit with the summary, else fewer (at
    least one); everything between the system messages and them is summarized.
    """
    if len(sizes) != len(messages):
        raise ValueError("one size per message is required")
    lead = 0
    while lead < len(messages) and messages[lead].role is Role.SYSTEM:
        lead += 1
    base = sum(sizes[:lead]) + reply_priming + summary_tokens
    users = [i for i in range(lead, len(messages)) if messages[i].role is Role.USER]
    for kept in range(min(keep_turns, len(users)), 0, -1):
        start = users[-kept]
        if start > lead and base + sum(sizes[start:]) <= max_tokens:
            return range(lead, start)
    return None


def _group_start(messages: Sequence[Message], lead: int) -> int:
    """Where the last message's group starts: before any tool results, at their caller."""
    i = len(messages) - 1
    while i > lead and messages[i].role is Role.TOOL:
        i -= 1
    return i


def _too_long(message: str, needed: int, max_tokens: int) -> LlmeshError:
    return LlmeshError(
        Reason.CONTEXT_TOO_LONG,
        message,
        metadata={"tokens": str(needed), "max_tokens": str(max_tokens)},
    )
