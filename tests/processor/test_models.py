"""Which model names the processor counts for: the ones chat would route."""

from __future__ import annotations

import pytest

from llmesh.services.common.config import RouteConfig, load_config, with_overrides
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.processor.models import ModelNames


@pytest.fixture
def names() -> ModelNames:
    config = with_overrides(
        load_config(None, env={}),
        aliases={"smart": "openai/gpt-4o"},
        routes={"fast": RouteConfig("fast", ("openai/gpt-4.1-mini", "emulator/echo"))},
    )
    return ModelNames.from_config(config)


def test_known_providers_count_any_model(names: ModelNames) -> None:
    assert names.resolve("openai/gpt-4o") == "openai/gpt-4o"
    assert names.resolve("openai/not-released-yet") == "openai/not-released-yet"
    assert names.resolve("anthropic/claude-x") == "anthropic/claude-x"


def test_aliases_and_routes_count_as_their_target(names: ModelNames) -> None:
    assert names.resolve("smart") == "openai/gpt-4o"
    assert names.resolve("fast") == "openai/gpt-4.1-mini"


def test_bare_names_resolve_as_in_chat_else_pick_a_tokenizer_family(names: ModelNames) -> None:
    assert names.resolve("gpt-4o") == "openai/gpt-4o"  # the openai provider lists it
    assert names.resolve("gpt-4") == "gpt-4"  # nobody lists it: its family's tokenizer


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            "nope/x",
            "model 'nope/x': unknown provider 'nope' "
            "(configured: anthropic, emulator, local, openai)",
        ),
        (
            "/x",
            "model '/x' is neither an alias, a provider/model name, nor a model listed by a "
            "provider",
        ),
        (
            "openai/",
            "model 'openai/' is neither an alias, a provider/model name, nor a model listed "
            "by a provider",
        ),
    ],
)
def test_unknown_models_are_not_found_as_in_chat(
    names: ModelNames, model: str, message: str
) -> None:
    with pytest.raises(LlmeshError) as caught:
        names.resolve(model)
    assert caught.value.reason is Reason.MODEL_NOT_FOUND
    assert caught.value.message == message
    assert caught.value.metadata["model"] == model


@pytest.mark.parametrize("model", ["nope/x", "/x", "smart", "fast", "openai/anything"])
def test_same_answer_as_the_orchestrator_router(names: ModelNames, model: str) -> None:
    from llmesh.services.orchestrator.routing import Router

    config = with_overrides(
        load_config(None, env={}),
        aliases={"smart": "openai/gpt-4o"},
        routes={"fast": RouteConfig("fast", ("openai/gpt-4.1-mini", "emulator/echo"))},
    )
    router = Router(config.providers, config.aliases, config.routes)
    try:
        targets, _ = router.plan(model)
    except LlmeshError as exc:
        with pytest.raises(LlmeshError) as caught:
            names.resolve(model)
        assert (caught.value.reason, caught.value.message) == (exc.reason, exc.message)
    else:
        assert names.resolve(model) == targets[0].name
