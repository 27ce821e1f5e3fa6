"""The orchestrator's domain: requests and stream events as plain dataclasses.

These types are what providers consume and produce; the gRPC servicer maps protobuf
messages to and from them, so nothing below the transport imports grpc.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.common.chat import Message, Role, ToolCall
from services.core.usage import Usage

__all__ = [
    "ChatRequest",
    "Finish",
    "FinishReason",
    "Message",
    "ProviderEvent",
    "Role",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolChoiceMode",
    "Usage",
    "UsageUpdate",
]


class FinishReason(enum.Enum):
    """Why generation stopped, normalized across providers."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    UNSPECIFIED = "unspecified"


class ToolChoiceMode(enum.Enum):
    """How the model may use tools."""

    UNSPECIFIED = "unspecified"
    AUTO = "auto"
    NONE = "none"
    REQUIRED = "required"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    """JSON Schema of the arguments."""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat call addressed to one provider model (after routing)."""

    model: str
    """The provider's own model id, e.g. ``gpt-4o-mini``."""
    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoiceMode = ToolChoiceMode.UNSPECIFIED
    tool_choice_name: str = ""
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    prompt_cache: str = "auto"
    """Provider prompt caching: ``auto`` (breakpoints on long stable prefixes) or ``off``."""
    prompt_cache_ttl: str = "5m"
    """Prompt cache lifetime: ``5m`` or ``1h``."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Reply text to append."""

    text: str


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


ProviderEvent = TextDelta | ToolCallDelta | UsageUpdate | Finish
"""What a provider adapter yields. A stream that ends without `Finish` was cut."""
