"""Which top-level fields of a ``POST /v1/responses`` body llmesh honours.

As for Chat Completions (`llmesh.gateway.openai_fields`), every field is in one class, so
none is silently dropped: mapped (translated into the `ChatInput` or the stored
conversation), inert (cannot change the answer), default-only (accepted at the value that
changes nothing), and everything else a 400 naming every such field, OpenAI code
``unknown_parameter`` (or ``unsupported_parameter`` for a known field at another value).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmesh.gateway.errors import OPENAI_CODE
from llmesh.gateway.openai_fields import EXTENSIONS
from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason, invalid

__all__ = ["INCLUDABLE", "MAPPED", "check_fields", "check_keys", "refused"]

MAPPED = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "text",
        "reasoning",
        "max_output_tokens",
        "temperature",
        "top_p",
        "metadata",
        "user",
        "safety_identifier",
        "store",
        "stream",
        "stream_options",
        "previous_response_id",
        "include",
        "fallbacks",
        "schema_repair_attempts",
        *EXTENSIONS,
    }
)
"""Fields `parse_request` reads (``fallbacks``, ``schema_repair_attempts`` and the
`EXTENSIONS` are llmesh's own, sent as the SDK's ``extra_body``)."""

INERT = frozenset({"prompt_cache_key", "prompt_cache_retention"})
"""Hints to OpenAI's own prompt cache: they cannot change the answer."""


def _no(value: Any) -> bool:
    return False


_DEFAULT_ONLY: dict[str, tuple[Callable[[Any], bool], str]] = {
    "background": (lambda v: v is False, "false"),
    "truncation": (lambda v: v == "disabled", '"disabled"'),
    "service_tier": (lambda v: v in ("auto", "default"), '"auto" or "default"'),
    "top_logprobs": (lambda v: v == 0 and not isinstance(v, bool), "0"),
    "max_tool_calls": (_no, "null"),
    "prompt": (_no, "null"),
    "conversation": (_no, "null"),
    "context_management": (lambda v: v == [], "[]"),
}
"""Fields not supported, accepted only when ``null`` or at their no-op value."""

INCLUDABLE = frozenset({"reasoning.encrypted_content"})
"""``include`` values honoured: reasoning items always carry their ``encrypted_content``
(the Anthropic thinking signature) when the model signed its thinking."""

UNKNOWN = "unknown_parameter"
UNSUPPORTED = "unsupported_parameter"


def refused(err: LlmeshError, code: str = UNKNOWN) -> LlmeshError:
    """`err` answered with OpenAI error code `code`."""
    err.metadata[OPENAI_CODE] = code
    return err


def check_keys(obj: dict[str, Any], allowed: frozenset[str], path: str) -> None:
    """Refuse (400, ``unknown_parameter``) the first key of `obj` not in `allowed`."""
    for key in obj:
        if key not in allowed:
            raise refused(invalid(f"{path}.{key}", "is not supported (unknown field)"))


def check_fields(body: dict[str, Any]) -> None:
    """Refuse every top-level field llmesh would otherwise ignore, naming each one."""
    violations = []
    first_code = ""
    for key, value in body.items():
        if key in MAPPED or key in INERT:
            continue
        rule = _DEFAULT_ONLY.get(key)
        if rule is None:
            violations.append(FieldViolation(key, "is not supported (unknown field)"))
            first_code = first_code or UNKNOWN
        elif value is not None and not rule[0](value):
            violations.append(FieldViolation(key, f"is not supported; only {rule[1]} is accepted"))
            first_code = first_code or UNSUPPORTED
    if violations:
        raise LlmeshError(
            Reason.INVALID_REQUEST,
            "; ".join(f"{v.field}: {v.description}" for v in violations),
            violations=tuple(violations),
            metadata={OPENAI_CODE: first_code},
        )
