"""The orchestrator's resilience settings, read from the ``resilience`` configuration section."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.config import ConfigError
from services.common.errors import Reason
from services.orchestrator.resilience import BreakerSettings, RetryBudgetSettings
from services.orchestrator.resilience.queues import QueueSettings
from services.orchestrator.retries import RetrySettings

_BUDGET_KEYS = {
    "budget_ratio": "ratio",
    "budget_window": "window",
    "budget_min_retries": "min_retries",
}


@dataclass(frozen=True)
class Resilience:
    """Breakers, retries, the retry budget and queues, as configured."""

    breaker: BreakerSettings
    retry: RetrySettings
    budget: RetryBudgetSettings
    queue: QueueSettings


def _build(cls: type[Any], section: str, raw: Mapping[str, Any]) -> Any:
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(names)
    if unknown:
        raise ConfigError(f"resilience.{section}: unknown keys {sorted(unknown)}")
    try:
        return cls(**raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"resilience.{section}: {exc}") from exc


def resilience_from_config(raw: Mapping[str, Mapping[str, Any]]) -> Resilience:
    """Validate and build the settings; unknown keys and bad values raise `ConfigError`."""
    breaker_raw = dict(raw.get("breaker") or {})
    if "counted_reasons" in breaker_raw:
        try:
            breaker_raw["counted_reasons"] = frozenset(
                Reason[str(r)] for r in breaker_raw["counted_reasons"]
            )
        except KeyError as exc:
            raise ConfigError(f"resilience.breaker.counted_reasons: unknown reason {exc}") from exc
    retry_raw = dict(raw.get("retry") or {})
    budget_raw = {_BUDGET_KEYS[k]: retry_raw.pop(k) for k in list(retry_raw) if k in _BUDGET_KEYS}
    return Resilience(
        breaker=_build(BreakerSettings, "breaker", breaker_raw),
        retry=_build(RetrySettings, "retry", retry_raw),
        budget=_build(RetryBudgetSettings, "retry", budget_raw),
        queue=_build(QueueSettings, "queue", dict(raw.get("queue") or {})),
    )
