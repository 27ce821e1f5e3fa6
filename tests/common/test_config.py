from dataclasses import fields
from pathlib import Path

import pytest

from llmesh.services.common.config import (
    Config,
    ConfigError,
    PolicyConfig,
    Resilience,
    load_config,
    resolve_provider,
)
from llmesh.services.common.errors import Reason
from llmesh.services.common.policy_settings import (
    BudgetCaps,
    Limit,
    PriceOverride,
    ResponseCacheConfig,
)
from llmesh.services.common.resilience_settings import (
    BreakerSettings,
    QueueSettings,
    RetryBudgetSettings,
    RetrySettings,
)

ROOT = Path(__file__).parents[2]


def test_defaults_need_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    c = load_config(env={})
    assert c.orchestrator_address == "127.0.0.1:50051"
    assert c.processor_address == "127.0.0.1:50052"
    assert (c.gateway_host, c.gateway_port) == ("127.0.0.1", 8080)
    assert c.emulator.url == "http://127.0.0.1:8090"
    assert {"openai", "anthropic", "emulator"} <= set(c.providers)


def test_the_default_database_is_per_user_not_per_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    expected = f"sqlite:///{tmp_path / 'data' / 'llmesh' / 'llmesh.db'}"
    assert expected.startswith("sqlite:////")  # an absolute path
    assert load_config(env={}).database_url == expected
    assert Config().database_url == expected
    assert load_config(env={"LLMESH_DATABASE_URL": "sqlite:///x.db"}).database_url == (
        "sqlite:///x.db"
    )
    (tmp_path / "c.yaml").write_text("ledger: {url: 'sqlite:////elsewhere/l.db'}\n")
    assert load_config(tmp_path / "c.yaml", env={}).database_url == "sqlite:////elsewhere/l.db"


def test_example_file_loads() -> None:
    c = load_config(ROOT / "llmesh.example.yaml", env={})
    assert c.providers["ollama"].kind == "openai-compatible"
    local = c.providers["local"]  # present by default when the local extra is installed
    assert (local.kind, local.max_batch, local.batch_wait) == ("local", 32, 0.002)
    assert c.aliases["fast"] == "openai/gpt-4o-mini"


def test_environment_overrides(tmp_path: Path) -> None:
    c = load_config(
        ROOT / "llmesh.example.yaml",
        env={"LLMESH_GATEWAY_PORT": "9999", "LLMESH_ORCHESTRATOR_ADDRESS": "127.0.0.1:1"},
    )
    assert c.gateway_port == 9999 and c.orchestrator_address == "127.0.0.1:1"


@pytest.mark.parametrize(
    "text",
    [
        "nonsense: 1",
        "providers: {x: {kind: martian}}",
        "providers: {x: {kind: openai-compatible}}",
        "providers: {x: {kind: openai, colour: red}}",
        "aliases: {fast: gpt-4o}",
        "- a list",
        'auth: {allow_unauthenticated: "false"}',  # a string is not a yes or a no
        "gateway: {drop_params: logprobs}",  # a list of names, not one
        'gateway: {drop_params: [logprobs, ""]}',
        "gateway: {drop_params: [1]}",
        "gateway: {response_ttl_days: -1}",
        "gateway: {response_ttl_days: .nan}",
        "gateway: {response_ttl_days: soon}",
        "providers: {local: {kind: local, max_batch: 0}}",
        "providers: {local: {kind: local, batch_wait: -1}}",
        'providers: {local: {kind: local, batch_wait: "soon"}}',
    ],
)
def test_invalid_files_are_rejected_clearly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path, env={})


def test_gateway_drop_params(tmp_path: Path) -> None:
    assert load_config(None, env={}).gateway_drop_params == ()
    path = tmp_path / "c.yaml"
    path.write_text("gateway: {drop_params: [parallel_tool_calls, logprobs]}")
    assert load_config(path, env={}).gateway_drop_params == ("parallel_tool_calls", "logprobs")


def test_route_drop_params_and_unknown_fields(tmp_path: Path) -> None:
    assert load_config(None, env={}).gateway_unknown_fields == "reject"
    path = tmp_path / "c.yaml"
    path.write_text(
        "gateway: {unknown_fields: drop}\n"
        "routes:\n"
        "  lenient: {targets: [emulator/echo], drop_params: [logprobs, verbosity]}\n"
        "  strict: [emulator/echo]\n"
    )
    c = load_config(path, env={})
    assert c.gateway_unknown_fields == "drop"
    assert c.routes["lenient"].drop_params == ("logprobs", "verbosity")
    assert c.routes["strict"].drop_params == ()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("gateway: {unknown_fields: ignore}", "gateway.unknown_fields"),
        ("gateway: {unknown_fields: true}", "gateway.unknown_fields"),
        ("routes: {r: {targets: [emulator/echo], drop_params: logprobs}}", "routes.r.drop_params"),
        ("routes: {r: {targets: [emulator/echo], drop_params: [2]}}", "routes.r.drop_params"),
    ],
)
def test_bad_drop_settings_name_their_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path, env={})


