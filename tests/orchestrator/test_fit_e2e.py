"""The ``fit`` step end to end: gateway -> orchestrator -> processor -> emulator, whose small
test models reject a prompt over their window with the provider's real error.

The processor counts with o200k_base (exact for these gpt-4o-mini names); the emulator
counts whitespace pieces, never more than o200k tokens for this text, so a conversation the
processor fits is one the emulator accepts.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator

import anthropic
import grpc
import httpx
import openai
import pytest

from llmesh.services.common.config import parse_route
from llmesh.services.common.model_settings import ModelCapabilities, ModelSettings
from llmesh.services.ledger.stores import sqlite_path
from llmesh.v1 import chat_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from tests.support.ledger import ledger_record
from tests.support.mesh import Mesh

SMALL, LARGE, CLAUDE = "gpt-4o-mini-1k", "gpt-4o-mini-4k", "claude-fit-1k"
WINDOWS = {SMALL: 1000, LARGE: 4000, CLAUDE: 1000}
LAST = "and now the final question please"
SUMMARY_TOKENS = 100


def _conversation(turns: int = 30) -> list[dict[str, str]]:
    """A system prompt, `turns` exchanges of about 140 tokens, a question."""
    out = [{"role": "system", "content": "You answer briefly."}]
    for i in range(turns):
        words = " ".join(f"word{i}x{j}" for j in range(30))
        out.append({"role": "user", "content": f"turn {i}: {words}"})
        out.append({"role": "assistant", "content": f"noted {i}"})
    out.append({"role": "user", "content": LAST})
    return out


@pytest.fixture(scope="module")
def fit_mesh() -> Iterator[Mesh]:
    target = f"emulator/{SMALL}"
    routes = {
        "trimmed": parse_route("trimmed", {"targets": [target], "steps": {"pre": ["fit"]}}),
        "moved": parse_route(
            "moved",
            {
                "targets": [target],
                "steps": {
                    "pre": ["fit"],
                    "fit": {"strategy": "larger_model", "larger_model": f"emulator/{LARGE}"},
                },
            },
        ),
        "summarized": parse_route(
            "summarized",
            {
                "targets": [target],
                "steps": {
                    "pre": ["fit"],
                    "fit": {
                        "strategy": "summarize",
                        "summary_model": "emulator/echo",
                        "summary_max_tokens": SUMMARY_TOKENS,
                    },
                },
            },
        ),
    }
    # Anthropic's API asks for max_tokens: the adapter's default (4096) would not fit the
    # window, so these routes reserve 100 tokens, which calls without max_tokens are sent
    reserved = {"reserve_output": 100}
    routes["counted"] = parse_route(
        "counted",
        {"targets": [f"anthropic/{CLAUDE}"], "steps": {"pre": ["fit"], "fit": reserved}},
    )
    summarized = {"strategy": "summarize", "summary_model": "emulator/echo", **reserved}
    routes["counted-summary"] = parse_route(
        "counted-summary",
        {
            "targets": [f"anthropic/{CLAUDE}"],
            "steps": {"pre": ["redact", "fit"], "fit": {**summarized, "summary_max_tokens": 50}},
        },
    )
    caps = {
        f"{p}/{m}": ModelCapabilities(context_window=w, max_output_tokens=100)
        for m, w in WINDOWS.items()
        for p in ("emulator", "anthropic")
    }
    caps[f"anthropic/{CLAUDE}"] = ModelCapabilities(context_window=1000, max_output_tokens=400)
    m = Mesh(emulator_windows=WINDOWS).start(
        {"routes": routes, "models": ModelSettings(capabilities=caps)}
    )
    yield m
    m.stop()


async def test_the_unfitted_conversation_is_rejected_by_the_emulator(fit_mesh: Mesh) -> None:
    sdk = openai.AsyncOpenAI(base_url=f"{fit_mesh.emulator_url}/v1", api_key="sk-x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        await sdk.chat.completions.create(model=SMALL, messages=_conversation())  # type: ignore[arg-type]
    await sdk.close()
    assert info.value.code == "context_length_exceeded"
    assert "maximum context length is 1000 tokens" in info.value.message


async def test_an_over_long_conversation_is_trimmed_and_succeeds_through_the_gateway(
    fit_mesh: Mesh,
) -> None:
    async with httpx.AsyncClient(base_url=fit_mesh.gateway_url, timeout=10) as http:
        r = await http.post(
            "/v1/chat/completions",
            json={"model": "trimmed", "messages": _conversation(), "stream": True},
        )
    assert r.status_code == 200, r.text
    chunks = [
        json.loads(line[6:])
        for line in r.text.splitlines()
        if line.startswith("data: {") and '"choices"' in line
    ]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == LAST  # the echo model answers the last user message: it was kept


def _grpc_request(
    model: str, turns: int, max_tokens: int | None = None
) -> orchestrator_pb2.StreamChatRequest:
    roles = {"system": chat_pb2.ROLE_SYSTEM, "user": chat_pb2.ROLE_USER}
    messages = [
        chat_pb2.Message(role=roles.get(m["role"], chat_pb2.ROLE_ASSISTANT), content=m["content"])
        for m in _conversation(turns)
    ]
    return orchestrator_pb2.StreamChatRequest(
        input=chat_pb2.ChatInput(model=model, messages=messages, max_tokens=max_tokens)
    )


async def _steps(
    mesh: Mesh, model: str, turns: int = 30, max_tokens: int | None = None
) -> tuple[str, list[str]]:
    async with grpc.aio.insecure_channel(mesh.orchestrator_address) as ch:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(ch)
        call = stub.StreamChat(_grpc_request(model, turns, max_tokens), timeout=10)
        text = "".join([e.text_delta.text async for e in call if e.HasField("text_delta")])
        trailers = dict(await call.trailing_metadata())
    return text, json.loads(trailers["llmesh-steps"])


async def test_the_trim_decision_is_in_the_trail(fit_mesh: Mesh) -> None:
    text, steps = await _steps(fit_mesh, "trimmed")
    assert text == LAST
    assert len(steps) == 1 and steps[0].startswith("fit: trim budget=900 dropped_messages=")
    counts = dict(kv.split("=") for kv in steps[0].split("(")[0].split()[2:])
    assert int(counts["tokens"]) <= 900 < int(counts["tokens"]) + int(counts["dropped_tokens"])


async def test_the_call_s_max_tokens_is_the_reserve_when_set(fit_mesh: Mesh) -> None:
    text, steps = await _steps(fit_mesh, "trimmed", max_tokens=60)
    assert text == LAST
    assert steps[0].startswith("fit: trim budget=940 ")


async def test_larger_model_moves_the_call_instead_of_trimming(fit_mesh: Mesh) -> None:
    before = fit_mesh.stats()
    text, steps = await _steps(fit_mesh, "moved", turns=20)
    after = fit_mesh.stats()
    assert text == LAST
    assert steps[0].startswith("fit: larger_model budget=3900 estimated=0 tokens=")
    assert "dropped" not in steps[0]
    assert steps[1] == f"fit: emulator/{SMALL} -> emulator/{LARGE}"
    assert _count(after, LARGE) == _count(before, LARGE) + 1
    assert _count(after, SMALL) == _count(before, SMALL)


def _count(stats: dict[str, object], model: str) -> int:
    by_model = stats.get("by_model") or {}
    assert isinstance(by_model, dict)
    entry = by_model.get(model) or {}
    assert isinstance(entry, dict)
    return int(entry.get("requests", 0))


async def test_larger_model_trims_when_the_larger_window_is_too_small_as_well(
    fit_mesh: Mesh,
) -> None:
    text, steps = await _steps(fit_mesh, "moved", turns=30)
    assert text == LAST
    assert steps[0].startswith("fit: larger_model budget=3900 dropped_messages=")
    assert steps[1] == f"fit: emulator/{SMALL} -> emulator/{LARGE}"


async def _summary_calls(mesh: Mesh, parent: str) -> list[str]:
    """The request ids of the ledger rows of summary calls made for `parent`, once written."""
    assert mesh.config is not None
    path = sqlite_path(mesh.config.database_url)
    assert path is not None
    end = time.monotonic() + 5
    while True:
        with sqlite3.connect(path) as db:
            rows = db.execute("SELECT request_id, metadata FROM usage_records").fetchall()
        found = [rid for rid, meta in rows if json.loads(meta).get("llmesh_summary_of") == parent]
        if found or time.monotonic() > end:
            return found
        await asyncio.sleep(0.05)


async def test_an_over_long_conversation_is_summarized_and_succeeds_through_the_gateway(
    fit_mesh: Mesh,
) -> None:
    before = fit_mesh.stats()
    async with httpx.AsyncClient(base_url=fit_mesh.gateway_url, timeout=10) as http:
        r = await http.post(
            "/v1/chat/completions",
            json={"model": "summarized", "messages": _conversation(), "metadata": {"user": "ann"}},
        )
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == LAST
    after = fit_mesh.stats()
    # one call to the small model (accepted: the emulator refuses any over its window), one
    # to the summary model
    assert _count(after, SMALL) == _count(before, SMALL) + 1
    assert _count(after, "echo") == _count(before, "echo") + 1
    parent = r.headers["x-request-id"]
    call = await ledger_record(fit_mesh.config.database_url, parent)  # type: ignore[union-attr]
    (summary_id,) = await _summary_calls(fit_mesh, parent)
    summary = await ledger_record(fit_mesh.config.database_url, summary_id)  # type: ignore[union-attr]
    assert call.route == "summarized" and call.status.value == "ok"
    assert summary.route == "emulator/echo" and summary.status.value == "ok"
    assert (summary.tenant, summary.key_id, summary.user) == (call.tenant, call.key_id, "ann")
    assert summary.output_tokens == SUMMARY_TOKENS  # the summary's max_tokens held
    assert summary.input_tokens > call.input_tokens  # the middle turns went to the summary


async def test_the_summarize_decision_is_in_the_trail(fit_mesh: Mesh) -> None:
    text, steps = await _steps(fit_mesh, "summarized")
    assert text == LAST
    first, summarized, refit = steps
    assert first.startswith("fit: summarize budget=900 estimated=0 summarize_messages=58 ")
    before = int(first.split(" tokens=")[1].split()[0])
    assert before > 900
    counts = dict(kv.split("=") for kv in summarized.split()[2:])
    assert summarized.startswith("fit: summarized messages=58 ")
    assert counts["tokens_before"] == str(before)
    assert int(counts["tokens_after"]) <= 900
    assert counts["summary_model"] == "emulator/echo"
    assert counts["summary_request"].startswith("req_")
    assert refit.startswith(f"fit: fits budget=900 estimated=0 tokens={counts['tokens_after']} ")


async def _claude_count(mesh: Mesh, turns: int) -> int:
    """The conversation's input tokens as the emulator's Anthropic count_tokens counts them."""
    conversation = _conversation(turns)
    sdk = anthropic.AsyncAnthropic(base_url=mesh.emulator_url, api_key="sk-ant-x", max_retries=0)
    counted = await sdk.messages.count_tokens(
        model=CLAUDE,
        system=conversation[0]["content"],
        messages=conversation[1:],  # type: ignore[arg-type]
    )
    await sdk.close()
    return counted.input_tokens


async def test_an_anthropic_target_s_own_count_decides_not_the_estimate(fit_mesh: Mesh) -> None:
    exact = await _claude_count(fit_mesh, 15)
    estimate = await _estimate(fit_mesh, 15)
    assert exact <= 900 < estimate  # the estimate alone would have trimmed this conversation
    text, steps = await _steps(fit_mesh, "counted", turns=15)
    assert text == LAST
    assert steps == [steps[0]] and steps[0].startswith(
        f"fit: fits budget=900 estimated=0 tokens={exact} ("
    )


async def test_an_anthropic_target_s_trimmed_conversation_is_counted_again(fit_mesh: Mesh) -> None:
    assert await _claude_count(fit_mesh, 30) > 1000  # the emulator would refuse it whole
    text, steps = await _steps(fit_mesh, "counted", turns=30)
    assert text == LAST  # the emulator accepted the trimmed conversation
    assert steps[0].startswith("fit: trim budget=900 dropped_messages=")
    assert " estimated=0 " in steps[0]
    final = steps[-1]
    assert final.startswith("fit: fits budget=900 estimated=0 tokens=")
    assert int(final.split("tokens=")[1].split()[0]) <= 900


async def _estimate(mesh: Mesh, turns: int) -> int:
    """The processor's estimate for the Claude model (about four bytes a token)."""
    from llmesh.v1 import processor_pb2, processor_pb2_grpc

    roles = {"system": chat_pb2.ROLE_SYSTEM, "user": chat_pb2.ROLE_USER}
    messages = [
        chat_pb2.Message(role=roles.get(m["role"], chat_pb2.ROLE_ASSISTANT), content=m["content"])
        for m in _conversation(turns)
    ]
    async with grpc.aio.insecure_channel(mesh.processor_address) as ch:
        stub = processor_pb2_grpc.ProcessorServiceStub(ch)
        counted = await stub.CountTokens(
            processor_pb2.CountTokensRequest(model=f"anthropic/{CLAUDE}", messages=messages)
        )
    assert not counted.exact
    return int(counted.tokens)


async def test_an_anthropic_target_s_summarized_conversation_is_counted_by_it(
    fit_mesh: Mesh,
) -> None:
    text, steps = await _steps(fit_mesh, "counted-summary", turns=30)
    assert text == LAST
    redact, first, summarized, *refits = steps
    assert redact.startswith("redact: clean")
    assert first.startswith("fit: summarize budget=900 estimated=0 ")
    assert f"tokens={await _claude_count(fit_mesh, 30)} " in first  # the emulator's count
    assert summarized.startswith("fit: summarized messages=")
    assert refits[-1].startswith("fit: fits budget=900 estimated=0 tokens=")


async def test_the_call_s_max_tokens_over_the_reserve_is_kept_free_too(fit_mesh: Mesh) -> None:
    # reserve_output is 100, the call asks for 300: the emulator, as Anthropic does, refuses
    # a prompt that leaves less than max_tokens in the window
    text, steps = await _steps(fit_mesh, "counted", turns=30, max_tokens=300)
    assert text == LAST
    assert steps[0].startswith("fit: trim budget=700 ")
    assert int(steps[-1].split(" tokens=")[1].split()[0]) <= 700
