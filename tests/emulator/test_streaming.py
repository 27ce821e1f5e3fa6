"""Latency profiles and disconnect accounting (lower bounds only: never tight timing)."""

from __future__ import annotations

import asyncio
import time

import anthropic
import httpx
import openai
import pytest

from llmesh.services.emulator import EmulatorSettings, Latency
from tests.emulator.helpers import MODEL, USER, StatsWhen


def messages(text: str = USER) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def test_ttft_and_itl_headers_on_a_stream(oai: openai.AsyncOpenAI) -> None:
    began = time.perf_counter()
    stream = await oai.chat.completions.create(
        model=MODEL,
        messages=messages("a b c d e"),
        stream=True,
        extra_headers={"x-emulator-ttft-ms": "80", "x-emulator-itl-ms": "15"},
    )
    arrivals = [time.perf_counter() - began async for _ in stream]
    assert arrivals[0] >= 0.08  # role chunk comes with the first token
    assert arrivals[-1] >= 0.08 + 4 * 0.015


async def test_latency_applies_to_non_stream_replies(ant: anthropic.AsyncAnthropic) -> None:
    began = time.perf_counter()
    await ant.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=messages("a b c d e"),
        extra_headers={"x-emulator-ttft-ms": "30", "x-emulator-itl-ms": "10"},
    )
    assert time.perf_counter() - began >= 0.03 + 5 * 0.01


class TestProfiles:
    @pytest.fixture
    def settings(self) -> EmulatorSettings:
        return EmulatorSettings(port=0, latency={"slow": Latency(ttft_ms=100, itl_ms=0)})

    async def test_per_model_profile(self, oai: openai.AsyncOpenAI) -> None:
        began = time.perf_counter()
        await oai.chat.completions.create(model="slow", messages=messages())
        slow = time.perf_counter() - began
        assert slow >= 0.1
        began = time.perf_counter()
        await oai.chat.completions.create(model=MODEL, messages=messages())
        assert time.perf_counter() - began < slow


async def test_closing_a_stream_midway_counts_a_disconnect(
    oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic, stats_when: StatsWhen
) -> None:
    headers = {"x-emulator-itl-ms": "50"}
    stream = await oai.chat.completions.create(
        model="m-openai",
        messages=messages(),
        stream=True,
        extra_headers=headers,
    )
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 2:
            break
    await stream.close()
    async with ant.messages.stream(
        model="m-anthropic",
        max_tokens=100,
        messages=messages(),
        extra_headers=headers,
    ) as s:
        async for _ in s.text_stream:
            break
    stats = await stats_when(lambda s: s["disconnects"] == 2)
    assert (stats["disconnects"], stats["completed"], stats["active"]) == (2, 0, 0)
    assert stats["by_model"]["m-openai"]["disconnects"] == 1
    assert stats["by_model"]["m-anthropic"]["disconnects"] == 1


async def test_abandoning_a_request_during_ttft_counts_a_disconnect(
    emulator: str, stats_when: StatsWhen
) -> None:
    async with httpx.AsyncClient(base_url=emulator) as client:
        task = asyncio.create_task(
            client.post(
                "/v1/chat/completions",
                json={"model": MODEL, "messages": messages()},
                headers={"x-emulator-ttft-ms": "5000"},
            )
        )
        active = await stats_when(lambda s: s["active"] == 1)
        assert active["active"] == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    stats = await stats_when(lambda s: s["disconnects"] == 1)
    assert (stats["disconnects"], stats["active"]) == (1, 0)


async def test_stats_and_reset(http: httpx.AsyncClient, oai: openai.AsyncOpenAI) -> None:
    await oai.chat.completions.create(model="a", messages=messages())
    await oai.chat.completions.create(model="a", messages=messages(), stream=True)
    with pytest.raises(openai.BadRequestError):
        await oai.chat.completions.create(model="b", messages=[])
    stats = (await http.get("/emulator/stats")).json()
    assert stats == {
        "requests": 3,
        "completed": 3,
        "disconnects": 0,
        "aborted": 0,
        "active": 0,
        "by_model": {
            "a": {"requests": 2, "completed": 2, "disconnects": 0, "aborted": 0},
            "b": {"requests": 1, "completed": 1, "disconnects": 0, "aborted": 0},
        },
        "params": {},
    }
    assert (await http.post("/emulator/reset")).status_code == 200
    stats = (await http.get("/emulator/stats")).json()
    assert (stats["requests"], stats["by_model"]) == (0, {})