def test_gateway_response_ttl_days(tmp_path: Path) -> None:
    from llmesh.gateway.settings import GatewaySettings

    default = load_config(None, env={})
    assert default.gateway_response_ttl_days == 30
    assert GatewaySettings.from_config(default).response_store_url == default.database_url
    path = tmp_path / "c.yaml"
    path.write_text("gateway: {response_ttl_days: 0.5}")
    assert GatewaySettings.from_config(load_config(path, env={})).response_ttl == 43200
    path.write_text("gateway: {response_ttl_days: 0}")
    assert GatewaySettings.from_config(load_config(path, env={})).response_store_url is None


def test_sdk_providers_fall_back_to_the_emulator_without_credentials(tmp_path: Path) -> None:
    c = load_config(None, env={})
    openai = resolve_provider(c.providers["openai"], c.emulator, env={})
    anthropic = resolve_provider(c.providers["anthropic"], c.emulator, env={})
    assert openai.uses_emulator and openai.base_url == "http://127.0.0.1:8090/v1"
    assert anthropic.uses_emulator and anthropic.base_url == "http://127.0.0.1:8090"


def test_sdk_environment_variables_are_honoured() -> None:
    c = load_config(None, env={})
    env = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": "http://127.0.0.1:1"}
    openai = resolve_provider(c.providers["openai"], c.emulator, env=env)
    assert (openai.api_key, openai.base_url, openai.uses_emulator) == (
        "sk-test",
        "https://api.openai.com/v1",
        False,
    )
    anthropic = resolve_provider(c.providers["anthropic"], c.emulator, env=env)
    assert anthropic.base_url == "http://127.0.0.1:1" and not anthropic.uses_emulator


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "resilience: {retry: {max_attempts: x}}",
            "resilience.retry.max_attempts: expected an integer >= 1, got 'x'",
        ),
        (
            "resilience: {retry: {max_attempts: 0}}",
            "resilience.retry.max_attempts: expected an integer >= 1, got 0",
        ),
        (
            "resilience: {breaker: {reset_timeout: -1}}",
            "resilience.breaker.reset_timeout: expected a number >= 0, got -1",
        ),
        (
            "resilience: {breaker: {counted_reasons: [OVERLOADED, NOPE]}}",
            "resilience.breaker.counted_reasons: unknown Reason 'NOPE'",
        ),
        (
            "resilience: {breaker: {redis_url: 6379}}",
            "resilience.breaker.redis_url: expected a string, got 6379",
        ),
        (
            "resilience: {retry: {budget_window: 0}}",
            "resilience.retry.budget_window: expected a number > 0, got 0",
        ),
        (
            "resilience: {retry: {budget_colour: 1}}",
            "resilience.retry: unknown keys ['budget_colour']",
        ),
        (
            "resilience: {queue: {max_concurrency: 1.5}}",
            "resilience.queue.max_concurrency: expected an integer >= 0, got 1.5",
        ),
        ("resilience: {queue: [1]}", "resilience.queue: expected a mapping, got [1]"),
        ("resilience: {hedging: {}}", "resilience: unknown keys ['hedging']"),
        (
            "budgets: {tenants: {'*': {daily_usd: -1}}}",
            "budgets.tenants.*.daily_usd: expected a number >= 0, got -1",
        ),
        (
            "budgets: {sessions: {daily_usd: lots}}",
            "budgets.sessions.daily_usd: expected a number >= 0, got 'lots'",
        ),
        ("budgets: {weekly: {}}", "budgets: unknown keys ['weekly']"),
        (
            "rate_limits: {keys: {k1: {requests_per_minute: 0.5}}}",
            "rate_limits.keys.k1.requests_per_minute: expected a number >= 1, got 0.5",
        ),
        (
            "rate_limits: {targets: {x: {burst: 3}}}",
            "rate_limits.targets.x: unknown keys ['burst']",
        ),
        (
            "rate_limits: {tenants: [a]}",
            "rate_limits.tenants: expected a mapping of name -> settings, got ['a']",
        ),
        (
            "cache: {response: {enabled: 'no'}}",
            "cache.response.enabled: expected true or false, got 'no'",
        ),
        ("cache: {response: {ttl: 0}}", "cache.response.ttl: expected a number > 0, got 0"),
        (
            "cache: {response: {max_entries: 0}}",
            "cache.response.max_entries: expected an integer >= 1, got 0",
        ),
        (
            "prices: {'openai/gpt-4o': {input: -2}}",
            "prices.openai/gpt-4o.input: expected a number >= 0, got -2",
        ),
        (
            "prices: {'openai/gpt-4o': {max_output_tokens: 1.5}}",
            "prices.openai/gpt-4o.max_output_tokens: expected an integer >= 1, got 1.5",
        ),
        ("prices: {'openai/gpt-4o': {colour: 1}}", "prices.openai/gpt-4o: unknown keys ['colour']"),
        (
            "prices: {gpt-4o: {input: 1, output: 2}}",
            "prices.gpt-4o: expected a 'provider/model' or 'provider/*' key",
        ),
        ("gateway: {port: eighty}", "gateway.port: expected an integer, got 'eighty'"),
        ("ledger: {flush_interval: soon}", "ledger.flush_interval: expected a number, got 'soon'"),
        ("ledger: {lease: 0}", "ledger.lease: expected a number > 0, got 0.0"),
        ("orchestrator: [a]", "orchestrator: expected a mapping, got ['a']"),
    ],
)
def test_bad_values_fail_at_load_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value) == message


