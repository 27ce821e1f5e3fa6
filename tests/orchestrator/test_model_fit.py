"""Capability-aware routing: the catalog, what a call needs, targets skipped with the reason,
and roles resolved to models."""

from __future__ import annotations

from typing import Any

import pytest

from llmesh.services.common.config import ProviderConfig, RouteConfig
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.model_settings import ModelCapabilities
from llmesh.services.core.call import Call
from llmesh.services.core.caller import Caller
from llmesh.services.core.chat import (
    ChatRequest,
    ImagePart,
    Message,
    ReasoningEffort,
    ResponseFormat,
    ResponseFormatType,
    Role,
    TextPart,
    Tool,
)
from llmesh.services.core.target import Target
from llmesh.services.core.trail import Outcome, Trail, attempt_json
from llmesh.services.ledger import PriceTable
from llmesh.services.orchestrator.model_catalog import ModelCatalog
from llmesh.services.orchestrator.model_fit import fitting_targets, needs
from llmesh.services.orchestrator.roles import Roles
from llmesh.services.orchestrator.routing import Router

PNG = ImagePart(data=b"\x89PNG", media_type="image/png")
TEXT_ONLY = {"openai/text-only": ModelCapabilities(vision=False, context_window=1000)}
PROVIDERS = {
    "openai": ProviderConfig("openai", "openai"),
    "anthropic": ProviderConfig("anthropic", "anthropic"),
}


def _request(*parts: Any, **kw: Any) -> ChatRequest:
    message = Message(Role.USER, parts=parts) if parts else Message(Role.USER, "hi")
    return ChatRequest(messages=(message,), **kw)


def _fit(targets: list[str], request: ChatRequest, trail: Trail | None = None) -> list[str]:
    catalog = ModelCatalog(TEXT_ONLY, PriceTable.defaults())
    trail = trail if trail is not None else Trail(0.0)
    resolved = [Target(*t.split("/")) for t in targets]
    return [t.name for t in fitting_targets(resolved, catalog, request, trail, lambda: 1.0)]


def test_the_catalog_knows_bundled_models_snapshots_and_price_list_limits() -> None:
    catalog = ModelCatalog(prices=PriceTable.defaults())
    mini = catalog.capabilities("openai", "gpt-4o-mini")
    assert (mini.vision, mini.tools, mini.context_window) == (True, True, 128_000)
    assert mini.max_output_tokens == 16_384  # from the price list
    assert catalog.capabilities("openai", "gpt-3.5-turbo").vision is False
    dated = catalog.capabilities("anthropic", "claude-3-5-haiku-20241022")
    assert dated.context_window == 200_000 and dated.audio is False
    assert catalog.capabilities("ollama", "llama3.2") == ModelCapabilities()  # unknown


def test_the_catalog_says_which_models_declare_anything() -> None:
    catalog = ModelCatalog(
        {"ollama/tiny": ModelCapabilities(tools=False)}, prices=PriceTable.defaults()
    )
    assert catalog.limits("openai", "gpt-4o-mini") is True
    assert catalog.limits("ollama", "tiny") is True  # an override
    assert catalog.limits("ollama", "llama3.2") is False
    assert catalog.limits("ollama", "llama3.2") is False  # kept, asked again


def test_overrides_apply_per_model_over_per_provider_over_the_catalog() -> None:
    catalog = ModelCatalog(
        {
            "openai/*": ModelCapabilities(audio=True, context_window=5000),
            "openai/gpt-4o": ModelCapabilities(context_window=7000),
        }
    )
    gpt4o = catalog.capabilities("openai", "gpt-4o")
    assert (gpt4o.audio, gpt4o.context_window, gpt4o.vision) == (True, 7000, True)
    assert catalog.capabilities("openai", "gpt-4o-mini").context_window == 5000


def test_what_a_call_needs() -> None:
    assert needs(_request()) == ()
    tool = Tool("f", parameters={"type": "object"})
    schema = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "s", {"type": "object"})
    asked = _request(
        TextPart("look"),
        PNG,
        tools=(tool,),
        response_format=schema,
        reasoning_effort=ReasoningEffort.LOW,
    )
    assert needs(asked) == ("vision", "tools", "json_schema", "reasoning")
    json_object = ResponseFormat(ResponseFormatType.JSON_OBJECT)
    assert needs(_request(response_format=json_object)) == ()


def test_an_image_call_skips_a_text_only_target_and_says_why() -> None:
    trail = Trail(0.0)
    kept = _fit(["openai/text-only", "openai/gpt-4o-mini"], _request(PNG), trail)
    assert kept == ["openai/gpt-4o-mini"]
    [skipped] = trail.attempts
    assert (skipped.target.name, skipped.outcome) == ("openai/text-only", Outcome.SKIPPED)
    assert skipped.reason is Reason.INVALID_REQUEST
    assert attempt_json(skipped, brief=True)["detail"] == "lacks vision"
    assert _fit(["openai/text-only"], _request()) == ["openai/text-only"]  # text still goes


def test_a_prompt_over_the_context_window_skips_the_target() -> None:
    trail = Trail(0.0)
    long = _request(max_tokens=100)
    long = ChatRequest(messages=(Message(Role.USER, "word " * 1000),), max_tokens=100)
    assert _fit(["openai/text-only", "openai/gpt-4o"], long, trail) == ["openai/gpt-4o"]
    assert "context_window 1000" in trail.attempts[0].detail
    assert _fit(["openai/text-only"], _request(max_tokens=100)) == ["openai/text-only"]


