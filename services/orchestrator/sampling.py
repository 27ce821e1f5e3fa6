"""The sampling controls of a `ChatInput` beyond temperature and top_p: penalties, logit
bias and the service tier, checked against the ranges the OpenAI API accepts.

A pure function from proto to the `ChatRequest` fields; every bad value is reported through
`violation`, so the caller gets all of them at once.
"""

from __future__ import annotations

from typing import Any

from llmesh.services.common.errors import Violation
from llmesh.services.core.chat import ServiceTier
from llmesh.v1 import chat_pb2

__all__ = ["MAX_LOGIT_BIAS", "sampling_from_proto"]

MAX_LOGIT_BIAS = 300
"""The most ``logit_bias`` entries OpenAI accepts."""

_TIERS = {
    chat_pb2.SERVICE_TIER_UNSPECIFIED: ServiceTier.UNSPECIFIED,
    chat_pb2.SERVICE_TIER_AUTO: ServiceTier.AUTO,
    chat_pb2.SERVICE_TIER_DEFAULT: ServiceTier.DEFAULT,
    chat_pb2.SERVICE_TIER_FLEX: ServiceTier.FLEX,
    chat_pb2.SERVICE_TIER_PRIORITY: ServiceTier.PRIORITY,
    chat_pb2.SERVICE_TIER_SCALE: ServiceTier.SCALE,
}


def sampling_from_proto(inp: chat_pb2.ChatInput, violation: Violation) -> dict[str, Any]:
    """The penalties, logit bias and service tier of `inp`, as `ChatRequest` keyword
    arguments (absent ones left out)."""
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
    tier = _TIERS.get(inp.service_tier)
    if tier is None:
        violation("service_tier", "unknown service tier")
    elif tier is not ServiceTier.UNSPECIFIED:
        out["service_tier"] = tier
    return out
