"""/v1 penalties, logit bias and service tier are mapped into the `ChatInput` (checked as
OpenAI checks them), and the per-route and unknown-field dropping."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import httpx
import pytest

from llmesh.gateway import GatewaySettings
from llmesh.gateway.openai_compat import parse_completion_request
from llmesh.gateway.openai_fields import DEFAULT_ONLY, MAPPED
from llmesh.gateway.openai_responses import ChunkEncoder, completion
from llmesh.services.common.config import Config, RouteConfig
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.v1 import chat_pb2, orchestrator_pb2
from tests.gateway.fakes import FakeMesh

HI = [{"role": "user", "content": "hi"}]


def parse(**fields: Any) -> chat_pb2.ChatInput:
    return parse_completion_request({"model": "m/x", "messages": HI, **fields}).input


def test_the_fields_are_mapped_not_default_only() -> None:
    for field in (
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "service_tier",
        "logprobs",
        "top_logprobs",
    ):
        assert field in MAPPED and field not in DEFAULT_ONLY


def test_the_fields_reach_the_chat_input() -> None:
    chat = parse(
        presence_penalty=0.5,
        frequency_penalty=-2,
        logit_bias={"50256": -100, "7": 12.0},
        service_tier="flex",
    )
    assert chat.presence_penalty == 0.5 and chat.frequency_penalty == -2.0
    assert dict(chat.logit_bias) == {"50256": -100, "7": 12}
    assert chat.service_tier == chat_pb2.SERVICE_TIER_FLEX


@pytest.mark.parametrize("tier", ["auto", "default", "flex", "priority", "scale"])
def test_every_openai_tier_is_mapped(tier: str) -> None:
    assert chat_pb2.ServiceTier.Name(parse(service_tier=tier).service_tier) == (
        f"SERVICE_TIER_{tier.upper()}"
    )


def test_no_op_values_stay_unset() -> None:
    chat = parse(presence_penalty=0, frequency_penalty=0.0, logit_bias={}, service_tier=None)
    assert not chat.HasField("presence_penalty") and not chat.HasField("frequency_penalty")
    assert not chat.logit_bias and chat.service_tier == chat_pb2.SERVICE_TIER_UNSPECIFIED


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"presence_penalty": 2.01}, "presence_penalty"),
        ({"presence_penalty": True}, "presence_penalty"),
        ({"frequency_penalty": "0.5"}, "frequency_penalty"),
        ({"frequency_penalty": -2.5}, "frequency_penalty"),
        ({"logit_bias": [1]}, "logit_bias"),
        ({"logit_bias": {"abc": 1}}, "logit_bias.abc"),
        ({"logit_bias": {"5": 101}}, "logit_bias.5"),
        ({"logit_bias": {"5": 0.5}}, "logit_bias.5"),
        ({"logit_bias": {str(i): 1 for i in range(301)}}, "logit_bias"),
        ({"service_tier": "turbo"}, "service_tier"),
        ({"service_tier": ["flex"]}, "service_tier"),
        ({"logprobs": "yes"}, "logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 1.5}, "top_logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logprobs": False, "top_logprobs": 0}, "top_logprobs"),
    ],
)
def test_bad_values_are_refused_by_name(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(LlmeshError) as raised:
        parse(**fields)
    assert raised.value.reason is Reason.INVALID_REQUEST
    assert raised.value.violations[0].field == param


def test_unknown_fields_are_dropped_and_named_when_asked() -> None:
    body = {
        "model": "m/x",
        "messages": [
            {"role": "user", "content": "hi", "x_weight": 2},
            *HI,
            {"role": "assistant", "content": "ok", "x_weight": 3, "x_mood": "calm"},
        ],
        "x_vendor_hint": 1,
        "temperature": 0.2,
    }
    with pytest.raises(LlmeshError) as raised:
        parse_completion_request(body)
    assert raised.value.violations[0].field == "x_vendor_hint"
    parsed = parse_completion_request(body, drop_unknown=True)
    assert parsed.dropped == ("x_vendor_hint", "messages[0].x_weight", "messages[2].x_mood")
    assert parsed.input.temperature == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"store": True}, "store"),
        (
            {"messages": [{"role": "assistant", "content": None, "refusal": "no"}]},
            "messages[0].refusal",
        ),
    ],
)
def test_known_unsupported_values_are_refused_even_when_unknown_ones_drop(
    fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(LlmeshError) as raised:
        parse_completion_request({"model": "m/x", "messages": HI, **fields}, drop_unknown=True)
    assert raised.value.violations[0].field == param


def test_settings_come_from_the_config() -> None:
    config = dataclasses.replace(
        Config(),
        gateway_drop_params=("a",),
        gateway_unknown_fields="drop",
        routes={
            "lenient": RouteConfig("lenient", ("x/y",), drop_params=("verbosity",)),
            "strict": RouteConfig("strict", ("x/y",)),
        },
    )
    settings = GatewaySettings.from_config(config)
    assert settings.unknown_fields == "drop"
    assert settings.drops_for("lenient") == {"a", "verbosity"}
    assert settings.drops_for("strict") == settings.drops_for("x/y") == {"a"}
    assert settings.drops_for(None) == {"a"}
    assert GatewaySettings().unknown_fields == "reject"


@pytest.fixture
def gateway_settings(fake_mesh: FakeMesh) -> GatewaySettings:
    """The gateway over the fake mesh, with a route (the fake's ``fake/length``, as its
    orchestrator knows no route names) that drops ``verbosity``."""
    return GatewaySettings(
        orchestrator_address=fake_mesh.address,
        processor_address=fake_mesh.address,
        shutdown_grace=5,
        route_drop_params={"fake/length": frozenset({"verbosity"})},
    )


async def test_only_calls_to_the_route_may_carry_its_dropped_fields(
    http: httpx.AsyncClient, fake_mesh: FakeMesh
) -> None:
    dropped = await http.post(
        "/v1/chat/completions", json={"model": "fake/length", "messages": HI, "verbosity": "low"}
    )
    assert dropped.status_code == 200
    assert dropped.headers["x-llmesh-dropped-params"] == "verbosity"
    assert fake_mesh.orchestrator.calls[-1].input.model == "fake/length"
    refused = await http.post(
        "/v1/chat/completions", json={"model": "fake/text", "messages": HI, "verbosity": "low"}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "verbosity"


def test_logprobs_are_mapped() -> None:
    chat = parse(logprobs=True, top_logprobs=20)
    assert chat.logprobs is True and chat.top_logprobs == 20
    bare = parse(logprobs=True)
    assert bare.logprobs and not bare.HasField("top_logprobs")
    off = parse(logprobs=False, top_logprobs=None)
    assert not off.logprobs and not off.HasField("top_logprobs")


def _token(text: str, logprob: float) -> chat_pb2.TokenLogprob:
    top = [chat_pb2.TopLogprob(token=text, logprob=logprob, bytes=text.encode())]
    return chat_pb2.TokenLogprob(token=text, logprob=logprob, bytes=text.encode(), top_logprobs=top)


def test_replies_and_chunks_carry_them_in_openais_shape() -> None:
    tokens = [_token("Hi", -0.5), _token("!", -1.0)]
    reply = orchestrator_pb2.ChatResponse(
        request_id="r",
        message=chat_pb2.Message(role=chat_pb2.ROLE_ASSISTANT, content="Hi!"),
        logprobs=tokens,
    )
    choice = completion(reply, "m", 1)["choices"][0]
    assert choice["logprobs"] == {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.5,
                "bytes": [72, 105],
                "top_logprobs": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105]}],
            },
            {
                "token": "!",
                "logprob": -1.0,
                "bytes": [33],
                "top_logprobs": [{"token": "!", "logprob": -1.0, "bytes": [33]}],
            },
        ],
        "refusal": None,
    }
    plain = orchestrator_pb2.ChatResponse(request_id="r")
    assert completion(plain, "m", 1)["choices"][0]["logprobs"] is None
    encoder = ChunkEncoder("m", 1, False, "r")
    event = orchestrator_pb2.StreamChatResponse(
        text_delta=orchestrator_pb2.TextDelta(text="Hi", logprobs=tokens[:1])
    )
    lines = encoder.encode(event).decode().strip().split("\n\n")
    chunk = json.loads(lines[-1].removeprefix("data: "))
    assert chunk["choices"][0]["delta"] == {"content": "Hi"}
    assert [t["token"] for t in chunk["choices"][0]["logprobs"]["content"]] == ["Hi"]
    bare = orchestrator_pb2.StreamChatResponse(text_delta=orchestrator_pb2.TextDelta(text="x"))
    assert json.loads(encoder.encode(bare)[6:])["choices"][0]["logprobs"] is None


@pytest.mark.parametrize("model", ["fake/cut", "fake/no-finish"])
async def test_a_choice_cut_mid_stream_ends_the_reply_with_an_error(
    http: httpx.AsyncClient, fake_mesh: FakeMesh, model: str
) -> None:
    calls = len(fake_mesh.orchestrator.calls)
    body = {"model": model, "messages": HI, "stream": True, "n": 2}
    r = await http.post("/v1/chat/completions", json=body)
    assert r.status_code == 200
    assert "[DONE]" not in r.text
    last = json.loads(r.text.strip().split("\n\n")[-1][6:])
    assert last["error"]["code"] == "stream_interrupted"
    assert len(fake_mesh.orchestrator.calls) == calls + 2


async def test_n_whole_replies_are_merged(http: httpx.AsyncClient, fake_mesh: FakeMesh) -> None:
    r = await http.post("/v1/chat/completions", json={"model": "fake/text", "messages": HI, "n": 2})
    assert r.status_code == 200
    choices = r.json()["choices"]
    assert [c["index"] for c in choices] == [0, 1]
    assert choices[0]["message"] == choices[1]["message"]
    bad = await http.post(
        "/v1/chat/completions", json={"model": "fake/invalid", "messages": HI, "n": 3}
    )
    assert bad.status_code == 400
