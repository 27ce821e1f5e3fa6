"""Anthropic beta features: allowed per route (``routes.<name>.anthropic_beta``), refused by
name otherwise, before anything is sent."""

from pathlib import Path

import pytest

from llmesh.services.common.config import ConfigError, ProviderConfig, RouteConfig, load_config
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.call import ChatCall
from llmesh.services.core.chat import ChatRequest, Message, Role
from llmesh.services.orchestrator.routing import Router

PROVIDERS = {"anthropic": ProviderConfig("anthropic", "anthropic", models=("claude-x",))}
BETA = "context-1m-2025-08-07"
ROUTES = {
    "long": RouteConfig("long", ("anthropic/claude-x",), anthropic_beta=(BETA,)),
    "plain": RouteConfig("plain", ("anthropic/claude-x",)),
}


def _call(model: str, *betas: str) -> ChatCall:
    return ChatCall(model, ChatRequest((Message(Role.USER, "hi"),), anthropic_beta=betas))


def test_a_route_allows_its_betas() -> None:
    routed = Router(PROVIDERS, {}, ROUTES).route(_call("long", BETA))
    assert routed.call.request.anthropic_beta == (BETA,)


@pytest.mark.parametrize(
    ("model", "betas"),
    [("plain", (BETA,)), ("anthropic/claude-x", (BETA,)), ("long", (BETA, "other-beta"))],
)
def test_other_betas_are_refused_by_name(model: str, betas: tuple[str, ...]) -> None:
    with pytest.raises(LlmeshError) as info:
        Router(PROVIDERS, {}, ROUTES).route(_call(model, *betas))
    assert info.value.reason is Reason.INVALID_REQUEST
    assert info.value.violations[0].field == "anthropic_beta"
    assert "anthropic-beta" in info.value.message


def test_without_betas_any_model_routes() -> None:
    assert Router(PROVIDERS, {}, ROUTES).route(_call("anthropic/claude-x")).targets


def test_the_config_reads_the_allowed_betas(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"routes:\n  long:\n    targets: [emulator/echo]\n    anthropic_beta: [{BETA}]\n"
    )
    assert load_config(path, env={}).routes["long"].anthropic_beta == (BETA,)
    path.write_text("routes:\n  long:\n    targets: [emulator/echo]\n    anthropic_beta: yes\n")
    with pytest.raises(ConfigError, match=r"routes\.long\.anthropic_beta"):
        load_config(path, env={})