def test_sections_load_typed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "resilience:\n"
        "  breaker: {fail_max: 2, reset_timeout: 60, counted_reasons: [OVERLOADED]}\n"
        "  retry: {max_attempts: 1, budget_ratio: 0.5, budget_min_retries: 7}\n"
        "  queue: {max_concurrency: 4}\n"
        "budgets: {tenants: {'*': {daily_usd: 20}}, sessions: {daily_usd: 1}}\n"
        "rate_limits: {targets: {'openai/gpt-4o': {requests_per_minute: 60}}, redis_url: r}\n"
        "cache: {response: {enabled: false, ttl: 5}}\n"
        "prices: {'ollama/*': {input: 0, output: 0}, 'openai/gpt-4o': {max_output_tokens: 8}}\n"
    )
    c = load_config(path, env={})
    assert c.resilience == Resilience(
        breaker=BreakerSettings(
            fail_max=2, reset_timeout=60.0, counted_reasons=frozenset({Reason.OVERLOADED})
        ),
        retry=RetrySettings(max_attempts=1),
        budget=RetryBudgetSettings(ratio=0.5, min_retries=7),
        queue=QueueSettings(max_concurrency=4),
    )
    assert isinstance(c.resilience.breaker.reset_timeout, float)  # 60 in YAML
    assert c.policy.budgets.tenants == {"*": BudgetCaps(daily_usd=20.0)}
    assert c.policy.budgets.sessions == BudgetCaps(daily_usd=1.0)
    assert c.policy.budgets.keys == {} and c.policy.budgets.redis_url is None
    assert c.policy.rate_limits.targets == {"openai/gpt-4o": Limit(requests_per_minute=60.0)}
    assert c.policy.rate_limits.redis_url == "r"
    assert c.policy.cache.response == ResponseCacheConfig(enabled=False, ttl=5.0)
    assert c.policy.prices == {
        "ollama/*": PriceOverride(input=0.0, output=0.0),
        "openai/gpt-4o": PriceOverride(max_output_tokens=8),
    }


def test_each_default_is_declared_once_on_the_dataclass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty file (and no environment) gives exactly the dataclass's defaults."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty.yaml").write_text("")
    loaded = load_config(tmp_path / "empty.yaml", env={})
    declared = Config()
    for f in fields(Config):
        if f.name in ("providers", "source"):  # built-ins added at load; where it was read
            continue
        assert getattr(loaded, f.name) == getattr(declared, f.name), f.name
    assert loaded.source == str(tmp_path / "empty.yaml")
    assert loaded.resilience == Resilience() and loaded.policy == PolicyConfig()


def test_the_example_file_states_the_defaults() -> None:
    """llmesh.example.yaml documents the defaults: loading it changes none of the resilience
    or response cache settings (its budgets, limits and prices are examples)."""
    c = load_config(ROOT / "llmesh.example.yaml", env={})
    assert c.resilience == Resilience()
    assert c.policy.cache == Config().policy.cache
    default = Config()
    assert (c.orchestrator_address, c.processor_address) == (
        default.orchestrator_address,
        default.processor_address,
    )
    assert (c.gateway_host, c.gateway_port, c.emulator) == (
        default.gateway_host,
        default.gateway_port,
        default.emulator,
    )
    assert (c.max_message_bytes, c.ledger_flush_interval, c.allow_unauthenticated) == (
        default.max_message_bytes,
        default.ledger_flush_interval,
        default.allow_unauthenticated,
    )


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^LLMESH_GATEWAY_PORT: expected an integer, got 'x'$"):
        load_config(None, env={"LLMESH_GATEWAY_PORT": "x"})
    with pytest.raises(ConfigError, match=r"^LLMESH_EMULATOR_PORT: expected an integer"):
        load_config(None, env={"LLMESH_EMULATOR_PORT": "8o90"})
    assert load_config(None, env={"LLMESH_EMULATOR_PORT": "8091"}).emulator.port == 8091


def test_admin_tenants_are_read_from_the_auth_section(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("auth: {admin_tenants: [ops, sre]}")
    assert load_config(path, env={}).admin_tenants == ("ops", "sre")
    assert load_config(env={}).admin_tenants == ()
    for bad in ("auth: {admin_tenants: ops}", 'auth: {admin_tenants: [""]}'):
        path.write_text(bad)
        with pytest.raises(ConfigError, match=r"auth\.admin_tenants"):
            load_config(path, env={})
