"""The orchestrator's resilience settings: the typed ``resilience`` section of the config.

`load_config` parses and validates the section (`Resilience.from_mapping`); the orchestrator
takes ``config.resilience`` as it is.
"""

from llmesh.services.common.resilience_settings import (
    BreakerSettings,
    QueueSettings,
    Resilience,
    RetryBudgetSettings,
    RetrySettings,
)

__all__ = ["BreakerSettings", "QueueSettings", "Resilience", "RetryBudgetSettings", "RetrySettings"]
