"""The sampling controls of a `ChatInput` beyond temperature and top_p: penalties, logit
bias, the service tier and log probabilities, checked against the ranges the OpenAI API
accepts.

A pure function from proto to the `ChatRequest` fields; every bad value is reported through
`violation`, so the caller gets all of them at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llmesh.services.common.errors import Violation
from llmesh.services.core.chat import ServiceTier
from llmesh.services.core.events import TokenLogprob
from llmesh.v1 import chat_pb2

__all__ = ["MAX_LOGIT_BIAS", "MAX_TOP_LOGPROBS", "logprobs_to_proto", "sampling_from_proto"]

MAX_LOGIT_BIAS = 300
"""The most ``logit_bias`` entries OpenAI accepts."""

MAX_TOP_LOGPROBS = 20
"""The most ``top_logprobs`` OpenAI returns per position."""

_TIERS = {
    chat_pb2.SERVICE_TIER_UNSPECIFIED: ServiceTier.UNSPECIFIED,
    chat_pb2.SERVICE_TIER_AUTO: ServiceTier.AUTO,
    chat_pb2.SERVICE_TIER_DEFAULT: ServiceTier.DEFAULT,
    chat_pb2.SERVICE_TIER_FLEX: ServiceTier.FLEX,
    chat_pb2.SERVICE_TIER_PRIORITY: ServiceTier.PRIORITY,
    chat_pb2.SERVICE_TIER_SCALE: ServiceTier.SCALE,
}


def sampling_from_proto(inp: chat_pb2.ChatInput, violation: Violation) -> dict[str, Any]:
    """The penalties, logit bias, service tier and logprobs of `inp`, as `ChatRequest`
    keyword arguments (absent ones left out)."""
    out: dict[str, Any] = {}
    for name in ("presence_penalty", "frequency_penalty"):
        if inp.HasField(name):
            value = getattr(inp, name)
            if not -2.0 <= value <= 2.0:
                violation(name, "must be between -2 and 2")
            out[name] = value
    if inp.logit_bias:
        if len(inp.logit_bias) > MAX_LOGIT_BIAS:
            violation("logit_bias", f"at most {MAX_LOGIT_BIAS} entries")
        for token, bias in inp.logit_bias.items():
            if not (token.isascii() and token.isdigit()):
                violation(f"logit_bias.{token}", "keys must be token ids (decimal integers)")
            elif not -100 <= bias <= 100:
                violation(f"logit_bias.{token}", "must be between -100 and 100")
        out["logit_bias"] = dict(inp.logit_bias)
    if inp.logprobs:
        out["logprobs"] = True
    if inp.HasField("top_logprobs"):
        if not 0 <= inp.top_logprobs <= MAX_TOP_LOGPROBS:
            violation("top_logprobs", f"must be between 0 and {MAX_TOP_LOGPROBS}")
        elif not inp.logprobs:
            violation("top_logprobs", "requires logprobs")
        out["top_logprobs"] = inp.top_logprobs
    tier = _TIERS.get(inp.service_tier)
    if tier is None:
        violation("service_tier", "unknown service tier")
    elif tier is not ServiceTier.UNSPECIFIED:
        out["service_tier"] = tier
    return out


def logprobs_to_proto(logprobs: Sequence[TokenLogprob]) -> list[chat_pb2.TokenLogprob]:
    """Token log probabilities as their protobuf messages."""
    return [
        chat_pb2.TokenLogprob(
            token=lp.token,
            logprob=lp.logprob,
            bytes=lp.utf8,
            top_logprobs=[
                chat_pb2.TopLogprob(token=t.token, logprob=t.logprob, bytes=t.utf8) for t in lp.top
            ],
        )
        for lp in logprobs
    ]
