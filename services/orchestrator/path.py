"""The orchestrator's call path: a call is routed once, then streamed through the layers."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, TypeVar

from llmesh.services.core.call import Call, RoutedCall
from llmesh.services.core.events import CallEvent
from llmesh.services.core.handler import Handler
from llmesh.services.core.trail import Trail
from llmesh.services.orchestrator.roles import Roles
from llmesh.services.orchestrator.routing import Router

__all__ = ["CallPath"]

R = TypeVar("R")


class CallPath:
    """Roles and routing at the top, then the composed handler (layers around the engine)."""

    def __init__(self, router: Router, handler: Handler, roles: Roles | None = None) -> None:
        self.router = router
        self.handler = handler
        self.roles = roles or Roles()

    def route(
        self,
        call: Call[R],
        *,
        request_id: str | None = None,
        trail: Trail | None = None,
        timeout: float | None = None,
    ) -> RoutedCall[R]:
        """The call's roles resolved (`roles`), then the call resolved into its targets and
        policy; MODEL_NOT_FOUND for unknown names, INVALID_REQUEST for unknown roles."""
        call = self.roles.resolve(call)
        return self.router.route(call, request_id=request_id, trail=trail, timeout=timeout)

    def stream(
        self,
        call: Call[Any],
        *,
        request_id: str | None = None,
        trail: Trail | None = None,
        timeout: float | None = None,
    ) -> AsyncGenerator[CallEvent, None]:
        """Route the call and stream its events through every layer."""
        routed = self.route(call, request_id=request_id, trail=trail, timeout=timeout)
        return self.handler.stream(routed)
