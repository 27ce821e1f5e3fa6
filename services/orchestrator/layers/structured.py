"""The structured-output layer: a reply asked to be JSON is validated before it finishes.

Only chat calls with a JSON response format are touched; every other call passes
straight through. The reply's text is checked (valid JSON; a JSON object; valid against
the JSON Schema) when the inner stream's `Completed` arrives, before it is passed on; a
reply that finishes with tool calls is not checked.

Without repair attempts the deltas stream as they come, and an invalid reply ends the
call with SCHEMA_VALIDATION_FAILED instead of its `Completed`. With repair attempts
left, the reply is held back until it validates (a reply that already reached the caller
cannot be taken back): an invalid one is sent back to the target that produced it, with
the validation error, as a new attempt of the same call (in its trail, accounted and
admitted like any other). The last attempt, with no repair left to hold it for, streams as
it comes. When none is left, the call fails with SCHEMA_VALIDATION_FAILED carrying the
validation error and the last output (truncated) in its metadata.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.chat import ChatRequest, FinishReason, ResponseFormat
from llmesh.services.core.events import CallEvent, Completed, Started, Switched, TextDelta
from llmesh.services.core.handler import Handler
from llmesh.services.core.policy import MidStreamPolicy
from llmesh.services.core.target import Target
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.structured import OUTPUT_LIMIT, repair_request, reply_error

__all__ = ["Structured"]


class Structured:
    """Validates JSON replies, and asks again while repair attempts remain."""

    def __init__(self, inner: Handler) -> None:
        self._inner = inner

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events; a JSON reply is validated before its `Completed`."""
        request = call.call.request
        if not isinstance(request, ChatRequest):
            return self._inner.stream(call)
        fmt = request.response_format
        if fmt is None or not fmt.structured:
            return self._inner.stream(call)
        return self._structured(call, request, fmt)

    async def _structured(
        self, call: RoutedCall[Any], request: ChatRequest, fmt: ResponseFormat
    ) -> AsyncGenerator[CallEvent, None]:
        current = call
        repairs = fmt.repair_attempts
        total = Usage()
        while True:
            hold = repairs > 0
            held: list[CallEvent] = []
            text: list[str] = []
            target: Target | None = None
            completed: Completed | None = None
            async with aclosing(self._inner.stream(current)) as events:
                async for event in events:
                    if isinstance(event, Completed):
                        completed = event
                        break
                    if isinstance(event, TextDelta):
                        text.append(event.text)
                    elif isinstance(event, Started):
                        target = _target(current, event)
                    elif isinstance(event, Switched):
                        target = event.target
                        if event.policy is MidStreamPolicy.RESTART:
                            text.clear()
                    if hold:
                        held.append(event)
                    else:
                        yield event
            if completed is None:  # pragma: no cover - the inner handler always completes
                return
            total.add(completed.usage)
            reply = "".join(text)
            error = None
            if completed.reason is not FinishReason.TOOL_CALLS:
                error = reply_error(reply, fmt)
            if error is None:
                for event in held:
                    yield event
                yield replace(completed, usage=replace(total))
                return
            if repairs <= 0 or target is None:
                raise _failed(error, reply, total, target)
            repairs -= 1
            current = replace(
                current,
                call=replace(current.call, request=repair_request(request, reply, error)),
                targets=(target,),
            )


def _target(call: RoutedCall[Any], started: Started) -> Target | None:
    """The routed target that produced the first token."""
    for target in call.targets:
        if target.provider == started.provider and target.model == started.model:
            return target
    return None


def _failed(error: str, reply: str, usage: Usage, target: Target | None) -> LlmeshError:
    output = reply if len(reply) <= OUTPUT_LIMIT else reply[: OUTPUT_LIMIT - 3] + "..."
    err = LlmeshError(
        Reason.SCHEMA_VALIDATION_FAILED,
        f"the reply does not follow the requested format: {error}",
        metadata={"validation_error": error, "output": output},
    )
    if target is not None:
        err.metadata["provider"] = target.provider
        err.metadata["model"] = target.model
    if usage.input_tokens or usage.output_tokens:
        err.usage = replace(usage)
    return err
