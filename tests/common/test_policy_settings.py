from dataclasses import fields

import pytest

from llmesh.services.common.config import ConfigError
from llmesh.services.common.policy_settings import BudgetCaps, Limit, PolicyConfig, PriceOverride
from llmesh.services.ledger import Price


def test_a_price_override_names_the_fields_of_a_price() -> None:
    assert [f.name for f in fields(PriceOverride)] == [f.name for f in fields(Price)]


def test_a_price_override_gives_only_the_fields_it_sets() -> None:
    assert PriceOverride(input=1.0, max_output_tokens=8).as_mapping() == {
        "input": 1.0,
        "max_output_tokens": 8,
    }


def test_from_mapping_builds_every_section() -> None:
    policy = PolicyConfig.from_mapping(
        {"budgets": {"keys": {"k": {"monthly_usd": 3}}}, "rate_limits": None}
    )
    assert policy.budgets.keys == {"k": BudgetCaps(monthly_usd=3.0)}
    assert policy.rate_limits == PolicyConfig().rate_limits
    with pytest.raises(ConfigError, match=r"^rate_limits.tenants.t.tokens_per_minute: "):
        PolicyConfig.from_mapping({"rate_limits": {"tenants": {"t": {"tokens_per_minute": 0}}}})


@pytest.mark.parametrize("bad", [{"requests_per_minute": 0.5}, {"tokens_per_minute": -1.0}])
def test_limits_keep_their_bounds(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Limit(**bad)
