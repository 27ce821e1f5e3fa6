"""The chat call's request: messages, roles, tools and the request itself.

Plain dataclasses; the servicers map protobuf messages to them, so core logic (routing,
providers, token counting, context fitting) never imports grpc or generated code.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AUDIO_FORMATS",
    "DOCUMENT_MEDIA_TYPES",
    "IMAGE_MEDIA_TYPES",
    "AudioPart",
    "BlockKind",
    "BlockRef",
    "CacheControl",
    "ChatRequest",
    "ContentPart",
    "DocumentPart",
    "FinishReason",
    "ImagePart",
    "Message",
    "ReasoningEffort",
    "ResponseFormat",
    "ResponseFormatType",
    "Role",
    "ServiceTier",
    "TextPart",
    "ThinkingBlock",
    "Tool",
    "ToolCall",
    "ToolChoiceMode",
]


class Role(enum.Enum):
    """The author of a message; the values are the role names chat APIs use."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class CacheControl:
    """A prompt-cache breakpoint the caller placed on one block (Anthropic's
    ``cache_control``); Anthropic targets receive it where it was placed, other providers
    ignore it."""

    ttl: str = ""
    """``5m`` or ``1h``; empty for the provider's default (5 minutes)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call made in an assistant message."""

    id: str
    name: str
    arguments: str
    """The arguments as a JSON object serialized to a string."""
    cache_control: CacheControl | None = None


@dataclass(frozen=True, slots=True)
class ThinkingBlock:
    """One block of a model's reasoning, kept byte-for-byte as the provider sent it.

    Anthropic signs each thinking block and verifies the signature when the block comes back
    on the next turn; a redacted block carries only its opaque `redacted_data`.
    """

    thinking: str = ""
    signature: str = ""
    redacted_data: str = ""


class BlockKind(enum.Enum):
    """Which of an assistant turn's lists a `BlockRef` points into."""

    THINKING = "thinking"
    TEXT = "text"
    """A content part (`Message.parts`), or a run of `Message.content`."""
    TOOL_CALL = "tool_call"


@dataclass(frozen=True, slots=True)
class BlockRef:
    """One block of an assistant turn, placed in the order the provider produced it."""

    kind: BlockKind
    index: int = 0
    """The block's index in `Message.thinking`, `Message.tool_calls` or `Message.parts`."""
    text_length: int = 0
    """For a run of `Message.content` (a message without parts): its length in characters;
    the runs take `content` in turn. A single run may leave it 0: the whole content."""


IMAGE_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""The image media types both OpenAI and Anthropic accept."""
DOCUMENT_MEDIA_TYPES = frozenset({"application/pdf"})
"""The document media types accepted (PDF, the one both providers read)."""
AUDIO_FORMATS = frozenset({"wav", "mp3"})
"""The audio formats OpenAI's ``input_audio`` accepts."""


@dataclass(frozen=True, slots=True)
class TextPart:
    """A run of text within a message's content."""

    text: str
    cache_control: CacheControl | None = None


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image: an http(s) `url`, or inline `data` with its `media_type`.

    A URL goes to the provider as it is where its API takes one; for a provider that needs
    bytes, the orchestrator fetches it (only when ``media_fetch`` allows the host)."""

    url: str = ""
    data: bytes = b""
    media_type: str = ""
    detail: str = ""
    """OpenAI's detail hint (``auto``, ``low``, ``high``); empty leaves it to the provider."""
    cache_control: CacheControl | None = None


@dataclass(frozen=True, slots=True)
class DocumentPart:
    """A document (a PDF) with an optional title: its bytes, or an http(s) `url` (then
    `data` is empty), passed on to Anthropic and fetched for OpenAI-style providers."""

    data: bytes = b""
    media_type: str = "application/pdf"
    title: str = ""
    url: str = ""
    cache_control: CacheControl | None = None


@dataclass(frozen=True, slots=True)
class AudioPart:
    """An audio clip's bytes and format (``wav`` or ``mp3``)."""

    data: bytes
    format: str


ContentPart = TextPart | ImagePart | DocumentPart | AudioPart
"""One part of a message's content."""


