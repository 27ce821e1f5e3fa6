"""The message that stands for a conversation's summarized middle turns.

Shared by the processor's fit step (which sizes room for it) and the orchestrator's steps
layer (which puts the summary in), so both build the same message.
"""

from __future__ import annotations

from llmesh.services.core.chat import Message, Role

__all__ = ["SUMMARY_PREFIX", "summary_message"]

SUMMARY_PREFIX = "Summary of the earlier conversation:\n"
"""How the message holding a summary of the middle turns begins."""


def summary_message(summary: str) -> Message:
    """The system message standing for the summarized middle turns (it goes right after
    the conversation's own system messages, where every provider takes a system text)."""
    return Message(Role.SYSTEM, SUMMARY_PREFIX + summary)
