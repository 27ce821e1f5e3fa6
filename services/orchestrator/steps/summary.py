"""The fit step's summarize strategy: the middle turns, summarized by a cheaper model that
is called through the mesh's own call path.

The summary call is a call of its own: routed to ``fit.summary_model`` (a model or route),
rate-limited, budgeted, retried and recorded in the ledger under the same tenant and key,
with `SUMMARY_OF` in its metadata naming the call it serves. The steps layer runs no
``fit`` step for it, so a summary never asks for a summary.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from typing import Any

from llmesh.services.core.call import Call
from llmesh.services.core.chat import (
    AudioPart,
    ChatRequest,
    DocumentPart,
    ImagePart,
    Message,
    Role,
    TextPart,
)
from llmesh.services.core.events import CallEvent
from llmesh.services.core.ids import new_request_id
from llmesh.services.orchestrator.aggregate import collect

__all__ = ["SUMMARY_OF", "Mesh", "summarize", "summary_request", "transcript"]

SUMMARY_OF = "llmesh_summary_of"
"""Metadata key of a summary call: the request id of the call whose turns it summarizes."""

INSTRUCTIONS = (
    "Summarize the conversation below so that an assistant can continue it without the "
    "original turns. Keep facts, names, numbers, decisions, open questions, and what tools "
    "were called with and returned. Write the summary only, in the conversation's language."
)
"""The summary call's system prompt."""

Mesh = Callable[[Call[Any], str, float | None], AsyncGenerator[CallEvent, None]]
"""Streams a call through the mesh's call path: (call, request id, timeout) -> events."""

_PARTS = ((ImagePart, "[image]"), (DocumentPart, "[document]"), (AudioPart, "[audio]"))


def transcript(messages: Sequence[Message]) -> str:
    """The turns as plain text, one block per message: role, text, tool calls, tool results
    (media parts are named, not inlined)."""
    blocks = []
    for m in messages:
        texts = [m.content] if m.content else []
        for part in m.parts:
            if isinstance(part, TextPart):
                texts.append(part.text)
            else:
                texts.extend(label for kind, label in _PARTS if isinstance(part, kind))
        if m.role is Role.TOOL:
            head = f"tool result ({m.tool_call_id})" if m.tool_call_id else "tool result"
        else:
            head = m.role.value + (f" ({m.name})" if m.name else "")
        lines = [f"{head}: {' '.join(texts)}".rstrip()]
        lines.extend(f"  called {c.name} ({c.id}) with {c.arguments}" for c in m.tool_calls)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def summary_request(messages: Sequence[Message], max_tokens: int) -> ChatRequest:
    """The summary call's request: the instructions, then the turns as one user message
    (sampling left to the model's defaults, which every model accepts)."""
    return ChatRequest(
        messages=(Message(Role.SYSTEM, INSTRUCTIONS), Message(Role.USER, transcript(messages))),
        max_tokens=max_tokens,
    )


async def summarize(
    mesh: Mesh,
    parent: Call[ChatRequest],
    parent_id: str,
    model: str,
    request: ChatRequest,
    timeout: float | None,
) -> tuple[str, str]:
    """(summary text, the summary call's request id): `request` sent to `model` through
    `mesh` for the caller of `parent`; raises `LlmeshError` as the call fails."""
    kept = {k: v for k, v in parent.metadata.items() if k in ("user", "session")}
    call = Call(
        model=model,
        request=request,
        metadata={**kept, SUMMARY_OF: parent_id},
        caller=parent.caller,
        priority=parent.priority,
    )
    request_id = new_request_id()
    events = mesh(call, request_id, timeout)
    async with aclosing(events):
        reply = await collect(events)
    return reply.text.strip(), request_id
