"""Which top-level fields of an OpenAI Chat Completions body llmesh honours.

Every field is in exactly one class, so none is ever silently dropped:

- mapped: translated into the `ChatInput` by `llmesh.gateway.openai_compat`;
- inert: accepted and not used, because no value of it can change the answer;
- default-only: not supported yet, but accepted when absent, ``null`` or set to the value
  that changes nothing (clients such as LangChain send defaults explicitly); any other value
  is a 400 naming the field;
- anything else, including unknown fields, is a 400 naming the field, unless the deployment
  lists it in ``gateway.drop_params`` (or the called route in its ``drop_params``): then it
  is accepted and dropped, and the response names it (``x-llmesh-dropped-params``). With
  ``gateway.unknown_fields: drop``, unknown fields (top-level and in messages) are dropped
  and named the same way; known fields with unsupported values are still refused.

A mapped field the routed target's provider cannot honour (a penalty sent to Anthropic) is
not lost either: the orchestrator skips that target, and refuses the call with
``unsupported_parameter`` naming the field when no target can.

The same table, in prose, is in gateway/README.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmesh.gateway.errors import OPENAI_CODE
from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason, invalid

EXTENSIONS = (
    "mid_stream_policy",
    "first_token_timeout",
    "stall_timeout",
    "hedge",
    "cache",
    "max_cost_usd",
    "thinking_budget_tokens",
    "template",
    "template_variables",
)
"""llmesh's own `ChatInput` fields a /v1 body may carry, in their protobuf JSON form (the
SDK's ``extra_body``); ``fallbacks``, a plain array of model names, is one more. With
``template`` (``name`` or ``name@version``) and its ``template_variables`` (an object),
``messages`` may be empty: the template's rendered messages come first."""

MAPPED = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "temperature",
        "top_p",
        "max_completion_tokens",
        "max_tokens",
        "stop",
        "seed",
        "n",
        "metadata",
        "user",
        "safety_identifier",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "service_tier",
        "logprobs",
        "top_logprobs",
        "stream",
        "stream_options",
        "reasoning_effort",
        "fallbacks",
        "response_format",
        "schema_repair_attempts",
        *EXTENSIONS,
    }
)
"""Fields `parse_completion_request` reads (``fallbacks``, ``schema_repair_attempts`` and
`EXTENSIONS` are llmesh's own)."""

INERT = frozenset({"prompt_cache_key"})
"""Fields accepted and not used: hints to OpenAI's own cache that cannot change the answer."""


@dataclass(frozen=True, slots=True)
class DefaultOnly:
    """A field accepted only with the value that leaves the answer unchanged."""

    accepts: Callable[[Any], bool]
    """True for the no-op values."""
    default: str
    """The accepted value(s), as the error message shows them."""


def _empty(value: Any) -> bool:
    return isinstance(value, dict | list) and not value


DEFAULT_ONLY: dict[str, DefaultOnly] = {
    "verbosity": DefaultOnly(lambda v: False, "null"),
    "modalities": DefaultOnly(lambda v: v == ["text"], '["text"]'),
    "audio": DefaultOnly(lambda v: False, "null"),
    "prediction": DefaultOnly(lambda v: False, "null"),
    "web_search_options": DefaultOnly(lambda v: False, "null"),
    "store": DefaultOnly(lambda v: v is False, "false"),
    "functions": DefaultOnly(_empty, "[] (use tools)"),
    "function_call": DefaultOnly(lambda v: False, "null (use tool_choice)"),
}
"""Fields not supported yet, accepted only when ``null`` or set to their no-op value."""


MESSAGE_MAPPED = frozenset({"role", "content", "name", "tool_calls", "tool_call_id"})
"""Message fields `parse_completion_request` reads (``tool_calls`` on assistant messages,
``tool_call_id`` on tool messages)."""

MESSAGE_INERT = frozenset({"annotations"})
"""Message fields accepted and not used: citations about the content, which cannot change it."""

MESSAGE_NULL_ONLY = frozenset({"refusal", "audio", "function_call"})
"""Message fields not supported yet, accepted only when ``null`` (as SDKs echo them back)."""


UNKNOWN = "unknown_parameter"
"""OpenAI's code for a field it does not know."""

UNSUPPORTED = "unsupported_parameter"
"""OpenAI's code for a known field llmesh does not support (with that value)."""


def _refused(err: LlmeshError, code: str) -> LlmeshError:
    err.metadata[OPENAI_CODE] = code
    return err


def check_message_fields(
    message: dict[str, Any], path: str, *, drop_unknown: bool = False
) -> list[str]:
    """Refuse (INVALID_REQUEST naming it) the first field of a message llmesh would ignore;
    with `drop_unknown`, unknown fields are returned (as ``path.key``) to be dropped instead."""
    dropped = []
    for key, value in message.items():
        if key in MESSAGE_MAPPED or key in MESSAGE_INERT:
            continue
        if key not in MESSAGE_NULL_ONLY:
            if drop_unknown:
                dropped.append(f"{path}.{key}")
                continue
            raise _refused(invalid(f"{path}.{key}", "is not supported (unknown field)"), UNKNOWN)
        if value is not None:
            description = "is not supported yet; only null is accepted"
            raise _refused(invalid(f"{path}.{key}", description), UNSUPPORTED)
    return dropped


def check_fields(
    body: dict[str, Any], drop: frozenset[str] = frozenset(), *, drop_unknown: bool = False
) -> tuple[str, ...]:
    """Refuse (INVALID_REQUEST) the fields llmesh would otherwise ignore, naming every one,
    except those named in `drop` (and, with `drop_unknown`, unknown ones), which are
    returned (in body order) to be dropped.

    The first refused one is OpenAI's ``param``; all of them are in the error's field
    violations. A field llmesh honours, or one at its no-op value, is never dropped.
    """
    violations = []
    dropped = []
    first_code = ""
    for key, value in body.items():
        if key in MAPPED or key in INERT:
            continue
        rule = DEFAULT_ONLY.get(key)
        if rule is not None and (value is None or rule.accepts(value)):
            continue
        if key in drop or (drop_unknown and rule is None):
            dropped.append(key)
        elif rule is None:
            violations.append(FieldViolation(key, "is not supported (unknown field)"))
            first_code = first_code or UNKNOWN
        else:
            description = f"is not supported yet; only {rule.default} is accepted"
            violations.append(FieldViolation(key, description))
            first_code = first_code or UNSUPPORTED
    if violations:
        raise LlmeshError(
            Reason.INVALID_REQUEST,
            "; ".join(f"{v.field}: {v.description}" for v in violations),
            violations=tuple(violations),
            metadata={OPENAI_CODE: first_code},
        )
    return tuple(dropped)
