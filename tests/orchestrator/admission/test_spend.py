"""A call's worst-case bounds: never below what a provider counts or can produce."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ChatRequest, Message, Role, Tool, ToolCall
from llmesh.services.core.events import CallEvent, Started, TextDelta
from llmesh.services.core.target import Target
from llmesh.services.core.trail import AttemptRecord, Outcome
from llmesh.services.core.usage import Usage
from llmesh.services.emulator.anthropic_parse import parse_messages
from llmesh.services.emulator.openai_parse import parse_chat
from llmesh.services.emulator.replies import input_tokens
from llmesh.services.ledger import PriceTable
from llmesh.services.orchestrator.admission import BudgetCaps, BudgetManager
from llmesh.services.orchestrator.admission.spend import (
    DEFAULT_MAX_OUTPUT,
    CallSpend,
    input_bound,
    open_spend,
    output_bound,
)
from llmesh.services.orchestrator.layers.admission import rough_input_tokens
from llmesh.services.orchestrator.providers import anthropic_wire, openai_wire
from llmesh.services.processor.tokenizers import REPLY_PRIMING, TOKENS_PER_MESSAGE, Tokenizers

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
    return ChatRequest(messages=messages, tools=tools)


def _emulator_counts(request: ChatRequest) -> tuple[int, int]:
    """What the emulator reports as prompt_tokens (OpenAI) and input_tokens (Anthropic)."""
    openai_body = openai_wire.to_provider_request("gpt-4o-mini", request)
    anthropic_body = anthropic_wire.to_provider_request("gpt-4o-mini", request)
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
    request = ChatRequest(messages=(Message(Role.USER, "hi"),))
    assert output_bound(prices, mini, request) == (16_384, True)
    assert output_bound(prices, tiny, request) == (100, True)
    assert output_bound(prices, unknown, request) == (DEFAULT_MAX_OUTPUT, False)
    capped = ChatRequest(messages=request.messages, max_tokens=500)
    assert output_bound(prices, mini, capped) == (500, True)
    assert output_bound(prices, tiny, capped) == (100, True)  # the model stops first
    assert output_bound(prices, unknown, capped) == (500, True)


# -- a call's hold: grown before each further attempt and as an unbounded reply streams --

PRICES = PriceTable.defaults().with_overrides(
    {
        "openai/open-ended": {"input": 0, "output": 1000},  # no known output limit
        "openai/bounded": {"input": 0, "output": 1000, "max_output_tokens": 1000},
    }
)
HI = ChatRequest(messages=(Message(Role.USER, "hi"),))


async def _spend(cap: float, target: Target) -> tuple[BudgetManager, CallSpend]:
    budgets = BudgetManager()
    budgets.set_caps("tenant:t", BudgetCaps(daily_usd=cap))

    def cost_of(record: AttemptRecord) -> float:
        if record.usage is None:
            return 0.0
        return PRICES.cost(record.target.provider, record.target.model, record.usage)

    spend = await open_spend(budgets, ["tenant:t"], PRICES, [target], HI, cost_of)
    return budgets, spend


async def _deltas(n: int, size: int) -> AsyncGenerator[CallEvent, None]:
    yield Started("req_1", "openai", "open-ended")
    for _ in range(n):
        yield TextDelta("w" * size)


async def test_an_unbounded_reply_extends_its_hold_then_is_stopped() -> None:
    open_ended = Target("openai", "open-ended")
    budgets, spend = await _spend(10.0, open_ended)
    assert spend.held == pytest.approx(4.096)  # DEFAULT_MAX_OUTPUT tokens at $0.001
    await spend.admit(AttemptRecord(open_ended, 0.0), HI)  # the first attempt is covered
    assert spend.held == pytest.approx(4.096)
    seen = 0
    with pytest.raises(LlmeshError) as info:
        async for event in spend.watch(_deltas(20, 1000)):
            seen += len(event.text) if isinstance(event, TextDelta) else 0
    assert seen == 8000  # 4,096 held, then 8,192; the ninth kilobyte would need 12,288
    assert spend.held == pytest.approx(8.192)
    assert info.value.reason is Reason.BUDGET_EXCEEDED
    assert "openai/open-ended was stopped after 9000 bytes" in info.value.message
    assert info.value.metadata["quota.subject"] == "tenant:t"
    await spend.settle(3.0)
    assert await budgets.spent("tenant:t") == (3.0, 3.0)
    assert (await budgets.reserve(["tenant:t"], 7.0)).amount == 7.0  # the hold was freed


async def test_a_bounded_reply_is_not_counted() -> None:
    bounded = Target("openai", "bounded")
    _, spend = await _spend(1.0, bounded)
    await spend.admit(AttemptRecord(bounded, 0.0), HI)
    events = [e async for e in spend.watch(_deltas(20, 1000))]
    assert len(events) == 21 and spend.held == pytest.approx(1.0)


async def test_each_further_attempt_is_held_before_it_is_sent() -> None:
    bounded = Target("openai", "bounded")
    _, spend = await _spend(2.3, bounded)
    first = AttemptRecord(bounded, 0.0)
    await spend.admit(first, HI)
    first.usage = Usage(output_tokens=400)  # cut after 400 tokens: $0.40 spent
    first.finish(Outcome.FAILED, 1.0, Reason.STREAM_INTERRUPTED)
    restart = AttemptRecord(bounded, 1.0)
    await spend.admit(restart, HI)
    assert spend.held == pytest.approx(1.4)  # what the first cost + the restart's worst case
    hedge = AttemptRecord(bounded, 1.5, hedged=True)
    with pytest.raises(LlmeshError) as info:
        await spend.admit(hedge, HI)  # 1.4 held + 1.0 more would break the 2.3 cap
    assert info.value.reason is Reason.BUDGET_EXCEEDED
    assert info.value.message.startswith("a hedge at openai/bounded was not sent")
    assert spend.held == pytest.approx(1.4)
