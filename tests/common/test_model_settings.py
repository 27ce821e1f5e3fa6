"""The ``capabilities``, ``roles`` and ``tenants`` sections and ``routes.<name>.downgrade``."""

from pathlib import Path

import pytest

from llmesh.services.common.config import Config, ConfigError, load_config
from llmesh.services.common.model_settings import ModelCapabilities
from llmesh.services.common.step_settings import RedactionMode


def _load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return load_config(path, env={})


def test_capabilities_roles_tenants_and_downgrade_load(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
capabilities:
  ollama/llava: {vision: true, context_window: 4096}
  ollama/*: {tools: false}
roles: {summarize: openai/gpt-4o-mini, reason: anthropic/claude-sonnet-4-5}
tenants:
  acme: {roles: {summarize: emulator/echo}}
routes:
  smart: {targets: [openai/gpt-4o], downgrade: openai/gpt-4o-mini}
  many: {targets: [openai/gpt-4o], downgrade: [openai/gpt-4.1-mini, openai/gpt-4o-mini]}
""",
    )
    models = config.models
    assert models.capabilities["ollama/llava"] == ModelCapabilities(
        vision=True, context_window=4096
    )
    assert models.capabilities["ollama/*"].tools is False
    assert models.roles["summarize"] == "openai/gpt-4o-mini"
    assert models.tenant_roles == {"acme": {"summarize": "emulator/echo"}}
    assert config.routes["smart"].downgrade == ("openai/gpt-4o-mini",)
    assert config.routes["many"].downgrade == ("openai/gpt-4.1-mini", "openai/gpt-4o-mini")
    assert load_config(None, env={}).models.roles == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("capabilities: {llava: {vision: true}}", "capabilities.llava: expected a provider/model"),
        ("capabilities: {a/b: {vision: 3}}", "capabilities.a/b.vision"),
        ("capabilities: {a/b: {sight: true}}", "capabilities.a/b"),
        ("capabilities: {a/b: {context_window: 0}}", "capabilities.a/b.context_window"),
        ("roles: {summarize: 3}", "roles.summarize: expected a model name"),
        ("roles: {summarize: 'role:other'}", "roles.summarize"),
        ("tenants: {acme: {tier: 1}}", "tenants.acme: expected a mapping with roles"),
        ("tenants: {acme: {roles: {x: ''}}}", "tenants.acme.roles.x"),
        ("tenants: {acme: {steps: {pre: [translate]}}}", "tenants.acme.steps.pre"),
        ("tenants: {acme: {steps: {redact: {}}}}", "tenants.acme.steps.redact"),
        ("routes: {r: {targets: [a/b], downgrade: 3}}", "routes.r.downgrade"),
    ],
)
def test_bad_values_name_their_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)
    assert message in str(raised.value)


def test_tenant_steps_load(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        """
tenants:
  acme:
    roles: {summarize: emulator/echo}
    steps: {pre: [redact], redact: {mode: mask, detectors: [email]}, post: [redact_output]}
  other: {roles: {summarize: emulator/echo}}
""",
    )
    steps = config.models.tenant_steps["acme"]
    assert steps.pre == ("redact",) and steps.post == ("redact_output",)
    assert steps.redact.mode is RedactionMode.MASK and steps.redact.detectors == ("email",)
    assert "other" not in config.models.tenant_steps
