"""The sampling fields of a /v1 chat body beyond temperature and top_p: ``presence_penalty``,
``frequency_penalty``, ``logit_bias``, ``service_tier``, ``logprobs`` and ``top_logprobs``,
checked as the OpenAI API checks them and set on the `ChatInput`.

A no-op value (a penalty of 0, an empty ``logit_bias``, ``logprobs: false``) is left unset,
so a client that sends defaults explicitly can still reach providers that have no such
control.
"""

from __future__ import annotations

import math
from typing import Any

from llmesh.services.common.errors import invalid
from llmesh.v1 import chat_pb2

__all__ = ["MAX_LOGIT_BIAS", "MAX_TOP_LOGPROBS", "SAMPLING_FIELDS", "add_sampling"]

MAX_LOGIT_BIAS = 300
"""The most ``logit_bias`` entries OpenAI accepts."""

TIERS = {
    "auto": chat_pb2.SERVICE_TIER_AUTO,
    "default": chat_pb2.SERVICE_TIER_DEFAULT,
    "flex": chat_pb2.SERVICE_TIER_FLEX,
    "priority": chat_pb2.SERVICE_TIER_PRIORITY,
    "scale": chat_pb2.SERVICE_TIER_SCALE,
}
"""OpenAI's ``service_tier`` values."""

MAX_TOP_LOGPROBS = 20
"""The most ``top_logprobs`` OpenAI returns per position."""

SAMPLING_FIELDS = (
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "service_tier",
    "logprobs",
    "top_logprobs",
)
"""The /v1 fields `add_sampling` maps."""


def _penalty(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(path, "must be a number")
    if not -2.0 <= value <= 2.0:
        raise invalid(path, "must be between -2 and 2")
    return float(value)


def _bias(value: Any, path: str) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(path, "must be an integer")
    if not -100 <= value <= 100:
        raise invalid(path, "must be between -100 and 100")
    return value


def add_sampling(body: dict[str, Any], chat: chat_pb2.ChatInput) -> None:
    """Set the penalties, logit bias and service tier of `body` on `chat`; raise
    INVALID_REQUEST naming the first bad one."""
    for key in ("presence_penalty", "frequency_penalty"):
        if body.get(key) is not None:
            penalty = _penalty(body[key], key)
            if penalty:
                setattr(chat, key, penalty)
    bias = body.get("logit_bias")
    if bias is not None:
        if not isinstance(bias, dict):
            raise invalid("logit_bias", "must be an object of token ids to biases")
        if len(bias) > MAX_LOGIT_BIAS:
            raise invalid("logit_bias", f"must have at most {MAX_LOGIT_BIAS} entries")
        for token, value in bias.items():
            if not (token.isascii() and token.isdigit()) or len(token) > 10:
                raise invalid(f"logit_bias.{token}", "keys must be token ids (integers)")
            chat.logit_bias[token] = _bias(value, f"logit_bias.{token}")
    tier = body.get("service_tier")
    if tier is not None:
        if not isinstance(tier, str) or tier not in TIERS:
            raise invalid("service_tier", f"must be one of {', '.join(TIERS)}")
        chat.service_tier = TIERS[tier]
    logprobs = body.get("logprobs")
    if logprobs is not None and not isinstance(logprobs, bool):
        raise invalid("logprobs", "must be a boolean")
    chat.logprobs = bool(logprobs)
    top = body.get("top_logprobs")
    if top is not None:
        if isinstance(top, float) and top.is_integer():
            top = int(top)
        if isinstance(top, bool) or not isinstance(top, int):
            raise invalid("top_logprobs", "must be an integer")
        if not 0 <= top <= MAX_TOP_LOGPROBS:
            raise invalid("top_logprobs", f"must be between 0 and {MAX_TOP_LOGPROBS}")
        if not logprobs:
            raise invalid("top_logprobs", "requires logprobs: true")
        chat.top_logprobs = top
