"""Admission of calls: rate limits and spending caps, checked before and settled after.

`RateLimiter` paces requests and tokens per subject with token buckets; `BudgetManager`
holds a call's worst-case cost against USD caps until its actual cost is known. Both keep
state in-process by default and in Redis, shared by orchestrator replicas, when given a URL.
Refusals are `LlmeshError`s whose metadata carries ``quota.subject`` and
``quota.description`` for a `google.rpc.QuotaFailure`.
"""

from llmesh.services.orchestrator.admission.budgets import BudgetCaps, BudgetManager, Reservation
from llmesh.services.orchestrator.admission.ratelimit import Limit, RateLimiter

__all__ = ["BudgetCaps", "BudgetManager", "Limit", "RateLimiter", "Reservation"]
