"""The order of an assistant turn's blocks across its lists (thinking, text, tool calls).

A turn is carried as separate lists, so `Message.order` places its blocks in one sequence
when that is not the usual one (every thinking block, then the text, then every tool call):
Anthropic's interleaved thinking answers thinking, tool_use, thinking, text, and checks that
the turn comes back in that order. `OrderRecorder` builds the order from a reply's events,
`ordered` walks a message's blocks in order, and `order_problem` checks an order a caller
gave.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from llmesh.services.core.chat import (
    BlockKind,
    BlockRef,
    ContentPart,
    Message,
    TextPart,
    ThinkingBlock,
    ToolCall,
)

__all__ = ["Block", "OrderRecorder", "order_problem", "ordered"]

Block = ThinkingBlock | ContentPart | ToolCall
"""One block of a turn: a thinking block, a content part (text runs of `Message.content`
become `TextPart`s) or a tool call."""


def _text_runs(m: Message) -> list[TextPart]:
    """`m.content` cut into the runs its TEXT refs give; its breakpoint goes on the last."""
    lengths = [r.text_length for r in m.order if r.kind is BlockKind.TEXT]
    if len(lengths) == 1 and lengths[0] == 0:
        lengths = [len(m.content)]
    runs: list[TextPart] = []
    at = 0
    for k, length in enumerate(lengths):
        last = k == len(lengths) - 1
        runs.append(TextPart(m.content[at : at + length], m.cache_control if last else None))
        at += length
    return runs


def ordered(m: Message) -> list[tuple[BlockKind, int, Block]]:
    """Every block of `m` in its order (`m.order`, else the usual one), with its index in
    its list.

    Without parts, the text is `m.content`: one `TextPart` with the message's breakpoint,
    or one per text run of the order (numbered from 0, the breakpoint on the last).
    """
    if not m.order:
        out: list[tuple[BlockKind, int, Block]] = [
            (BlockKind.THINKING, k, b) for k, b in enumerate(m.thinking)
        ]
        if m.parts:
            out.extend((BlockKind.TEXT, k, p) for k, p in enumerate(m.parts))
        elif m.content:
            out.append((BlockKind.TEXT, 0, TextPart(m.content, m.cache_control)))
        out.extend((BlockKind.TOOL_CALL, k, c) for k, c in enumerate(m.tool_calls))
        return out
    runs = [] if m.parts else _text_runs(m)
    result: list[tuple[BlockKind, int, Block]] = []
    run = 0
    for ref in m.order:
        block: Block
        index = ref.index
        if ref.kind is BlockKind.THINKING:
            block = m.thinking[index]
        elif ref.kind is BlockKind.TOOL_CALL:
            block = m.tool_calls[index]
        elif m.parts:
            block = m.parts[index]
        else:
            block, index = runs[run], run
            run += 1
        result.append((ref.kind, index, block))
    return result


def order_problem(m: Message) -> str | None:
    """What is wrong with `m.order` (None when it is empty or places every block once)."""
    if not m.order:
        return None
    counts = Counter((r.kind, r.index) for r in m.order if r.kind is not BlockKind.TEXT or m.parts)
    sizes = {
        BlockKind.THINKING: len(m.thinking),
        BlockKind.TOOL_CALL: len(m.tool_calls),
        BlockKind.TEXT: len(m.parts),
    }
    for kind, size in sizes.items():
        if kind is BlockKind.TEXT and not m.parts:
            continue
        for index in range(size):
            if counts.pop((kind, index), 0) != 1:
                return f"must place {kind.value} block {index} exactly once"
    if counts:
        (kind, index), _ = next(iter(counts.items()))
        return f"places {kind.value} block {index}, which the message does not have"
    if not m.parts:
        lengths = [r.text_length for r in m.order if r.kind is BlockKind.TEXT]
        if any(n < 0 for n in lengths):
            return "text lengths must not be negative"
        whole = len(lengths) == 1 and lengths[0] == 0
        if not whole and sum(lengths) != len(m.content):
            return f"text lengths add up to {sum(lengths)}, not the {len(m.content)} of content"
        if not m.content and lengths:
            return "places text the message does not have"
    return None


class OrderRecorder:
    """Records the order of a reply's blocks as its events arrive.

    Text deltas in a row are one text block; a thinking block or tool call is placed where
    its first delta arrives. `order` gives the refs, or nothing when the order is the usual
    one.
    """

    __slots__ = ("_refs", "_seen")

    def __init__(self) -> None:
        self._refs: list[tuple[BlockKind, int, int]] = []
        self._seen: set[tuple[BlockKind, int]] = set()

    def text(self, length: int) -> None:
        """A text delta of `length` characters."""
        if not length:
            return
        refs = self._refs
        if refs and refs[-1][0] is BlockKind.TEXT:
            refs[-1] = (BlockKind.TEXT, 0, refs[-1][2] + length)
        else:
            refs.append((BlockKind.TEXT, 0, length))

    def block(self, kind: BlockKind, index: int) -> None:
        """A delta of the thinking block or tool call numbered `index` by the stream."""
        if (kind, index) not in self._seen:
            self._seen.add((kind, index))
            self._refs.append((kind, index, 0))

    def clear(self) -> None:
        """Forget what was recorded (the call restarted on another target)."""
        self._refs.clear()
        self._seen.clear()

    def order(self, thinking: Sequence[int], calls: Sequence[int]) -> tuple[BlockRef, ...]:
        """The refs, with stream indexes mapped to positions in the sorted `thinking` and
        `calls` indexes; empty when the blocks came in the usual order."""
        if len(self._refs) <= 1:
            return ()  # one block (or none) is always in the usual order
        where = {
            BlockKind.THINKING: {index: k for k, index in enumerate(thinking)},
            BlockKind.TOOL_CALL: {index: k for k, index in enumerate(calls)},
        }
        refs = tuple(
            BlockRef(kind, 0 if kind is BlockKind.TEXT else where[kind][index], length)
            for kind, index, length in self._refs
        )
        rank = {BlockKind.THINKING: 0, BlockKind.TEXT: 1, BlockKind.TOOL_CALL: 2}
        texts = sum(1 for r in refs if r.kind is BlockKind.TEXT)
        usual = sorted(refs, key=lambda r: (rank[r.kind], r.index))
        if texts <= 1 and list(refs) == usual:
            return ()
        return refs
