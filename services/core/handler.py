"""The one shape of every step of the call path: `stream(call) -> events`.

Layers (admission, response cache, budget, accounting, ...) and the engine innermost all
implement `Handler`; a layer is built around the next handler and owns its own cleanup. A
layer that relays its inner stream closes it when it is closed itself (`aclosing`), so the
inner layers' cleanup has run, in order, by the time its own runs.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, Protocol

from llmesh.services.core.call import RoutedCall
from llmesh.services.core.events import CallEvent

__all__ = ["Handler", "Layer"]


class Handler(Protocol):
    """Streams a routed call's events, ending with exactly one `Completed` or raising
    `LlmeshError`."""

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        """The call's events. May raise `LlmeshError` when called, before any event."""
        ...


Layer = Callable[[Handler], Handler]
"""Builds a layer around the next handler (inner)."""
