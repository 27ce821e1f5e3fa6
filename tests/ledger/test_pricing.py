"""Prices and cost arithmetic: exact to the float nearest the decimal value."""

from __future__ import annotations

import itertools

import pytest

from llmesh.services.core.usage import Usage
from llmesh.services.ledger import pricing
from llmesh.services.ledger.pricing import SOURCE_DATE, Price, PriceTable

TABLE = PriceTable.defaults()


def test_anthropic_cache_writes_5m_and_1h() -> None:
    u = Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=2000, cache_write_tokens=3000)
    # 1000*3 + 2000*0.30 + 3000*3.75 + 500*15 = 22,350 USD per million
    assert TABLE.cost("anthropic", "claude-sonnet-4-5", u) == 0.02235
    # 1h writes at 2x input: 3000*6
    assert TABLE.cost("anthropic", "claude-sonnet-4-5", u, cache_ttl="1h") == 0.0291
    assert TABLE.savings("anthropic", "claude-sonnet-4-5", u) == 0.0054  # 2000 * (3 - 0.3)


def test_anthropic_haiku_and_opus() -> None:
    u = Usage(input_tokens=10, output_tokens=1000, cache_read_tokens=100_000)
    assert TABLE.cost("anthropic", "claude-haiku-4-5-20251001", u) == 0.01501
    big = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert TABLE.cost("anthropic", "claude-opus-4-1-20250805", big) == 90.0
    assert TABLE.cost("anthropic", "claude-opus-4-5-20251101", big) == 30.0
    assert TABLE.cost("anthropic", "claude-3-5-haiku-20241022", big) == 4.8
    # Claude 3 Haiku's published cache prices are rounded: 0.03 read, 0.30 write.
    cached = Usage(cache_read_tokens=1_000_000, cache_write_tokens=1_000_000)
    assert TABLE.cost("anthropic", "claude-3-haiku-20240307", cached) == 0.33


def test_openai_cached_input_rates_per_model() -> None:
    # gpt-4o-mini: cached input at 0.5x
    u = Usage(input_tokens=1000, output_tokens=200, cache_read_tokens=4000)
    assert TABLE.cost("openai", "gpt-4o-mini", u) == 0.00057  # 150 + 300 + 120
    assert TABLE.savings("openai", "gpt-4o-mini", u) == 0.0003
    # gpt-4.1: cached input at 0.25x
    u = Usage(input_tokens=2000, output_tokens=1000, cache_read_tokens=8000)
    assert TABLE.cost("openai", "gpt-4.1", u) == 0.016  # 4000 + 4000 + 8000
    # gpt-5: cached input at 0.1x; reasoning tokens are part of output, billed once
    u = Usage(input_tokens=1000, output_tokens=2000, cache_read_tokens=9000, reasoning_tokens=1500)
    assert TABLE.cost("openai", "gpt-5-2025-08-07", u) == 0.022375  # 1250 + 1125 + 20000
    # o4-mini at 0.25x
    u = Usage(input_tokens=1_000_000, cache_read_tokens=1_000_000, output_tokens=1_000_000)
    assert TABLE.cost("openai", "o4-mini", u) == 5.775  # 1.1 + 0.275 + 4.4


def test_openai_cache_writes_cost_the_input_price() -> None:
    u = Usage(cache_write_tokens=1_000_000)
    assert TABLE.cost("openai", "gpt-4o", u) == 2.5
    assert TABLE.cost("openai", "gpt-4o", u, cache_ttl="1h") == 2.5


def test_separate_reasoning_price() -> None:
    table = PriceTable({"x/think": Price(1.0, 4.0, reasoning=8.0)}, source_date="test")
    u = Usage(input_tokens=1000, output_tokens=1000, reasoning_tokens=600)
    # 1000*1 + (1000-600)*4 + 600*8
    assert table.cost("x", "think", u) == 0.0074
    # reasoning can never exceed output
    u = Usage(output_tokens=100, reasoning_tokens=500)
    assert table.cost("x", "think", u) == 0.0008


