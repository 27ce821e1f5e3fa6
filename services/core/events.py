"""What a call's stream carries: provider events, and the call path's own events around them.

A provider adapter yields `ProviderEvent`s and ends with `Finish`; the call path (layers and
engine) yields `CallEvent`s: `Started`, the reply's deltas and usage updates, `Switched`
when a call moves to another target mid-stream, and exactly one `Completed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmesh.services.core.chat import FinishReason
from llmesh.services.core.embeddings import Embeddings
from llmesh.services.core.policy import MidStreamPolicy
from llmesh.services.core.reasons import Reason
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord
from llmesh.services.core.usage import Usage

__all__ = [
    "CallEvent",
    "Completed",
    "Embeddings",
    "Finish",
    "ProviderEvent",
    "ReasoningDelta",
    "Started",
    "Switched",
    "TextDelta",
    "TokenLogprob",
    "ToolCallDelta",
    "TopLogprob",
    "UsageUpdate",
]


@dataclass(frozen=True, slots=True)
class TopLogprob:
    """One of the most likely tokens at a position, with its log probability."""

    token: str
    logprob: float
    utf8: bytes = b""
    """The token's UTF-8 bytes (a token may hold part of a character)."""


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    """One output token with its log probability and the most likely tokens in its place."""

    token: str
    logprob: float
    utf8: bytes = b""
    """The token's UTF-8 bytes (a token may hold part of a character)."""
    top: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Reply text to append."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()
    """The text's tokens with their log probabilities, when the request asked for them."""


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A fragment of thinking block `index`: reasoning text, never part of the answer.

    Text fragments join per index; a block's `signature` (or a redacted block's
    `redacted_data`) arrives whole, in one delta, exactly as the provider sent it.
    """

    text: str = ""
    index: int = 0
    signature: str = ""
    redacted_data: str = ""


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of tool call `index`; id and name come with its first fragment."""

    index: int
    id: str = ""
    name: str = ""
    arguments_delta: str = ""


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    """Usage reported by the provider so far (cumulative)."""

    usage: Usage


@dataclass(frozen=True, slots=True)
class Finish:
    """The upstream reply ended normally."""

    reason: FinishReason
    provider_reason: str
    usage: Usage | None
    """The final usage, if the provider reported one."""
    response_id: str = field(default="", compare=False)
    """The provider's id of the reply (``chatcmpl-...``, ``msg_...``), when it sent one; not
    compared (two requests' replies differ in it whatever they say)."""
    response_model: str = ""
    """The model the provider says answered, when it said."""
    stop_sequence: str = ""
    """The stop sequence that ended the reply, when the provider named it (Anthropic does,
    OpenAI does not); empty otherwise."""


ProviderEvent = TextDelta | ReasoningDelta | ToolCallDelta | UsageUpdate | Finish
"""What a provider adapter yields. A stream that ends without `Finish` was cut."""


@dataclass(frozen=True, slots=True)
class Started:
    """The first event of every successful stream: the target that produced the first token."""

    request_id: str
    provider: str
    model: str
    cache_hit: bool = False
    """True when the reply is replayed from the response cache (no provider is called)."""


@dataclass(frozen=True, slots=True)
class Switched:
    """The call moved to another target after output reached the caller."""

    source: Target
    target: Target
    reason: Reason
    policy: MidStreamPolicy


@dataclass(frozen=True, slots=True)
class Completed:
    """The terminal event: why generation stopped, usage, attempts and llmesh's overhead."""

    reason: FinishReason
    provider_reason: str
    usage: Usage
    attempts: tuple[AttemptRecord, ...] = ()
    overhead: float = 0.0
    """Seconds llmesh itself added to the call."""
    cost_usd: float = 0.0
    """The call's cost, when prices are known (filled in by the accounting layer)."""
    cache_hit: bool = False
    """True when the reply came from the response cache."""
    stop_sequence: str = ""
    """The stop sequence that ended the reply, when the provider named it; empty otherwise."""

    def costing(self, cost_usd: float) -> Completed:
        """This event carrying the call's cost (built field by field: once per call, and
        cheaper than `dataclasses.replace`)."""
        return Completed(
            self.reason,
            self.provider_reason,
            self.usage,
            self.attempts,
            self.overhead,
            cost_usd,
            self.cache_hit,
            self.stop_sequence,
        )


CallEvent = (
    Started
    | TextDelta
    | ReasoningDelta
    | ToolCallDelta
    | UsageUpdate
    | Switched
    | Embeddings
    | Completed
)
"""What the call path (every layer, and the engine innermost) yields; `Embeddings` only in
embeddings calls."""
