from typing import Any

import pytest

from llmesh.services.common.config import ProviderConfig, RouteConfig, parse_route
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.target import Target
from llmesh.services.orchestrator import routing
from llmesh.services.orchestrator.routing import Router

PROVIDERS = {
    "openai": ProviderConfig("openai", "openai", models=("gpt-4o-mini",)),
    "ollama": ProviderConfig("ollama", "openai-compatible", base_url="http://x/v1"),
}


def test_provider_model_names_and_aliases() -> None:
    router = Router(PROVIDERS, {"fast": "openai/gpt-4o-mini"})
    assert router.resolve("openai/gpt-4o-mini") == Target("openai", "gpt-4o-mini")
    assert router.resolve("fast") == Target("openai", "gpt-4o-mini")
    # model ids may themselves contain slashes (e.g. hub names)
    assert router.resolve("ollama/library/llama3:8b") == Target("ollama", "library/llama3:8b")


@pytest.mark.parametrize("name", ["nope/x", "gpt-4o", "openai/", "/gpt"])
def test_unknown_names_are_model_not_found(name: str) -> None:
    with pytest.raises(LlmeshError) as info:
        Router(PROVIDERS, {}).resolve(name)
    assert info.value.reason is Reason.MODEL_NOT_FOUND


def test_entries_list_models_and_aliases_sorted() -> None:
    entries = Router(PROVIDERS, {"fast": "openai/gpt-4o-mini"}).entries()
    assert [e.name for e in entries] == ["fast", "openai/gpt-4o-mini"]
    assert entries[0].alias_for == "openai/gpt-4o-mini"


BOTH = {
    "openai": ProviderConfig("openai", "openai", models=("gpt-4o-mini", "gpt-4o")),
    "azure": ProviderConfig("azure", "openai-compatible", models=("gpt-4o-mini",)),
    "hub": ProviderConfig("hub", "openai-compatible", models=("meta/llama-3",)),
}


def test_a_bare_model_name_listed_by_one_provider_resolves() -> None:
    router = Router(BOTH, {})
    assert router.resolve("gpt-4o") == Target("openai", "gpt-4o")
    assert router.plan("gpt-4o") == ([Target("openai", "gpt-4o")], None)
    # a listed model id may hold a slash without naming a provider
    assert router.resolve("meta/llama-3") == Target("hub", "meta/llama-3")


def test_a_bare_model_name_listed_by_several_providers_names_the_candidates() -> None:
    with pytest.raises(LlmeshError) as info:
        Router(BOTH, {}).plan("gpt-4o-mini")
    assert info.value.reason is Reason.MODEL_NOT_FOUND
    assert "azure/gpt-4o-mini" in info.value.message
    assert "openai/gpt-4o-mini" in info.value.message
    assert info.value.metadata["candidates"] == "azure/gpt-4o-mini,openai/gpt-4o-mini"


def test_aliases_and_routes_win_over_bare_model_names() -> None:
    router = Router(
        BOTH,
        {"gpt-4o": "azure/gpt-4o-mini"},
        {"gpt-4o-mini": RouteConfig("gpt-4o-mini", targets=("openai/gpt-4o",))},
    )
    assert router.resolve("gpt-4o") == Target("azure", "gpt-4o-mini")
    assert router.plan("gpt-4o-mini")[0] == [Target("openai", "gpt-4o")]


def test_a_fit_step_s_unknown_larger_model_fails_at_start() -> None:
    fit = {"strategy": "larger_model", "larger_model": "nope/big"}
    route = parse_route(
        "r", {"targets": ["openai/gpt-4o-mini"], "steps": {"pre": ["fit"], "fit": fit}}
    )
    with pytest.raises(LlmeshError) as info:
        Router(PROVIDERS, {}, {"r": route})
    assert info.value.reason is Reason.MODEL_NOT_FOUND


def test_a_fit_step_s_unknown_summary_model_fails_at_start() -> None:
    fit = {"strategy": "summarize", "summary_model": "nope/cheap"}
    route = parse_route(
        "r", {"targets": ["openai/gpt-4o-mini"], "steps": {"pre": ["fit"], "fit": fit}}
    )
    with pytest.raises(LlmeshError) as info:
        Router(PROVIDERS, {}, {"r": route})
    assert info.value.reason is Reason.MODEL_NOT_FOUND and "nope/cheap" in str(info.value)
    fit["summary_model"] = "cheap"  # another route of the mesh
    cheap = parse_route("cheap", {"targets": ["openai/gpt-4o-mini"]})
    route = parse_route(
        "r", {"targets": ["openai/gpt-4o-mini"], "steps": {"pre": ["fit"], "fit": fit}}
    )
    Router(PROVIDERS, {}, {"r": route, "cheap": cheap})


def test_a_resolved_name_is_remembered_and_an_unknown_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    router = Router(PROVIDERS, {"fast": "openai/gpt-4o-mini"})
    looked_up: list[str] = []
    resolve = routing.resolve_model

    def counting(name: str, *args: Any) -> Any:
        looked_up.append(name)
        return resolve(name, *args)

    monkeypatch.setattr(routing, "resolve_model", counting)
    first = router.resolve("fast")
    assert router.resolve("fast") is first == Target("openai", "gpt-4o-mini")
    for _ in range(2):
        with pytest.raises(LlmeshError):
            router.resolve("nope/model")
    assert looked_up == ["fast", "nope/model", "nope/model"]