def test_default_multipliers_are_exact() -> None:
    table = PriceTable({"p/m": Price(3.0, 15.0)}, source_date="test")
    u = Usage(cache_read_tokens=1_000_000)
    assert table.cost("p", "m", u) == 0.3  # not 0.30000000000000004
    assert table.cost("p", "m", Usage(cache_write_tokens=1_000_000)) == 3.75
    assert table.cost("p", "m", Usage(cache_write_tokens=1_000_000), cache_ttl="1h") == 6.0
    u = Usage(output_tokens=1_000_000, reasoning_tokens=1_000_000)
    assert table.cost("p", "m", u) == 15.0


def test_unknown_model_costs_nothing_and_says_so() -> None:
    u = Usage(input_tokens=1000, output_tokens=1000, cache_read_tokens=1000)
    assert TABLE.price("openai", "gpt-99") is None
    assert TABLE.cost("openai", "gpt-99", u) == 0.0
    cost = TABLE.cost_of("nobody", "model", u)
    assert (cost.usd, cost.known, cost.price_key) == (0.0, False, "")
    assert TABLE.savings("nobody", "model", u) == 0.0
    assert TABLE.worst_case("nobody", "model", 1000, 1000) == 0.0
    known = TABLE.cost_of("openai", "gpt-4o-2024-11-20", u)
    assert known.known and known.price_key == "openai/gpt-4o"
    assert known.cache_savings_usd == TABLE.savings("openai", "gpt-4o", u)


def test_emulator_models_are_free() -> None:
    cost = TABLE.cost_of("emulator", "echo", Usage(input_tokens=10**6, output_tokens=10**6))
    assert cost.known and cost.usd == 0.0 and cost.price_key == "emulator/*"


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("o3-2025-04-16", "o3"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-opus-4-0", "claude-opus-4-0"),
    ],
)
def test_snapshot_matching(model: str, key: str) -> None:
    provider = "anthropic" if model.startswith("claude") else "openai"
    found = TABLE.lookup(provider, model)
    assert found is not None and found[0] == f"{provider}/{key}"


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-audio-preview"),  # a different model, not a snapshot
        ("openai", "gpt-4o-mini-tts"),
        ("anthropic", "claude-opus-4-7"),  # a newer model must not take an older price
        ("openai", "claude-sonnet-4-5"),  # prices are per provider
    ],
)
def test_no_loose_prefix_matching(provider: str, model: str) -> None:
    assert TABLE.price(provider, model) is None


def test_the_first_gpt_4o_snapshot_keeps_its_own_price() -> None:
    big = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert TABLE.cost("openai", "gpt-4o-2024-05-13", big) == 20.0
    assert TABLE.cost("openai", "gpt-4o-2024-08-06", big) == 12.5


