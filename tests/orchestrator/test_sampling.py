"""Penalties, logit bias and service tier: from the `ChatInput` to the `ChatRequest`, with
OpenAI's ranges checked and every bad value named."""

from __future__ import annotations

import pytest

from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.chat import ServiceTier
from llmesh.services.orchestrator.convert import chat_call_from_proto
from llmesh.v1 import chat_pb2


def chat(**fields: object) -> chat_pb2.ChatInput:
    return chat_pb2.ChatInput(
        model="a/m", messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content="hi")], **fields
    )


def test_the_fields_reach_the_request() -> None:
    request = chat_call_from_proto(
        chat(
            presence_penalty=-2.0,
            frequency_penalty=1.5,
            logit_bias={"50256": -100, "12": 100},
            service_tier=chat_pb2.SERVICE_TIER_PRIORITY,
        ),
        True,
    ).request
    assert (request.presence_penalty, request.frequency_penalty) == (-2.0, 1.5)
    assert dict(request.logit_bias) == {"50256": -100, "12": 100}
    assert request.service_tier is ServiceTier.PRIORITY


def test_absent_fields_stay_unset() -> None:
    request = chat_call_from_proto(chat(), True).request
    assert request.presence_penalty is None and request.frequency_penalty is None
    assert request.logit_bias == {} and request.service_tier is ServiceTier.UNSPECIFIED
    assert request.options() == {}


def test_every_bad_value_is_named() -> None:
    with pytest.raises(LlmeshError) as raised:
        chat_call_from_proto(
            chat(
                presence_penalty=2.5,
                frequency_penalty=-3,
                logit_bias={"x1": 1, "7": 101},
                service_tier=99,
            ),
            True,
        )
    assert raised.value.reason is Reason.INVALID_REQUEST
    assert sorted(v.field for v in raised.value.violations) == [  # map order is not kept
        "input.frequency_penalty",
        "input.logit_bias.7",
        "input.logit_bias.x1",
        "input.presence_penalty",
        "input.service_tier",
    ]


def test_at_most_300_biases() -> None:
    with pytest.raises(LlmeshError) as raised:
        chat_call_from_proto(chat(logit_bias={str(i): 1 for i in range(301)}), True)
    assert [v.field for v in raised.value.violations] == ["input.logit_bias"]
    chat_call_from_proto(chat(logit_bias={str(i): 1 for i in range(300)}), True)
