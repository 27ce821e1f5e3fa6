"""The state one emulator instance shares between its handlers."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from llmesh.services.emulator.batches import BatchBook
from llmesh.services.emulator.cache import PromptCache
from llmesh.services.emulator.faults import FaultRules
from llmesh.services.emulator.settings import EmulatorSettings
from llmesh.services.emulator.stats import Stats
from llmesh.services.emulator.trace_context import ReceivedContexts


@dataclass(slots=True)
class EmulatorState:
    """Settings, counters, prompt cache and fault rules of one running emulator."""

    settings: EmulatorSettings
    stats: Stats
    cache: PromptCache
    faults: FaultRules
    contexts: ReceivedContexts
    batches: BatchBook
    """Batch jobs of both APIs, the OpenAI files and the batch timing."""

    @classmethod
    def create(cls, settings: EmulatorSettings) -> EmulatorState:
        """Fresh state for `settings`."""
        return cls(
            settings=settings,
            stats=Stats(),
            cache=PromptCache(
                ttl_s=settings.cache_ttl_s,
                long_ttl_s=settings.cache_long_ttl_s,
                min_tokens=settings.cache_min_tokens,
                max_entries=settings.cache_max_entries,
            ),
            faults=FaultRules(settings.faults),
            contexts=ReceivedContexts(),
            batches=BatchBook(settings.batch_delay_s, settings.batch_expiry_s),
        )

    def reset(self) -> None:
        """Zero the counters, empty the prompt cache, drop run-time fault rules, forget
        the trace contexts received (the batches are reset apart: `BatchBook.reset`
        waits for their tasks)."""
        self.stats.reset()
        self.contexts.clear()
        self.cache.clear()
        self.faults.reset()


STATE = web.AppKey("emulator_state", EmulatorState)
"""Where the application keeps its `EmulatorState`."""