def test_overrides() -> None:
    table = TABLE.with_overrides(
        {
            "openai/gpt-4o": {"input": 2.0},  # partial: the rest stays
            "ollama/*": {"input": 0, "output": 0},
            "azure/gpt-4o": {"input": 2.75, "output": 11, "cache_read": 1.375},
            "openai/*": {"input": 1, "output": 1},
        }
    )
    assert table.price("openai", "gpt-4o") == Price(
        2.0, 10.0, cache_read=1.25, cache_write_5m=2.5, cache_write_1h=2.5, max_output_tokens=16384
    )
    assert table.price("ollama", "llama3.2") == Price(0.0, 0.0)
    u = Usage(input_tokens=1000, cache_read_tokens=1000, output_tokens=1000)
    assert table.cost("azure", "gpt-4o-2024-08-06", u) == 0.015125  # 2750 + 1375 + 11000
    assert table.lookup("openai", "gpt-4.1") is not None
    assert table.lookup("openai", "gpt-4.1")[0] == "openai/gpt-4.1"  # type: ignore[index]
    assert table.lookup("openai", "gpt-unknown")[0] == "openai/*"  # type: ignore[index]
    assert table.source_date == TABLE.source_date
    assert TABLE.price("openai", "gpt-4o").input == 2.5  # type: ignore[union-attr]
    assert TABLE.price("ollama", "llama3.2") is None


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"openai/gpt-4o": {"inptu": 1.0}}, "unknown field"),
        ({"new/model": {"input": 1.0}}, "needs 'input' and 'output'"),
        ({"openai/gpt-4o": {"input": -1.0}}, ">= 0"),
        ({"gpt-4o": {"input": 1.0, "output": 1.0}}, "provider/model"),
        ({"openai/gpt-4o": {"input": "cheap"}}, "must be numbers"),  # type: ignore[dict-item]
        ({"openai/gpt-4o": {"max_output_tokens": 1.5}}, "whole number"),
        ({"openai/gpt-4o": {"max_output_tokens": 0}}, ">= 1"),
    ],
)
def test_bad_overrides(raw: dict[str, dict[str, float]], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TABLE.with_overrides(raw)


def test_worst_case_bounds_every_split() -> None:
    # every input token as a 1h cache write (2x), every output token at the output price
    assert TABLE.worst_case("anthropic", "claude-sonnet-4-5", 10_000, 1000) == 0.075
    assert TABLE.worst_case("anthropic", "claude-sonnet-4-5", 10_000, 1000, cache_ttl="5m") == (
        0.0525
    )
    assert TABLE.worst_case("openai", "gpt-4o", 10_000, 1000) == 0.035
    for model, (a, b, c) in itertools.product(
        ["claude-sonnet-4-5", "claude-haiku-4-5"], itertools.product([0, 300, 700], repeat=3)
    ):
        u = Usage(
            input_tokens=a,
            cache_read_tokens=b,
            cache_write_tokens=c,
            output_tokens=900,
            reasoning_tokens=200,
        )
        bound = TABLE.worst_case("anthropic", model, a + b + c, 900)
        assert TABLE.cost("anthropic", model, u, cache_ttl="1h") <= bound


def test_bad_cache_ttl() -> None:
    with pytest.raises(ValueError, match="cache_ttl"):
        TABLE.cost("openai", "gpt-4o", Usage(cache_write_tokens=1), cache_ttl="1d")


def test_shipped_models_and_source_date() -> None:
    for key in [
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "openai/gpt-4.1",
        "openai/gpt-4.1-mini",
        "openai/gpt-4.1-nano",
        "openai/o3",
        "openai/o4-mini",
        "openai/gpt-5",
        "openai/gpt-5-mini",
        "anthropic/claude-opus-4-1",
        "anthropic/claude-sonnet-4-5",
        "anthropic/claude-haiku-4-5",
        "anthropic/claude-3-5-haiku",
    ]:
        provider, model = key.split("/")
        price = TABLE.price(provider, model)
        assert price is not None, key
        if provider == "openai":
            assert price.cache_read is not None, f"{key} needs its own cached-input price"
    assert TABLE.source_date == SOURCE_DATE
    assert pricing.__doc__ is not None and "November 2025" in pricing.__doc__


def test_embedding_models_bill_input_only() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=0)
    assert TABLE.cost("openai", "text-embedding-3-small", usage) == pytest.approx(0.02)
    assert TABLE.cost("openai", "text-embedding-3-large", usage) == pytest.approx(0.13)
    assert TABLE.cost("openai", "text-embedding-ada-002", usage) == pytest.approx(0.10)


def test_price_rejects_negative_and_nan() -> None:
    with pytest.raises(ValueError):
        Price(-1.0, 1.0)
    with pytest.raises(ValueError):
        Price(1.0, float("nan"))


