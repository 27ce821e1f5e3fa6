"""The replies the response cache stores: a whole reply compacted (`CachedReply`), recorded
from a call's events (`record_reply`) and replayed as events on a hit (`replay`), its blocks
in the order they first came (`Message.order`'s rules)."""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass, field

import orjson

from llmesh.services.core.blocks import OrderRecorder
from llmesh.services.core.chat import BlockKind, BlockRef, FinishReason, ThinkingBlock
from llmesh.services.core.embeddings import FLOAT32_BYTES, Embeddings
from llmesh.services.core.events import (
    CallEvent,
    Completed,
    ReasoningDelta,
    Started,
    Switched,
    TextDelta,
    ToolCallDelta,
)
from llmesh.services.core.policy import MidStreamPolicy
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.response_cache_embeddings import pack_b64, unpack_b64

__all__ = ["CachedReply", "CachedToolCall", "order_json", "record_reply", "replay"]


def order_json(order: Sequence[BlockRef]) -> list[list[object]]:
    """A block order as JSON lists (in cache keys and stored replies)."""
    return [[r.kind.value, r.index, r.text_length] for r in order]


@dataclass(frozen=True, slots=True)
class CachedToolCall:
    """One whole tool call of a stored reply."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class CachedReply:
    """A completed reply, compacted: joined text, whole tool calls and how it ended."""

    provider: str
    """The provider that produced the reply."""
    model: str
    """The provider's model that produced the reply."""
    text: str = ""
    tool_calls: tuple[CachedToolCall, ...] = ()
    reason: FinishReason = FinishReason.STOP
    provider_reason: str = ""
    usage: Usage = field(default_factory=Usage)
    """What the original call consumed: what each cache hit saves."""
    cost_usd: float = 0.0
    """What the original call cost, when prices were known."""
    thinking: tuple[ThinkingBlock, ...] = ()
    """The reply's thinking blocks, exactly as the provider sent them."""
    vectors: tuple[bytes, ...] | None = None
    """An embeddings reply's vectors (packed float32 bytes each); None for a chat reply."""
    stop_sequence: str = ""
    """The stop sequence that ended the reply, when the provider named it."""
    order: tuple[BlockRef, ...] = ()
    """The order of the blocks when it is not the usual one (thinking, text, tool calls)."""

    @property
    def floats(self) -> int:
        """How many floats the reply's vectors hold (0 for a chat reply)."""
        return sum(len(v) for v in self.vectors or ()) // FLOAT32_BYTES

    def to_bytes(self) -> bytes:
        """The reply as compact JSON."""
        u = self.usage
        return orjson.dumps(
            {
                "p": self.provider,
                "m": self.model,
                "t": self.text,
                "c": [[c.id, c.name, c.arguments] for c in self.tool_calls],
                "r": self.reason.value,
                "pr": self.provider_reason,
                **({"ss": self.stop_sequence} if self.stop_sequence else {}),
                **({"o": order_json(self.order)} if self.order else {}),
                "u": [
                    u.input_tokens,
                    u.output_tokens,
                    u.cache_read_tokens,
                    u.cache_write_tokens,
                    u.reasoning_tokens,
                    u.estimated,
                ],
                "$": self.cost_usd,
                "k": [[b.thinking, b.signature, b.redacted_data] for b in self.thinking],
                **({} if self.vectors is None else {"v": [pack_b64(v) for v in self.vectors]}),
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes | str) -> CachedReply:
        """The reply `to_bytes` wrote; raises ValueError for anything else."""
        try:
            d = orjson.loads(data)
            u = d["u"]
            return cls(
                provider=str(d["p"]),
                model=str(d["m"]),
                text=str(d["t"]),
                tool_calls=tuple(CachedToolCall(str(i), str(n), str(a)) for i, n, a in d["c"]),
                reason=FinishReason(d["r"]),
                provider_reason=str(d["pr"]),
                stop_sequence=str(d.get("ss", "")),
                usage=Usage(int(u[0]), int(u[1]), int(u[2]), int(u[3]), int(u[4]), bool(u[5])),
                cost_usd=float(d["$"]),
                thinking=tuple(ThinkingBlock(str(t), str(s), str(r)) for t, s, r in d.get("k", ())),
                vectors=None if d.get("v") is None else tuple(unpack_b64(v) for v in d["v"]),
                order=tuple(BlockRef(BlockKind(k), int(i), int(n)) for k, i, n in d.get("o", ())),
            )
        except (orjson.JSONDecodeError, LookupError, TypeError, ValueError, binascii.Error) as exc:
            raise ValueError(f"not a stored reply: {exc}") from None


def _copy(u: Usage) -> Usage:
    return Usage(
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
        u.estimated,
    )


def record_reply(events: Sequence[CallEvent]) -> CachedReply | None:
    """The reply a call's events add up to; None unless it started and completed.

    Output the caller was told to discard (a switch under the ``restart`` policy) is left
    out; under ``continue`` the next target's output extends it.
    """
    provider = model = ""
    started = False
    text: list[str] = []
    calls: dict[int, list[str]] = {}
    thinking: dict[int, list[str]] = {}
    vectors: tuple[bytes, ...] | None = None
    order = OrderRecorder()
    for event in events:
        if isinstance(event, Started):
            started, provider, model = True, event.provider, event.model
        elif isinstance(event, TextDelta):
            text.append(event.text)
            order.text(len(event.text))
        elif isinstance(event, ToolCallDelta):
            order.block(BlockKind.TOOL_CALL, event.index)
            call = calls.setdefault(event.index, ["", "", ""])
            if event.id:
                call[0] = event.id
            if event.name:
                call[1] = event.name
            call[2] += event.arguments_delta
        elif isinstance(event, Embeddings):
            vectors = event.vectors
        elif isinstance(event, ReasoningDelta):
            order.block(BlockKind.THINKING, event.index)
            block = thinking.setdefault(event.index, ["", "", ""])
            block[0] += event.text
            block[1] = event.signature or block[1]
            block[2] = event.redacted_data or block[2]
        elif isinstance(event, Switched):
            provider, model = event.target.provider, event.target.model
            if event.policy is MidStreamPolicy.RESTART:
                text.clear()
                calls.clear()
                thinking.clear()
                order.clear()
        elif isinstance(event, Completed):
            if not started:
                return None
            return CachedReply(
                provider=provider,
                model=model,
                text="".join(text),
                tool_calls=tuple(CachedToolCall(*calls[i]) for i in sorted(calls)),
                thinking=tuple(ThinkingBlock(*thinking[i]) for i in sorted(thinking)),
                reason=event.reason,
                provider_reason=event.provider_reason,
                stop_sequence=event.stop_sequence,
                usage=_copy(event.usage),
                cost_usd=event.cost_usd,
                vectors=vectors,
                order=order.order(sorted(thinking), sorted(calls)),
            )
    return None


_RANK = {BlockKind.THINKING: 0, BlockKind.TEXT: 1, BlockKind.TOOL_CALL: 2}


def replay(reply: CachedReply, request_id: str, *, chunk_chars: int = 0) -> list[CallEvent]:
    """The events that stream `reply` to a caller as call `request_id`.

    Each thinking block comes as one text delta and one signature (or redacted data) delta;
    the text as one delta, or in pieces of `chunk_chars` characters when positive; each tool
    call as one delta; the blocks in the reply's order (by default thinking, text, calls);
    an embeddings reply's vectors as one `Embeddings`.
    `Started` and `Completed` carry ``cache_hit``; `Completed` reports the usage of the
    call that produced the reply (what the reply is worth in tokens; nothing was consumed
    again) and no cost.
    """
    events: list[CallEvent] = [Started(request_id, reply.provider, reply.model, cache_hit=True)]
    if reply.vectors is not None:
        events.append(Embeddings(reply.vectors))
    blocks: dict[tuple[BlockKind, int], list[CallEvent]] = {}
    for i, b in enumerate(reply.thinking):
        deltas = blocks[BlockKind.THINKING, i] = []
        if b.thinking:
            deltas.append(ReasoningDelta(b.thinking, i))
        if b.signature or b.redacted_data:
            deltas.append(ReasoningDelta("", i, b.signature, b.redacted_data))
    for i, c in enumerate(reply.tool_calls):
        delta = ToolCallDelta(i, id=c.id, name=c.name, arguments_delta=c.arguments)
        blocks[BlockKind.TOOL_CALL, i] = [delta]
    runs = [r.text_length for r in reply.order if r.kind is BlockKind.TEXT] or [len(reply.text)]
    at, size = 0, chunk_chars if chunk_chars > 0 else len(reply.text) or 1
    for k, n in enumerate(runs):
        run = reply.text[at : at + n]
        blocks[BlockKind.TEXT, k] = [TextDelta(run[j : j + size]) for j in range(0, len(run), size)]
        at += n
    texts = iter(range(len(runs)))
    sequence = [
        (r.kind, next(texts) if r.kind is BlockKind.TEXT else r.index) for r in reply.order
    ] or sorted(blocks, key=lambda key: (_RANK[key[0]], key[1]))
    for key in sequence:
        events.extend(blocks[key])
    events.append(
        Completed(
            reply.reason,
            reply.provider_reason,
            _copy(reply.usage),
            cache_hit=True,
            stop_sequence=reply.stop_sequence,
        )
    )
    return events