def test_max_tokens_over_the_published_output_limit_skips_the_target() -> None:
    trail = Trail(0.0)
    asked = _request(max_tokens=20_000)
    assert _fit(["openai/gpt-4o-mini", "openai/gpt-4.1"], asked, trail) == ["openai/gpt-4.1"]
    assert "max_output_tokens 16384" in trail.attempts[0].detail


def test_tools_json_schema_and_reasoning_skip_models_without_them() -> None:
    schema = ResponseFormat(ResponseFormatType.JSON_SCHEMA, "s", {"type": "object"})
    assert _fit(["openai/o1-mini", "openai/gpt-4o"], _request(response_format=schema)) == [
        "openai/gpt-4o"
    ]
    tools = (Tool("f"),)
    assert _fit(["openai/o1-mini", "openai/o3"], _request(tools=tools)) == ["openai/o3"]
    effort = _request(reasoning_effort=ReasoningEffort.HIGH)
    assert _fit(["openai/gpt-4o", "openai/o3"], effort) == ["openai/o3"]
    thinking = _request(thinking_budget_tokens=2048, max_tokens=4096)
    assert _fit(["anthropic/claude-3-5-haiku", "anthropic/claude-haiku-4-5"], thinking) == [
        "anthropic/claude-haiku-4-5"
    ]
    # Anthropic models answer a JSON schema (natively or through a forced tool)
    assert _fit(["anthropic/claude-3-haiku"], _request(response_format=schema)) == [
        "anthropic/claude-3-haiku"
    ]


def test_unknown_models_are_never_skipped() -> None:
    asked = _request(PNG, tools=(Tool("f"),), max_tokens=1_000_000)
    assert _fit(["openai/some-new-model"], asked) == ["openai/some-new-model"]


def test_no_capable_target_is_invalid_request_naming_the_capability_and_targets() -> None:
    with pytest.raises(LlmeshError) as raised:
        _fit(["openai/text-only", "openai/gpt-3.5-turbo"], _request(TextPart("see"), PNG))
    err = raised.value
    assert err.reason is Reason.INVALID_REQUEST
    assert "openai/text-only, openai/gpt-3.5-turbo lacks vision" in err.message
    assert err.metadata["capability"] == "vision"
    [violation] = err.violations
    assert violation.field == "messages[0].parts[1].image"


def test_the_router_filters_targets_and_downgrades_before_anything_is_sent() -> None:
    routes = {
        "vision": RouteConfig(
            "vision",
            ("openai/gpt-3.5-turbo", "openai/gpt-4o"),
            downgrade=("openai/gpt-3.5-turbo", "openai/gpt-4o-mini"),
        )
    }
    router = Router(PROVIDERS, {}, routes, ModelCatalog(prices=PriceTable.defaults()))
    routed = router.route(Call("vision", _request(PNG)))
    assert [t.name for t in routed.targets] == ["openai/gpt-4o"]
    assert [t.name for t in routed.downgrade] == ["openai/gpt-4o-mini"]
    assert [a.detail for a in routed.trail.attempts] == ["lacks vision"]
    text = router.route(Call("vision", _request()))
    assert [t.name for t in text.downgrade] == ["openai/gpt-3.5-turbo", "openai/gpt-4o-mini"]


# -- roles --------------------------------------------------------------------------------

ROLES = Roles({"summarize": "openai/gpt-4o-mini", "reason": "o3"}, {"acme": {"reason": "deep"}})


def _role_call(model: str, tenant: str = "default", fallbacks: tuple[str, ...] = ()) -> Call[Any]:
    return Call(model, _request(), fallbacks=fallbacks, caller=Caller(tenant=tenant))


def test_a_role_resolves_to_its_model_and_a_tenant_may_map_it_its_own_way() -> None:
    assert ROLES.resolve(_role_call("role:summarize")).model == "openai/gpt-4o-mini"
    assert ROLES.resolve(_role_call("role:reason")).model == "o3"
    assert ROLES.resolve(_role_call("role:reason", "acme")).model == "deep"
    assert ROLES.resolve(_role_call("role:summarize", "acme")).model == "openai/gpt-4o-mini"
    both = ROLES.resolve(_role_call("emulator/echo", fallbacks=("role:summarize",)))
    assert (both.model, both.fallbacks) == ("emulator/echo", ("openai/gpt-4o-mini",))
    plain = _role_call("openai/gpt-4o")
    assert ROLES.resolve(plain) is plain


def test_an_unknown_role_is_invalid_request_naming_it() -> None:
    with pytest.raises(LlmeshError) as raised:
        ROLES.resolve(_role_call("role:translate"))
    err = raised.value
    assert err.reason is Reason.INVALID_REQUEST
    assert "unknown role 'translate'" in err.message
    assert "reason, summarize" in err.message
    assert err.violations[0].field == "model"


def test_reasoning_is_needed_only_where_the_wire_format_sends_it() -> None:
    thinking = _request(thinking_budget_tokens=2048, max_tokens=4096)
    effort = _request(reasoning_effort=ReasoningEffort.LOW)
    assert needs(thinking, "anthropic") == needs(effort, "openai") == ("reasoning",)
    assert needs(thinking, "openai") == needs(effort, "anthropic") == ()
    router = Router(PROVIDERS, {}, {}, ModelCatalog(prices=PriceTable.defaults()))
    # an OpenAI model ignores a thinking budget, as it always has
    assert [t.name for t in router.route(Call("openai/gpt-4o", thinking)).targets] == [
        "openai/gpt-4o"
    ]
    with pytest.raises(LlmeshError):
        router.route(Call("openai/gpt-4o", effort))
