"""The innermost handler: each call type to the handler that serves it."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Any

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import RoutedCall
from llmesh.services.core.events import CallEvent
from llmesh.services.core.handler import Handler

__all__ = ["ByCallType"]


class ByCallType:
    """Streams a call with the handler registered for its request's type."""

    def __init__(self, handlers: Mapping[type, Handler]) -> None:
        self._handlers = dict(handlers)

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events from its call type's handler."""
        handler = self._handlers.get(type(call.request))
        if handler is None:
            raise LlmeshError(
                Reason.INVALID_REQUEST,
                f"{type(call.request).__name__} calls are not served by this orchestrator",
            )
        return handler.stream(call)
