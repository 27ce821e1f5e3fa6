"""A call's worst-case bounds: never below what a provider counts or can produce."""

from __future__ import annotations

import pytest

from services.emulator.anthropic_parse import parse_messages
from services.emulator.openai_parse import parse_chat
from services.emulator.replies import input_tokens
from services.ledger import PriceTable
from services.orchestrator.admission.spend import DEFAULT_MAX_OUTPUT, input_bound, output_bound
from services.orchestrator.domain import ChatRequest, Message, Role, Tool, ToolCall
from services.orchestrator.pipeline import rough_input_tokens
from services.orchestrator.providers import anthropic_wire, openai_wire
from services.orchestrator.routing import Target
from services.processor.tokenizers import REPLY_PRIMING, TOKENS_PER_MESSAGE, Tokenizers

WORDS = " ".join("abcdefghij")  # ten one-letter words: ten tokens in 19 characters

PROMPTS = {
    "short words": (Message(Role.SYSTEM, "Be brief"), Message(Role.USER, WORDS)),
    "prose": (Message(Role.USER, "The quick brown fox jumps over the lazy dog. " * 20),),
    "spaces and lines": (Message(Role.USER, "a  b\n\n c\t\td   \n" * 30),),
    "non-ascii": (Message(Role.USER, "日本語のテキスト、絵文字 🎉🎉 and ünïcödé " * 10),),
    "numbers and code": (Message(Role.USER, "x[i] = f(3.14159, 0x1f) + 12345678901;\n" * 15),),
    "a tool round": (
        Message(Role.USER, "what is the weather in Paris?"),
        Message(
            Role.ASSISTANT,
            "",
            tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Paris"}'),),
        ),
        Message(Role.TOOL, "sunny, 21 degrees", tool_call_id="call_1"),
    ),
}
TOOLS = (
    Tool(
        "get_weather",
        "The weather in a city",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    ),
)


def _request(messages: tuple[Message, ...]) -> ChatRequest:
    tools = TOOLS if any(m.tool_calls for m in messages) else ()
    return ChatRequest(model="gpt-4o-mini", messages=messages, tools=tools)


def _emulator_counts(request: ChatRequest) -> tuple[int, int]:
    """What the emulator reports as prompt_tokens (OpenAI) and input_tokens (Anthropic)."""
    openai_body = openai_wire.to_provider_request(request)
    anthropic_body = anthropic_wire.to_provider_request(request)
    return (
        input_tokens(parse_chat(openai_body).conv),
        input_tokens(parse_messages(anthropic_body, count_only=True).conv),
    )


@pytest.fixture(scope="module")
def o200k() -> Tokenizers:
    tokenizers = Tokenizers()
    tokenizers.for_encoding("o200k_base")
    return tokenizers


@pytest.mark.parametrize("name", sorted(PROMPTS))
def test_input_bound_is_never_below_what_providers_count(name: str, o200k: Tokenizers) -> None:
    request = _request(PROMPTS[name])
    bound = input_bound(request)
    openai_count, anthropic_count = _emulator_counts(request)
    counter = o200k.for_model("gpt-4o-mini")
    exact = REPLY_PRIMING + sum(
        TOKENS_PER_MESSAGE + counter.message_tokens(m) for m in request.messages
    )
    assert bound >= max(openai_count, anthropic_count, exact)


def test_the_old_estimate_counted_fewer_tokens_than_the_provider() -> None:
    request = _request(PROMPTS["short words"])
    openai_count, _ = _emulator_counts(request)
    assert rough_input_tokens("openai/gpt-4o-mini", request) < openai_count  # the defect
    assert input_bound(request) >= openai_count


def test_output_bound_is_max_tokens_else_the_model_limit_else_the_watched_default() -> None:
    prices = PriceTable.defaults().with_overrides(
        {"openai/tiny": {"input": 1, "output": 1, "max_output_tokens": 100}}
    )
    mini, tiny = Target("openai", "gpt-4o-mini"), Target("openai", "tiny")
    unknown = Target("openai", "no-limit-known")
    request = ChatRequest(model="m", messages=(Message(Role.USER, "hi"),))
    assert output_bound(prices, mini, request) == (16_384, True)
    assert output_bound(prices, tiny, request) == (100, True)
    assert output_bound(prices, unknown, request) == (DEFAULT_MAX_OUTPUT, False)
    capped = ChatRequest(model="m", messages=request.messages, max_tokens=500)
    assert output_bound(prices, mini, capped) == (500, True)
    assert output_bound(prices, tiny, capped) == (100, True)  # the model stops first
    assert output_bound(prices, unknown, capped) == (500, True)
