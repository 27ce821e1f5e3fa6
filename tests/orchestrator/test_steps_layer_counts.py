"""The fit step with a target whose provider counts input tokens itself (Anthropic's
count_tokens), in the steps layer against a real processor: its count decides, only
redacted texts are counted, a trimmed conversation is counted again until it fits, and a
count that fails leaves the estimate, marked as such."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.common.model_settings import ModelCapabilities
from llmesh.services.common.step_settings import parse_steps
from llmesh.services.core.call import Call, RoutedCall
from llmesh.services.core.chat import ChatRequest, FinishReason, Message, Role
from llmesh.services.core.events import CallEvent, Completed, TextDelta
from llmesh.services.core.policy import Policy
from llmesh.services.core.target import Target
from llmesh.services.core.trail import Trail
from llmesh.services.core.usage import Usage
from llmesh.services.orchestrator.layers.steps import Processed
from llmesh.services.orchestrator.model_catalog import ModelCatalog
from llmesh.services.orchestrator.steps import ProcessorClient
from llmesh.services.processor.server import serve
from llmesh.services.processor.tokenizers import Tokenizers

TARGET = Target("anthropic", "claude-fit")
WINDOW, RESERVE = 400, 100


class Inner:
    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    def stream(self, call: RoutedCall[Any]) -> AsyncGenerator[CallEvent, None]:
        self.requests.append(call.request)
        return self._events()

    async def _events(self) -> AsyncGenerator[CallEvent, None]:
        yield TextDelta("ok")
        yield Completed(FinishReason.STOP, "stop", Usage())


class Counter:
    """A provider that counts: `per_word` tokens a word plus 3 a message (or fails)."""

    def __init__(self, per_word: int = 1, error: LlmeshError | None = None) -> None:
        self.per_word, self.error = per_word, error
        self.seen: list[tuple[str, ChatRequest]] = []

    async def count_tokens(
        self, model: str, request: ChatRequest, *, timeout: float | None
    ) -> int | None:
        self.seen.append((model, request))
        if self.error is not None:
            raise self.error
        return sum(3 + self.per_word * len(m.content.split()) for m in request.messages)


@pytest.fixture
async def client() -> AsyncIterator[ProcessorClient]:
    running = await serve("127.0.0.1:0", tokenizers=Tokenizers())
    processor = ProcessorClient(f"127.0.0.1:{running.port}")
    yield processor
    await processor.aclose()
    await running.stop(None)


def _conversation(turns: int) -> tuple[Message, ...]:
    out = [Message(Role.SYSTEM, "be brief")]
    for i in range(turns):
        out.append(Message(Role.USER, f"turn {i} mail ann@example.com " + "word " * 20))
        out.append(Message(Role.ASSISTANT, f"noted {i}"))
    out.append(Message(Role.USER, "the question"))
    return tuple(out)


def _layer(inner: Inner, client: ProcessorClient, counter: Counter, pre: list[str]) -> Processed:
    steps = parse_steps("r", {"pre": pre, "fit": {"reserve_output": RESERVE}})
    caps = {TARGET.name: ModelCapabilities(context_window=WINDOW, max_output_tokens=100)}
    return Processed(
        inner,
        steps_for={"r": steps}.get,
        client=client,
        catalog=lambda: ModelCatalog(caps),
        counts=lambda provider: counter if provider == "anthropic" else None,  # type: ignore[arg-type,return-value]
    )


def _routed(turns: int) -> RoutedCall[ChatRequest]:
    call = Call("r", ChatRequest(messages=_conversation(turns)))
    return RoutedCall(call, (TARGET,), Policy(), "req_1", Trail(time.monotonic()), timeout=30)


async def test_the_provider_s_count_decides_and_only_redacted_texts_are_counted(
    client: ProcessorClient,
) -> None:
    inner, counter, call = Inner(), Counter(), _routed(5)
    await _layer(inner, client, counter, ["redact", "fit"]).stream(call).__anext__()
    (model, counted), *_ = counter.seen
    assert model == "claude-fit" and len(counter.seen) == 1
    assert all("ann@example.com" not in m.content for m in counted.messages)
    assert "<EMAIL_1>" in counted.messages[1].content
    exact = sum(3 + len(m.content.split()) for m in counted.messages)
    notes = call.trail.notes or []
    assert notes[0].startswith("redact: pseudonymize ")
    assert notes[1].startswith(f"fit: fits budget=300 estimated=0 tokens={exact} (")
    assert inner.requests[0].messages == counted.messages  # sent whole, as counted


async def test_a_trimmed_conversation_is_counted_again_until_it_fits(
    client: ProcessorClient,
) -> None:
    inner, counter, call = Inner(), Counter(per_word=3), _routed(8)
    await _layer(inner, client, counter, ["fit"]).stream(call).__anext__()
    notes = call.trail.notes or []
    assert notes[0].startswith("fit: trim budget=300 dropped_messages=")
    assert " estimated=0 " in notes[0]
    assert notes[-1].startswith("fit: fits budget=300 estimated=0 tokens=")
    sent = inner.requests[0].messages
    assert sent[0] == _conversation(8)[0] and sent[-1] == _conversation(8)[-1]
    assert sum(3 + 3 * len(m.content.split()) for m in sent) <= 300  # as the provider counts
    assert counter.seen[-1][1].messages == sent and len(counter.seen) >= 2


async def test_a_count_that_fails_leaves_the_estimate_marked_as_such(
    client: ProcessorClient,
) -> None:
    inner, call = Inner(), _routed(2)
    counter = Counter(error=LlmeshError(Reason.OVERLOADED, "busy"))
    await _layer(inner, client, counter, ["fit"]).stream(call).__anext__()
    notes = call.trail.notes or []
    assert notes[0] == "fit: count by anthropic failed (OVERLOADED); estimated"
    assert notes[1].startswith("fit: fits budget=300 estimated=1 tokens=")


async def test_a_last_turn_too_long_as_the_provider_counts_it_is_never_sent(
    client: ProcessorClient,
) -> None:
    inner, call = Inner(), _routed(3)
    with pytest.raises(LlmeshError) as info:
        await _layer(inner, client, Counter(per_word=40), ["fit"]).stream(call).__anext__()
    assert info.value.reason is Reason.CONTEXT_TOO_LONG and inner.requests == []
