"""The provider adapter interface and its registry.

An adapter turns a `ChatRequest`, asked of one of the provider's models, into an async
stream of `ProviderEvent`s. Each adapter keeps its wire format (request building, event
parsing, error classification) in pure functions beside it, testable without a network.
Adapters are registered by kind; the orchestrator builds one adapter per configured
provider and shares it (and its connection pool) across all requests.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Protocol, runtime_checkable

from llmesh.services.common.config import ResolvedProvider
from llmesh.services.core.chat import ChatRequest
from llmesh.services.core.events import ProviderEvent


class Provider(Protocol):
    """A live connection to one upstream provider."""

    name: str
    """The configured provider name (the part before the slash in model names)."""
    options: frozenset[str]
    """The optional features (`ChatRequest.options`: penalties, logit bias, service tiers)
    this adapter's API honours; the engine sends it no call asking for one it lacks."""

    def stream(
        self, model: str, request: ChatRequest, *, timeout: float | None
    ) -> AsyncGenerator[ProviderEvent, None]:
        """Stream the reply. Must end with a `Finish` event or raise `LlmeshError`.

        `model` is the provider's own model id (the routed target's, e.g. ``gpt-4o-mini``).
        `timeout` is the time left for the whole call in seconds (the caller's deadline), or
        None for the provider's own default. Closing the iterator (or cancelling the task
        iterating it) must close the upstream HTTP stream.
        """
        ...

    async def aclose(self) -> None:
        """Release the connection pool."""
        ...


@runtime_checkable
class TokenCounting(Protocol):
    """A provider whose API counts a request's input tokens exactly (Anthropic's
    count_tokens); the others have no such method."""

    async def count_tokens(
        self, model: str, request: ChatRequest, *, timeout: float | None
    ) -> int | None:
        """The input tokens of `request` to `model` as the provider counts them, or None when
        this one cannot count after all (a lean adapter speaking OpenAI's API)."""
        ...


ProviderFactory = Callable[[ResolvedProvider], Provider]
"""Builds a provider from its resolved configuration."""


class ProviderRegistry:
    """Adapter factories by provider kind (``openai``, ``anthropic``, ...)."""

    def __init__(self) -> None:
        self._factories: dict[str, ProviderFactory] = {}

    def register(self, kind: str, factory: ProviderFactory) -> None:
        """Make `kind` buildable; a later registration replaces an earlier one."""
        self._factories[kind] = factory

    def kinds(self) -> list[str]:
        """The registered kinds."""
        return sorted(self._factories)

    def build(self, resolved: ResolvedProvider) -> Provider:
        """Build the adapter for a provider; raises KeyError for an unknown kind."""
        return self._factories[resolved.config.kind](resolved)
