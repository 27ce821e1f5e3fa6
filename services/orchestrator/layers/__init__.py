"""The call path's layers: one concern each, all of one shape (`llmesh.services.core.handler`).

`compose` builds the path from the innermost handler (the engine, or a dispatch by call
type) and a list of layers, outermost first, the way Starlette builds its middleware
stack. The orchestrator's assembly lists them in this order: admission (rate limits),
response cache, processor steps, cost-capped routing, accounting (the ledger), budget reservation,
structured-output validation, then the engine innermost (through a dispatch by call type).
"""

from __future__ import annotations

from collections.abc import Sequence

from llmesh.services.core.handler import Handler, Layer
from llmesh.services.orchestrator.layers.accounting import Accounted
from llmesh.services.orchestrator.layers.admission import RateLimited
from llmesh.services.orchestrator.layers.budget import Budgeted
from llmesh.services.orchestrator.layers.caching import Cached
from llmesh.services.orchestrator.layers.cost_cap import CostCapped
from llmesh.services.orchestrator.layers.dispatch import ByCallType
from llmesh.services.orchestrator.layers.steps import Processed
from llmesh.services.orchestrator.layers.structured import Structured

__all__ = [
    "Accounted",
    "Budgeted",
    "ByCallType",
    "Cached",
    "CostCapped",
    "Processed",
    "RateLimited",
    "Structured",
    "compose",
]


def compose(inner: Handler, layers: Sequence[Layer]) -> Handler:
    """`inner` wrapped in `layers`, the first of them outermost."""
    handler = inner
    for layer in reversed(layers):
        handler = layer(handler)
    return handler