@dataclass(frozen=True, slots=True)
class Message:
    """One conversation turn."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    """For a tool message: the id of the call it answers."""
    name: str = ""
    """An optional author name."""
    thinking: tuple[ThinkingBlock, ...] = ()
    """For an assistant turn: its thinking blocks, returned to the provider unchanged."""
    parts: tuple[ContentPart, ...] = ()
    """The content as ordered parts (text, images, documents, audio); when present they are
    the whole content and `content` is empty. Empty means a text-only message."""
    cache_control: CacheControl | None = None
    """A breakpoint on the block `content` becomes (a tool message's result, or the text)."""
    is_error: bool = False
    """For a tool message: the tool failed (Anthropic's ``is_error``)."""
    order: tuple[BlockRef, ...] = ()
    """For an assistant turn: its blocks in the provider's order, when that is not the usual
    one (thinking, text, tool calls); see `llmesh.services.core.blocks`."""


class FinishReason(enum.Enum):
    """Why generation stopped, normalized across providers."""

    STOP = "stop"
    LENGTH = "length"
    TOOL_CALLS = "tool_calls"
    CONTENT_FILTER = "content_filter"
    UNSPECIFIED = "unspecified"


class ReasoningEffort(enum.Enum):
    """How hard a reasoning model thinks; the values are OpenAI's ``reasoning_effort``."""

    UNSPECIFIED = ""
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ServiceTier(enum.Enum):
    """The processing tier asked of the provider; the values are OpenAI's ``service_tier``."""

    UNSPECIFIED = ""
    AUTO = "auto"
    DEFAULT = "default"
    FLEX = "flex"
    PRIORITY = "priority"
    SCALE = "scale"


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
    cache_control: CacheControl | None = None


class ResponseFormatType(enum.Enum):
    """The kind of reply asked for."""

    TEXT = "text"
    JSON_OBJECT = "json_object"
    JSON_SCHEMA = "json_schema"


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """Structured output: the reply's text must be a JSON object, or JSON valid against
    `schema`; validated before the call's terminal event."""

    type: ResponseFormatType
    name: str = ""
    """The schema's name (JSON_SCHEMA)."""
    schema: Mapping[str, Any] = field(default_factory=dict)
    """The JSON Schema (JSON_SCHEMA)."""
    strict: bool = False
    """Ask the provider to follow the schema strictly (OpenAI's ``strict``)."""
    repair_attempts: int = 0
    """How many times an invalid reply is sent back with the validation error."""

    @property
    def structured(self) -> bool:
        """True when the reply must be JSON (not plain text)."""
        return self.type is not ResponseFormatType.TEXT


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat call's content: what any target is asked, whichever provider model answers.

    The provider model is not part of it: routing picks the targets, and each attempt passes
    its target's model to the provider adapter beside the request.
    """

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
    reasoning_effort: ReasoningEffort = ReasoningEffort.UNSPECIFIED
    """How hard a reasoning model thinks (OpenAI-style providers)."""
    thinking_budget_tokens: int | None = None
    """Anthropic extended thinking's token budget; thinking is off when None."""
    response_format: ResponseFormat | None = None
    """The shape the reply must have; None for plain text."""
    parallel_tool_calls: bool | None = None
    """Whether several tool calls may come in one turn; None for the provider's default."""
    presence_penalty: float | None = None
    """Penalty (-2..2) on tokens already present; None for the provider's default."""
    frequency_penalty: float | None = None
    """Penalty (-2..2) on tokens by their frequency so far; None for the provider's default."""
    logit_bias: Mapping[str, int] = field(default_factory=dict)
    """Biases (-100..100) by token id (a decimal string); empty for none."""
    service_tier: ServiceTier = ServiceTier.UNSPECIFIED
    """The processing tier; UNSPECIFIED for the provider's default."""
    logprobs: bool = False
    """Return each output token's log probability (on the reply's text deltas)."""
    top_logprobs: int | None = None
    """With `logprobs`: how many of the most likely tokens to return at each position."""

    anthropic_beta: tuple[str, ...] = ()
    """Anthropic beta features to enable (``anthropic-beta``), allowed by the call's route."""
    user: str = ""
    """The end user the call acts for (the ``user`` label); Anthropic receives it as
    ``metadata.user_id``."""

    def options(self) -> dict[str, str]:
        """The optional features this request asks of a provider, each with the /v1 field
        that asks for it: ``{"presence_penalty": "presence_penalty", "service_tier:flex":
        "service_tier", ...}``. An adapter lists the features it honours (its `options`);
        a target whose adapter lacks one is not sent the call, so none is silently lost."""
        out: dict[str, str] = {}
        if self.presence_penalty is not None:
            out["presence_penalty"] = "presence_penalty"
        if self.frequency_penalty is not None:
            out["frequency_penalty"] = "frequency_penalty"
        if self.logit_bias:
            out["logit_bias"] = "logit_bias"
        if self.service_tier is not ServiceTier.UNSPECIFIED:
            out[f"service_tier:{self.service_tier.value}"] = "service_tier"
        if self.logprobs:
            out["logprobs"] = "logprobs"
        return out
