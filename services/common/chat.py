"""Conversation types shared by every service: messages, roles and tool calls.

Plain dataclasses; the servicers map protobuf messages to them, so core logic (routing,
providers, token counting, context fitting) never imports grpc or generated code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.Enum):
    """The author of a message; the values are the role names chat APIs use."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call made in an assistant message."""

    id: str
    name: str
    arguments: str
    """The arguments as a JSON object serialized to a string."""


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
