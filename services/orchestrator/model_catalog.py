"""What each model can do: the bundled catalog of known models, with the configuration's
overrides.

A model's capabilities come from, most specific first: ``capabilities.<provider>/<model>``
in the configuration, ``capabilities.<provider>/*``, the bundled entry for its bare model
name (a dated snapshot such as ``gpt-4o-2024-08-06`` or ``claude-3-5-haiku-20241022`` uses
its base model's), and for the output limit the price list's published
``max_output_tokens``. Whatever none of them knows stays unknown (None), and routing treats
unknown as able: a model missing from the catalog is never skipped for what it might lack.

Anthropic models are listed with ``json_schema`` because the adapter falls back to a forced
tool call where the model has no native structured output.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from llmesh.services.common.model_settings import ModelCapabilities
from llmesh.services.ledger import PriceTable

__all__ = ["BUNDLED", "ModelCatalog"]


def _caps(
    window: int,
    *,
    vision: bool = True,
    documents: bool = True,
    tools: bool = True,
    json_schema: bool = True,
    reasoning: bool = False,
    audio: bool = False,
) -> ModelCapabilities:
    return ModelCapabilities(
        tools=tools,
        vision=vision,
        documents=documents,
        json_schema=json_schema,
        reasoning=reasoning,
        audio=audio,
        context_window=window,
    )


_GPT5 = _caps(400_000, reasoning=True)
_GPT41 = _caps(1_047_576)
_GPT4O = _caps(128_000)
_O_SERIES = _caps(200_000, reasoning=True)
_CLAUDE_THINKING = _caps(200_000, reasoning=True)
_CLAUDE = _caps(200_000)

BUNDLED: dict[str, ModelCapabilities] = {
    # OpenAI (platform.openai.com model pages, 2025-11)
    "gpt-5.1": _GPT5,
    "gpt-5": _GPT5,
    "gpt-5-mini": _GPT5,
    "gpt-5-nano": _GPT5,
    "gpt-4.1": _GPT41,
    "gpt-4.1-mini": _GPT41,
    "gpt-4.1-nano": _GPT41,
    "gpt-4o": _GPT4O,
    "gpt-4o-mini": _GPT4O,
    "gpt-4o-audio-preview": _caps(128_000, vision=False, documents=False, audio=True),
    "gpt-4o-mini-audio-preview": _caps(128_000, vision=False, documents=False, audio=True),
    "o3": _O_SERIES,
    "o3-pro": _O_SERIES,
    "o4-mini": _O_SERIES,
    "o1": _O_SERIES,
    "o3-mini": _caps(200_000, vision=False, documents=False, reasoning=True),
    "o1-mini": _caps(
        128_000, vision=False, documents=False, tools=False, json_schema=False, reasoning=True
    ),
    "gpt-4-turbo": _caps(128_000, json_schema=False),
    "gpt-3.5-turbo": _caps(16_385, vision=False, documents=False, json_schema=False),
    # Anthropic (docs.anthropic.com models overview, 2025-11)
    "claude-opus-4-5": _CLAUDE_THINKING,
    "claude-opus-4-1": _CLAUDE_THINKING,
    "claude-opus-4": _CLAUDE_THINKING,
    "claude-opus-4-0": _CLAUDE_THINKING,
    "claude-sonnet-4-5": _CLAUDE_THINKING,
    "claude-sonnet-4": _CLAUDE_THINKING,
    "claude-sonnet-4-0": _CLAUDE_THINKING,
    "claude-3-7-sonnet": _CLAUDE_THINKING,
    "claude-haiku-4-5": _CLAUDE_THINKING,
    "claude-3-5-sonnet": _CLAUDE,
    "claude-3-5-haiku": _CLAUDE,
    "claude-3-haiku": _CLAUDE,
    "claude-3-opus": _CLAUDE,
}
"""Capabilities of known chat models, keyed by bare model name (any provider serving it)."""

_UNKNOWN = ModelCapabilities()
"""Capabilities of a model nothing is known about: every field None."""

_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$")


class ModelCatalog:
    """Looks up a target's capabilities; results are kept per target."""

    def __init__(
        self,
        overrides: Mapping[str, ModelCapabilities] | None = None,
        prices: PriceTable | None = None,
        bundled: Mapping[str, ModelCapabilities] = BUNDLED,
    ) -> None:
        self._overrides = dict(overrides or {})
        self._prices = prices
        self._bundled = dict(bundled)
        self._known: dict[tuple[str, str], ModelCapabilities] = {}
        self._limits: dict[tuple[str, str], bool] = {}

    def capabilities(self, provider: str, model: str) -> ModelCapabilities:
        """What `provider`'s `model` can do; unknown fields are None."""
        found = self._known.get((provider, model))
        if found is None:
            found = self._lookup(provider, model)
            self._known[(provider, model)] = found
        return found

    def limits(self, provider: str, model: str) -> bool:
        """Whether anything is known about what `provider`'s `model` can do: a model that
        declares nothing can serve any call, and routing need not look further."""
        found = self._limits.get((provider, model))
        if found is None:
            found = self._limits[(provider, model)] = self.capabilities(provider, model) != _UNKNOWN
        return found

    def _lookup(self, provider: str, model: str) -> ModelCapabilities:
        base = self._bundled.get(model) or self._bundled.get(_SNAPSHOT.sub("", model))
        caps = base or ModelCapabilities()
        if caps.max_output_tokens is None and self._prices is not None:
            limit = self._prices.output_limit(provider, model)
            if limit is not None:
                caps = ModelCapabilities(max_output_tokens=limit).over(caps)
        for key in (f"{provider}/*", f"{provider}/{model}"):
            override = self._overrides.get(key)
            if override is not None:
                caps = override.over(caps)
        return caps
