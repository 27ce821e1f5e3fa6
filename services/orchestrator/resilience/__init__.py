"""Resilience for calls to targets: circuit breakers, retry budgets and concurrency queues.

Each piece is independent and keyed by the ``provider/model`` target name; the engine
checks and feeds them around every attempt.
"""

from llmesh.services.orchestrator.resilience.breakers import (
    COUNTED_BY_DEFAULT,
    Breakers,
    BreakerSettings,
    BreakerView,
)
from llmesh.services.orchestrator.resilience.queues import QueueSettings, TargetLimiter
from llmesh.services.orchestrator.resilience.retry_budget import RetryBudget, RetryBudgetSettings

__all__ = [
    "COUNTED_BY_DEFAULT",
    "BreakerSettings",
    "BreakerView",
    "Breakers",
    "QueueSettings",
    "RetryBudget",
    "RetryBudgetSettings",
    "TargetLimiter",
]
