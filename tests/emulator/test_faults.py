"""Fault injection, seen through each SDK: every fault maps to the exception the SDK raises."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import openai
import pytest

from llmesh.services.emulator import EmulatorSettings, FaultSpec
from tests.emulator.helpers import MODEL, PIECES, USER, StatsWhen


def fault(name: str, **extra: str) -> dict[str, str]:
    return {
        "x-emulator-fault": name,
        **{f"x-emulator-{k.replace('_', '-')}": v for k, v in extra.items()},
    }


async def oai_create(client: openai.AsyncOpenAI, headers: dict[str, str], **kw: Any) -> Any:
    return await client.chat.completions.create(
        model=kw.pop("model", MODEL),
        messages=[{"role": "user", "content": USER}],
        extra_headers=headers,
        **kw,
    )


async def ant_create(client: anthropic.AsyncAnthropic, headers: dict[str, str], **kw: Any) -> Any:
    return await client.messages.create(
        model=kw.pop("model", MODEL),
        max_tokens=100,
        messages=[{"role": "user", "content": USER}],
        extra_headers=headers,
        **kw,
    )


@pytest.mark.parametrize(
    ("name", "exc", "status", "type_", "code"),
    [
        ("rate_limit", openai.RateLimitError, 429, "requests", "rate_limit_exceeded"),
        ("quota", openai.RateLimitError, 429, "insufficient_quota", "insufficient_quota"),
        ("server_error", openai.InternalServerError, 500, "server_error", None),
        ("unavailable", openai.InternalServerError, 503, "server_error", None),
        ("overloaded", openai.InternalServerError, 503, "server_error", None),
        ("auth", openai.AuthenticationError, 401, "invalid_request_error", "invalid_api_key"),
        ("bad_request", openai.BadRequestError, 400, "invalid_request_error", None),
        ("not_found", openai.NotFoundError, 404, "invalid_request_error", "model_not_found"),
        (
            "context_length",
            openai.BadRequestError,
            400,
            "invalid_request_error",
            "context_length_exceeded",
        ),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_openai_status_faults(
    oai: openai.AsyncOpenAI,
    name: str,
    exc: type[Exception],
    status: int,
    type_: str,
    code: str | None,
    stream: bool,
) -> None:
    with pytest.raises(exc) as info:
        await oai_create(oai, fault(name), stream=stream)
    err = info.value
    assert isinstance(err, openai.APIStatusError)
    assert err.status_code == status
    assert (err.type, err.code) == (type_, code)
    assert isinstance(err.body, dict) and set(err.body) == {"message", "type", "param", "code"}
    assert err.response.headers["x-request-id"].startswith("req_")


async def test_openai_rate_limit_headers(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        await oai_create(oai, fault("rate_limit", retry_after="7"))
    headers = info.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("7", "7000")
    assert headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError) as info:
        await oai_create(oai, fault("rate_limit", retry_after="0.5"))
    assert info.value.response.headers["retry-after-ms"] == "500"


async def test_openai_auth_fault_masks_the_key(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        await oai_create(oai, fault("auth"))
    assert "sk-test-key-1234" not in str(info.value) and "sk-" in str(info.value)


@pytest.mark.parametrize(
    ("name", "exc", "status", "type_"),
    [
        ("rate_limit", anthropic.RateLimitError, 429, "rate_limit_error"),
        ("quota", anthropic.BadRequestError, 400, "invalid_request_error"),
        ("server_error", anthropic.InternalServerError, 500, "api_error"),
        ("unavailable", anthropic.ServiceUnavailableError, 503, "api_error"),
        ("overloaded", anthropic.OverloadedError, 529, "overloaded_error"),
        ("auth", anthropic.AuthenticationError, 401, "authentication_error"),
        ("bad_request", anthropic.BadRequestError, 400, "invalid_request_error"),
        ("not_found", anthropic.NotFoundError, 404, "not_found_error"),
        ("context_length", anthropic.BadRequestError, 400, "invalid_request_error"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_status_faults(
    ant: anthropic.AsyncAnthropic,
    name: str,
    exc: type[Exception],
    status: int,
    type_: str,
    stream: bool,
) -> None:
    with pytest.raises(exc) as info:
        await ant_create(ant, fault(name), stream=stream)
    err = info.value
    assert isinstance(err, anthropic.APIStatusError)
    assert (err.status_code, err.type) == (status, type_)
    assert isinstance(err.body, dict) and err.body["type"] == "error"
    assert err.request_id and err.body["request_id"] == err.request_id


async def test_anthropic_fault_messages(ant: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await ant_create(ant, fault("quota"))
    assert info.value.api_message and "credit balance is too low" in info.value.api_message
    with pytest.raises(anthropic.BadRequestError) as info:
        await ant_create(ant, fault("context_length"))
    assert info.value.api_message and info.value.api_message.startswith("prompt is too long")
    with pytest.raises(anthropic.RateLimitError) as limited:
        await ant_create(ant, fault("rate_limit", retry_after="3"))
    assert limited.value.response.headers["retry-after"] == "3"


async def test_openai_stream_error_after_n_pieces(oai: openai.AsyncOpenAI) -> None:
    stream = await oai_create(oai, fault("stream_error", fault_after="3"), stream=True)
    got: list[str] = []
    with pytest.raises(openai.APIError) as info:
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert not isinstance(info.value, openai.APIStatusError)  # raised from inside a 200 stream
    assert "".join(got) == "".join(PIECES[:3])
    assert isinstance(info.value.body, dict) and info.value.body["type"] == "server_error"


async def test_anthropic_error_event_after_http_200(ant: anthropic.AsyncAnthropic) -> None:
    texts: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        async with ant.messages.stream(
            model=MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": USER}],
            extra_headers=fault("stream_error", fault_after="2"),
        ) as stream:
            async for text in stream.text_stream:
                texts.append(text)
    assert texts == PIECES[:2]
    assert info.value.type == "overloaded_error"
    assert info.value.status_code == 200  # the SDK sees the error type, not a 529 status


async def test_error_event_wire_format(http: httpx.AsyncClient) -> None:
    body = {
        "model": MODEL,
        "max_tokens": 9,
        "stream": True,
        "messages": [{"role": "user", "content": USER}],
    }
    async with http.stream(
        "POST", "/v1/messages", json=body, headers=fault("stream_error")
    ) as resp:
        text = (await resp.aread()).decode()
    assert resp.status_code == 200
    last = text.strip().split("\n\n")[-1].split("\n")
    assert last[0] == "event: error"
    data = json.loads(last[1].removeprefix("data: "))
    assert data["type"] == "error" and data["error"] == {
        "type": "overloaded_error",
        "message": "Overloaded",
    }


async def test_cut_stream_raises_instead_of_finishing(
    oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic, stats_when: StatsWhen
) -> None:
    stream = await oai_create(oai, fault("cut", fault_after="2"), stream=True)
    chunks: list[Any] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            chunks.append(chunk)
    assert [c.choices[0].delta.content for c in chunks] == ["", *PIECES[:2]]
    assert all(c.choices[0].finish_reason is None for c in chunks)
    events: list[str] = []
    with pytest.raises(Exception) as info:  # the SDK lets the transport's protocol error through
        async with ant.messages.stream(
            model=MODEL,
            max_tokens=100,
            messages=[{"role": "user", "content": USER}],
            extra_headers=fault("cut", fault_after="2"),
        ) as s:
            async for event in s:
                events.append(event.type)
    assert "incomplete" in str(info.value) or isinstance(info.value, anthropic.APIConnectionError)
    assert "message_stop" not in events and "message_delta" not in events
    stats = await stats_when(lambda s: s["aborted"] == 2 and s["active"] == 0)
    assert (stats["aborted"], stats["disconnects"]) == (2, 0)


async def test_cut_without_stream_closes_without_an_answer(
    oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    with pytest.raises(openai.APIConnectionError):
        await oai_create(oai, fault("cut"))
    with pytest.raises(anthropic.APIConnectionError):
        await ant_create(ant, fault("cut"))


@pytest.mark.parametrize("stream", [True, False])
async def test_malformed_raises(
    oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic, stream: bool
) -> None:
    with pytest.raises(json.JSONDecodeError):
        result = await oai_create(oai, fault("malformed", fault_after="1"), stream=stream)
        if stream:
            async for _ in result:
                pass
    with pytest.raises(json.JSONDecodeError):
        if stream:
            async with ant.messages.stream(
                model=MODEL,
                max_tokens=100,
                messages=[{"role": "user", "content": USER}],
                extra_headers=fault("malformed", fault_after="1"),
            ) as s:
                async for _ in s:
                    pass
        else:
            await ant_create(ant, fault("malformed"))


async def test_timeout_never_answers(
    oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic, stats_when: StatsWhen
) -> None:
    with pytest.raises(openai.APITimeoutError):
        await oai_create(oai, fault("timeout"), timeout=0.2)
    with pytest.raises(anthropic.APITimeoutError):
        await ant_create(ant, fault("timeout"), stream=True, timeout=0.2)
    stats = await stats_when(lambda s: s["disconnects"] == 2)
    assert (stats["disconnects"], stats["active"], stats["completed"]) == (2, 0, 0)


async def test_stall_pauses_then_continues(oai: openai.AsyncOpenAI) -> None:
    import time

    began = time.perf_counter()
    stream = await oai_create(oai, fault("stall", fault_after="2", stall_ms="150"), stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == USER
    assert time.perf_counter() - began >= 0.15


async def test_stall_forever_times_out(oai: openai.AsyncOpenAI, stats_when: StatsWhen) -> None:
    stream = await oai_create(oai, fault("stall", fault_after="1"), stream=True, timeout=0.2)
    got: list[str] = []
    with pytest.raises(openai.APITimeoutError):
        async for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert got == ["", "The"]
    assert (await stats_when(lambda s: s["disconnects"] == 1))["disconnects"] == 1


async def test_runtime_rules_by_model_with_times(
    http: httpx.AsyncClient, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    resp = await http.post(
        "/emulator/faults", json={"model": "m1", "fault": "rate_limit", "times": 2}
    )
    assert resp.status_code == 200
    assert resp.json()["runtime"]["m1"]["times_left"] == 2
    for _ in range(2):
        with pytest.raises(openai.RateLimitError):
            await oai_create(oai, {}, model="m1")
    assert (await oai_create(oai, {}, model="m1")).choices[0].message.content == USER
    assert (await oai_create(oai, {})).choices[0].message.content == USER  # other models unaffected
    await http.post("/emulator/faults", json={"model": "*", "fault": "overloaded"})
    with pytest.raises(anthropic.OverloadedError):
        await ant_create(ant, {}, model="m2")
    assert (await ant_create(ant, fault("none"), model="m2")).content[0].text == USER
    assert (await http.delete("/emulator/faults")).json()["runtime"] == {}
    assert (await ant_create(ant, {}, model="m2")).content[0].text == USER


async def test_a_rule_with_a_rate_faults_that_share_of_requests_at_random(
    http: httpx.AsyncClient, oai: openai.AsyncOpenAI
) -> None:
    rule = {"model": "m3", "fault": "server_error", "rate": 0.3}
    assert (await http.post("/emulator/faults", json=rule)).json()["runtime"]["m3"]["rate"] == 0.3
    failed = 0
    for _ in range(200):
        try:
            await oai_create(oai.with_options(max_retries=0), {}, model="m3")
        except openai.InternalServerError:
            failed += 1
    assert 30 <= failed <= 90  # 60 expected; far outside this is a broken draw
    injected = (await http.get("/emulator/faults")).json()["injected"]
    assert injected == {"server_error": failed}
    bad = await http.post("/emulator/faults", json={"model": "m3", "fault": "cut", "rate": 0})
    assert bad.status_code == 400


async def test_fault_header_wins_over_rules(
    http: httpx.AsyncClient, oai: openai.AsyncOpenAI
) -> None:
    await http.post("/emulator/faults", json={"model": MODEL, "fault": "rate_limit"})
    with pytest.raises(openai.AuthenticationError):
        await oai_create(oai, fault("auth"))


async def test_bad_rules_and_headers_are_rejected(
    http: httpx.AsyncClient, oai: openai.AsyncOpenAI
) -> None:
    assert (
        await http.post("/emulator/faults", json={"model": "m", "fault": "nope"})
    ).status_code == 400
    assert (await http.post("/emulator/faults", json={"fault": "cut"})).status_code == 400
    assert (await http.post("/emulator/faults", content=b"{")).status_code == 400
    with pytest.raises(openai.BadRequestError) as info:
        await oai_create(oai, fault("nope"))
    assert "x-emulator-fault" in str(info.value)
    with pytest.raises(openai.BadRequestError):
        await oai_create(oai, {"x-emulator-ttft-ms": "soon"})


class TestConfiguredRules:
    @pytest.fixture
    def settings(self) -> EmulatorSettings:
        return EmulatorSettings(port=0, faults={"flaky": FaultSpec("server_error", times=1)})

    async def test_configured_rule_applies_then_rearms_on_reset(
        self, http: httpx.AsyncClient, oai: openai.AsyncOpenAI
    ) -> None:
        with pytest.raises(openai.InternalServerError):
            await oai_create(oai, {}, model="flaky")
        assert (await oai_create(oai, {}, model="flaky")).choices[0].message.content == USER
        assert (await http.get("/emulator/faults")).json()["configured"] == {}
        await http.post("/emulator/reset")
        with pytest.raises(openai.InternalServerError):
            await oai_create(oai, {}, model="flaky")