def test_every_shipped_model_has_its_published_output_limit() -> None:
    limits = {
        k: p.max_output_tokens
        for k, p in TABLE.entries.items()
        if k not in ("emulator/*", "local/*")  # free
        and "/text-embedding-" not in k  # embeddings produce no output
    }
    assert all(isinstance(v, int) and v >= 4096 for v in limits.values()), limits
    assert limits["openai/gpt-4o-mini"] == 16_384 and limits["openai/gpt-4.1"] == 32_768
    assert limits["openai/gpt-5"] == 128_000 and limits["openai/o3"] == 100_000
    assert limits["anthropic/claude-sonnet-4-5"] == 64_000
    assert limits["anthropic/claude-opus-4-1"] == 32_000
    assert limits["anthropic/claude-3-5-haiku"] == 8_192
    assert TABLE.output_limit("openai", "gpt-4o-2024-08-06") == 16_384  # a dated snapshot
    assert TABLE.output_limit("openai", "gpt-4o-2024-05-13") == 4_096
    assert TABLE.output_limit("mystery", "model") is None


def test_output_limits_are_configurable() -> None:
    table = TABLE.with_overrides(
        {
            "openai/gpt-4o": {"max_output_tokens": 8192},
            "local/llama": {"input": 1, "output": 2, "max_output_tokens": "2048"},  # type: ignore[dict-item]
        }
    )
    assert table.output_limit("openai", "gpt-4o") == 8192
    assert table.output_limit("local", "llama") == 2048
    assert table.price("openai", "gpt-4o").input == 2.5  # type: ignore[union-attr]


def test_batch_calls_cost_half_at_both_providers() -> None:
    u = Usage(input_tokens=1000, output_tokens=500, cache_read_tokens=2000, cache_write_tokens=3000)
    # Anthropic's batch rates: half of 1000*3 + 2000*0.30 + 3000*3.75 + 500*15
    assert TABLE.cost("anthropic", "claude-sonnet-4-5", u, batch=True) == 0.011175
    cost = TABLE.cost_of("anthropic", "claude-sonnet-4-5", u, batch=True)
    assert cost.cache_savings_usd == 0.0027  # half of 2000 * (3 - 0.3)
    # gpt-4o-mini batch: $0.075 input, $0.0375 cached input, $0.30 output per million
    o = Usage(input_tokens=1000, output_tokens=200, cache_read_tokens=4000)
    assert TABLE.cost("openai", "gpt-4o-mini", o, batch=True) == 0.000285
    assert TABLE.cost("openai", "gpt-4o-mini", o) == 0.00057  # unchanged without batch
    assert (
        TABLE.cost("openai", "text-embedding-3-small", Usage(input_tokens=10**6), batch=True)
        == 0.01
    )
    assert TABLE.cost("emulator", "echo", u, batch=True) == 0.0
    assert TABLE.worst_case("openai", "gpt-4o", 1000, 1000, batch=True) == pytest.approx(
        TABLE.worst_case("openai", "gpt-4o", 1000, 1000) / 2
    )


def test_batch_share_is_configurable() -> None:
    table = TABLE.with_overrides(
        {"openai/gpt-4o": {"batch": 0.25}, "x/y": {"input": 4, "output": 8, "batch": 1}}
    )
    big = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert table.cost("openai", "gpt-4o", big, batch=True) == 3.125  # (2.5 + 10) / 4
    assert table.cost("x", "y", big, batch=True) == 12.0
    assert table.cost("openai", "gpt-4o-mini", big, batch=True) == 0.375
    with pytest.raises(ValueError, match="batch"):
        Price(1.0, 1.0, batch=-0.5)


def test_native_batch_items_cost_half_for_openai_and_anthropic() -> None:
    table = PriceTable(
        {"openai/m": Price(input=2.0, output=8.0), "local/m": Price(input=2.0, output=8.0)},
        source_date=SOURCE_DATE,
    )
    usage = Usage(input_tokens=1_000_000, output_tokens=500_000)
    assert table.cost("openai", "m", usage) == 6.0
    assert table.batch_cost("openai", "m", usage, kind="openai") == 3.0
    assert table.batch_cost("openai", "m", usage, kind="anthropic") == 3.0
    assert table.batch_cost("local", "m", usage, kind="local") == 6.0  # no batch API, no discount
    assert table.batch_cost("nobody", "m", usage, kind="openai") == 0.0
