import pytest

from services.common.config import ProviderConfig
from services.common.errors import LlmeshError, Reason
from services.orchestrator.routing import Router, Target

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
