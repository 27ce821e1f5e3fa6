import pytest

from llmesh.services.common.config_fields import FieldError
from llmesh.services.common.resilience_settings import (
    Resilience,
    RetryBudgetSettings,
    RetrySettings,
)
from llmesh.services.core.priority import Priority
from llmesh.services.orchestrator import resilience, retries, settings


def test_budget_keys_sit_in_the_retry_section() -> None:
    res = Resilience.from_mapping({"retry": {"max_attempts": 2, "budget_ratio": 0.5}})
    assert res.retry == RetrySettings(max_attempts=2)
    assert res.budget == RetryBudgetSettings(ratio=0.5)
    assert Resilience.from_mapping(None) == Resilience()


def test_a_bad_budget_key_is_named_as_written() -> None:
    with pytest.raises(FieldError) as info:
        Resilience.from_mapping({"retry": {"budget_min_retries": -1}})
    assert str(info.value) == "retry.budget_min_retries: expected an integer >= 0, got -1"


def test_the_orchestrator_uses_these_very_classes() -> None:
    assert resilience.BreakerSettings is settings.BreakerSettings
    assert resilience.QueueSettings is settings.QueueSettings
    assert resilience.RetryBudgetSettings is RetryBudgetSettings
    assert retries.RetrySettings is RetrySettings


def test_tenant_priority_names_tiers_case_insensitively() -> None:
    parsed = Resilience.from_mapping(
        {"queue": {"tenant_priority": {"acme": "High", "ci": "batch"}}}
    )
    assert parsed.queue.tenant_priority == {"acme": Priority.HIGH, "ci": Priority.BATCH}
    assert Resilience.from_mapping({}).queue.tenant_priority == {}
    with pytest.raises(FieldError, match=r"queue\.tenant_priority: acme: expected one of batch"):
        Resilience.from_mapping({"queue": {"tenant_priority": {"acme": "urgent"}}})
    with pytest.raises(FieldError, match="expected a mapping"):
        Resilience.from_mapping({"queue": {"tenant_priority": ["acme"]}})
