"""The sampling parameters beyond temperature and top_p, checked as each real API checks them.

OpenAI takes ``presence_penalty`` and ``frequency_penalty`` (-2..2), ``logit_bias`` (at most
300 token ids, biases -100..100) and ``service_tier`` (``auto``, ``default``, ``flex``,
``priority``, ``scale``), and answers with the tier that served the call (``auto`` is served
as ``default``). Anthropic takes ``service_tier`` (``auto`` or ``standard_only``) and refuses
the penalties and the logit bias as extra inputs.

Both return the parameters a request carried (a name, or ``name=value`` for the tier), which
the stats count, so tests can see what reached the wire.

OpenAI's ``logprobs`` / ``top_logprobs`` (0 to 20) get a deterministic log probability per
output token (`logprobs_object`); Anthropic has neither.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from llmesh.services.emulator.errors import ApiError

__all__ = [
    "anthropic_sampling",
    "logprobs_object",
    "openai_logprobs",
    "openai_sampling",
    "served_tier",
]

OPENAI_TIERS = ("auto", "default", "flex", "priority", "scale")
MAX_TOP_LOGPROBS = 20
_ALTERNATIVES = (
    " the", " a", ",", ".", " and", " of", " to", " in", " is", " that",
    " it", " for", " on", " with", " as", " was", " at", " by", " an", " be", " or",
)  # fmt: skip
"""Tokens offered as the less likely alternatives in ``top_logprobs``."""
ANTHROPIC_TIERS = ("auto", "standard_only")
MAX_LOGIT_BIAS = 300


def _range_error(name: str, value: Any, low: int, high: int) -> ApiError:
    above = value > high
    kind = "integer" if isinstance(value, int) else "decimal"
    direction, bound, sign = (
        ("above maximum", high, "<=") if above else ("below minimum", low, ">=")
    )
    return ApiError(
        400,
        f"Invalid '{name}': {kind} {direction} value. Expected a value {sign} {bound}, "
        f"but got {value} instead.",
        param=name,
        code=f"{kind}_{'above_max' if above else 'below_min'}_value",
    )


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ApiError(
            400,
            f"Invalid type for '{name}': expected a decimal, but got a {type(value).__name__} "
            "instead.",
            param=name,
            code="invalid_type",
        )
    return float(value)


def openai_sampling(body: Mapping[str, Any]) -> tuple[str, ...]:
    """Validate OpenAI's sampling parameters; the ones the body carries."""
    seen: list[str] = []
    for name in ("presence_penalty", "frequency_penalty"):
        raw = body.get(name)
        if raw is None:
            continue
        if not -2 <= _number(name, raw) <= 2:
            raise _range_error(name, raw, -2, 2)
        seen.append(name)
    bias = body.get("logit_bias")
    if bias is not None:
        if not isinstance(bias, dict):
            raise ApiError(
                400,
                "Invalid type for 'logit_bias': expected an object, but got another type instead.",
                param="logit_bias",
                code="invalid_type",
            )
        if len(bias) > MAX_LOGIT_BIAS:
            raise ApiError(
                400,
                f"Invalid 'logit_bias': too many properties. Expected an object with at most "
                f"{MAX_LOGIT_BIAS} properties, but got an object with {len(bias)} properties "
                "instead.",
                param="logit_bias",
                code="object_above_max_properties",
            )
        for token, value in bias.items():
            if not (token.isascii() and token.isdigit()):
                raise ApiError(
                    400,
                    f"Invalid key in 'logit_bias': {token}. Keys must be token ids.",
                    param="logit_bias",
                    code="invalid_value",
                )
            if not -100 <= _number(f"logit_bias.{token}", value) <= 100:
                raise _range_error(f"logit_bias.{token}", value, -100, 100)
        if bias:
            seen.append("logit_bias")
    tier = body.get("service_tier")
    if tier is not None:
        if tier not in OPENAI_TIERS:
            listed = ", ".join(f"'{t}'" for t in OPENAI_TIERS[:-1])
            raise ApiError(
                400,
                f"Invalid value: '{tier}'. Supported values are: {listed}, and "
                f"'{OPENAI_TIERS[-1]}'.",
                param="service_tier",
                code="invalid_value",
            )
        seen.append(f"service_tier={tier}")
    if body.get("logprobs"):
        seen.append("logprobs")
    return tuple(seen)


def openai_logprobs(body: Mapping[str, Any]) -> int | None:
    """How many ``top_logprobs`` a request asks for when it asks for ``logprobs`` (None:
    it does not), checked as OpenAI checks them."""
    asked = body.get("logprobs")
    if asked is not None and not isinstance(asked, bool):
        raise ApiError(
            400,
            f"Invalid type for 'logprobs': expected a boolean, but got {type(asked).__name__} "
            "instead.",
            param="logprobs",
            code="invalid_type",
        )
    top = body.get("top_logprobs")
    if top is None:
        return 0 if asked else None
    if isinstance(top, bool) or not isinstance(top, int):
        raise ApiError(
            400,
            "Invalid type for 'top_logprobs': expected an integer, but got another type instead.",
            param="top_logprobs",
            code="invalid_type",
        )
    if not 0 <= top <= MAX_TOP_LOGPROBS:
        raise _range_error("top_logprobs", top, 0, MAX_TOP_LOGPROBS)
    if not asked:
        raise ApiError(
            400,
            "Invalid value for 'top_logprobs': 'logprobs' must be set to true when "
            "'top_logprobs' is used.",
            param="top_logprobs",
            code="invalid_value",
        )
    return top


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def logprobs_object(pieces: Sequence[str], top: int) -> dict[str, Any]:
    """OpenAI's ``logprobs`` for output `pieces`: a deterministic log probability per token
    (from its text), the token itself as the likeliest of `top` alternatives."""
    content = []
    for piece in pieces:
        logprob = -round((zlib.crc32(piece.encode()) % 1000) / 1000 * 0.5 + 0.0001, 6)
        alternatives = [a for a in _ALTERNATIVES if a != piece][: max(top - 1, 0)]
        ranked = [_entry(piece, logprob)] if top else []
        ranked += [_entry(a, round(logprob - 2.0 - k * 0.5, 6)) for k, a in enumerate(alternatives)]
        content.append({**_entry(piece, logprob), "top_logprobs": ranked})
    return {"content": content, "refusal": None}


def served_tier(body: Mapping[str, Any]) -> str:
    """The ``service_tier`` an OpenAI response reports for a (valid) request."""
    tier = body.get("service_tier")
    return "default" if tier in (None, "auto") else str(tier)


def anthropic_sampling(body: Mapping[str, Any]) -> tuple[str, ...]:
    """Validate Anthropic's ``service_tier`` and refuse OpenAI-only parameters."""
    for name in ("presence_penalty", "frequency_penalty", "logit_bias", "logprobs"):
        if name in body:
            raise ApiError(400, f"{name}: Extra inputs are not permitted")
    tier = body.get("service_tier")
    if tier is None:
        return ()
    if tier not in ANTHROPIC_TIERS:
        raise ApiError(400, "service_tier: Input should be 'auto' or 'standard_only'")
    return (f"service_tier={tier}",)
