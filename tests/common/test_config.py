from pathlib import Path

import pytest

from services.common.config import Config, ConfigError, load_config, resolve_provider

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
    ],
)
def test_invalid_files_are_rejected_clearly(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        load_config(path, env={})


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
