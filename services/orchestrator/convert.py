"""Protobuf -> domain mapping of the orchestrator's chat requests, with their validation.

Validation collects every bad field into one INVALID_REQUEST error carrying a
`google.rpc.BadRequest` field violation per field, so a caller fixes all at once.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf import json_format

from llmesh.services.common.errors import FieldViolation, LlmeshError, Reason
from llmesh.services.common.media_settings import PartLimits
from llmesh.services.common.order_proto import order_from_proto
from llmesh.services.common.parts_proto import cache_control_from_proto, parts_from_proto
from llmesh.services.core.blocks import order_problem
from llmesh.services.core.call import ChatCall, TemplateUse
from llmesh.services.core.chat import (
    ChatRequest,
    Message,
    ReasoningEffort,
    Role,
    ThinkingBlock,
    Tool,
    ToolCall,
    ToolChoiceMode,
)
from llmesh.services.core.policy import CallOptions, MidStreamPolicy
from llmesh.services.orchestrator.sampling import sampling_from_proto
from llmesh.services.orchestrator.structured import response_format_from_proto
from llmesh.services.templates import parse_ref
from llmesh.services.templates.convert import struct_to_dict
from llmesh.v1 import chat_pb2, orchestrator_pb2

_ROLES = {
    chat_pb2.ROLE_SYSTEM: Role.SYSTEM,
    chat_pb2.ROLE_USER: Role.USER,
    chat_pb2.ROLE_ASSISTANT: Role.ASSISTANT,
    chat_pb2.ROLE_TOOL: Role.TOOL,
}
_CHOICES = {
    chat_pb2.TOOL_CHOICE_MODE_UNSPECIFIED: ToolChoiceMode.UNSPECIFIED,
    chat_pb2.TOOL_CHOICE_MODE_AUTO: ToolChoiceMode.AUTO,
    chat_pb2.TOOL_CHOICE_MODE_NONE: ToolChoiceMode.NONE,
    chat_pb2.TOOL_CHOICE_MODE_REQUIRED: ToolChoiceMode.REQUIRED,
    chat_pb2.TOOL_CHOICE_MODE_TOOL: ToolChoiceMode.TOOL,
}
_EFFORTS = {
    chat_pb2.REASONING_EFFORT_UNSPECIFIED: ReasoningEffort.UNSPECIFIED,
    chat_pb2.REASONING_EFFORT_LOW: ReasoningEffort.LOW,
    chat_pb2.REASONING_EFFORT_MEDIUM: ReasoningEffort.MEDIUM,
    chat_pb2.REASONING_EFFORT_HIGH: ReasoningEffort.HIGH,
}
MIN_THINKING_BUDGET = 1024
"""The smallest extended-thinking budget Anthropic accepts."""

_DEFAULT_LIMITS = PartLimits()

MAX_STOP_SEQUENCES = 16
"""The most stop sequences a call may carry (OpenAI allows 4, Anthropic more)."""


def chat_call_from_request(
    request: orchestrator_pb2.StreamChatRequest | orchestrator_pb2.ChatRequest,
    *,
    max_request_bytes: int,
    limits: PartLimits = _DEFAULT_LIMITS,
) -> ChatCall:
    """Validate a `StreamChatRequest` or `ChatRequest` (its size and its parts' sizes too) and
    map its input to a `ChatCall`; raises INVALID_REQUEST."""
    check_size(request, max_request_bytes)
    return chat_call_from_proto(request.input, request.HasField("input"), limits=limits)


def check_size(request: Any, max_request_bytes: int) -> None:
    """INVALID_REQUEST (on the ``input`` field) for a request larger than the limit."""
    size = request.ByteSize()
    if size > max_request_bytes:
        raise LlmeshError(
            Reason.INVALID_REQUEST,
            f"request is {size} bytes; the limit is {max_request_bytes}",
            violations=(FieldViolation("input", f"larger than {max_request_bytes} bytes"),),
        )


def chat_call_from_proto(
    inp: chat_pb2.ChatInput,
    has_input: bool,
    *,
    prefix: str = "input",
    limits: PartLimits = _DEFAULT_LIMITS,
) -> ChatCall:
    """Validate a `ChatInput` and map it to a `ChatCall`; raises INVALID_REQUEST."""
    bad: list[FieldViolation] = []

    def violation(path: str, what: str) -> None:
        bad.append(FieldViolation(f"{prefix}.{path}" if path else prefix, what))

    if not has_input:
        violation("", "is required")
        raise _invalid(bad)
    if not inp.model.strip():
        violation("model", "must name a model, e.g. emulator/echo")
    template = _template(inp, violation)
    if not inp.messages and template is None:
        violation("messages", "must contain at least one message (or name a template)")
    messages: list[Message] = []
    for i, m in enumerate(inp.messages):
        role = _ROLES.get(m.role)
        if role is None:
            violation(f"messages[{i}].role", "must be SYSTEM, USER, ASSISTANT or TOOL")
            continue
        if role is Role.TOOL and not m.tool_call_id:
            violation(f"messages[{i}].tool_call_id", "is required for a tool message")
        if m.tool_calls and role is not Role.ASSISTANT:
            violation(f"messages[{i}].tool_calls", "only assistant messages carry tool calls")
        calls = []
        for j, c in enumerate(m.tool_calls):
            if not c.name:
                violation(f"messages[{i}].tool_calls[{j}].name", "is required")
            if c.arguments:
                try:
                    json.loads(c.arguments)
                except ValueError:
                    violation(f"messages[{i}].tool_calls[{j}].arguments", "must be a JSON object")
            at = f"messages[{i}].tool_calls[{j}]"
            control = cache_control_from_proto(c, at, violation)
            calls.append(ToolCall(c.id, c.name, c.arguments or "{}", control))
        if m.thinking and role is not Role.ASSISTANT:
            violation(f"messages[{i}].thinking", "only assistant messages carry thinking")
        thinking = (
            tuple(ThinkingBlock(b.thinking, b.signature, b.redacted_data) for b in m.thinking)
            if m.thinking
            else ()
        )
        if m.parts and m.content:
            violation(f"messages[{i}].content", "must be empty when parts are given")
        parts = parts_from_proto(m.parts, f"messages[{i}].parts", violation, limits)
        order = order_from_proto(m.block_order, f"messages[{i}].block_order", violation)
        if order and role is not Role.ASSISTANT:
            violation(f"messages[{i}].block_order", "only assistant messages carry an order")
        message = Message(
            role,
            m.content,
            tuple(calls),
            m.tool_call_id,
            m.name,
            thinking=thinking,
            parts=parts,
            cache_control=cache_control_from_proto(m, f"messages[{i}]", violation),
            is_error=m.is_error,
            order=order,
        )
        problem = order_problem(message)
        if problem is not None:
            violation(f"messages[{i}].block_order", problem)
        messages.append(message)
    names: set[str] = set()
    tools: list[Tool] = []
    for i, t in enumerate(inp.tools):
        if not t.name:
            violation(f"tools[{i}].name", "is required")
        elif t.name in names:
            violation(f"tools[{i}].name", f"duplicate tool name {t.name!r}")
        names.add(t.name)
        params: dict[str, Any] = (
            json_format.MessageToDict(t.parameters) if t.HasField("parameters") else {}
        )
        control = cache_control_from_proto(t, f"tools[{i}]", violation)
        tools.append(Tool(t.name, t.description, params, control))
    choice = _CHOICES.get(inp.tool_choice.mode)
    if choice is None:
        violation("tool_choice.mode", "unknown mode")
        choice = ToolChoiceMode.UNSPECIFIED
    if choice is ToolChoiceMode.TOOL and inp.tool_choice.name not in names:
        violation("tool_choice.name", "must name one of the tools")
    if choice in (ToolChoiceMode.REQUIRED, ToolChoiceMode.TOOL) and not tools:
        violation("tool_choice", "requires tools")
    temperature = inp.temperature if inp.HasField("temperature") else None
    if temperature is not None and not 0.0 <= temperature <= 2.0:
        violation("temperature", "must be between 0 and 2")
    top_p = inp.top_p if inp.HasField("top_p") else None
    if top_p is not None and not 0.0 < top_p <= 1.0:
        violation("top_p", "must be in (0, 1]")
    max_tokens = inp.max_tokens if inp.HasField("max_tokens") else None
    if max_tokens is not None and max_tokens <= 0:
        violation("max_tokens", "must be positive")
    if len(inp.stop) > MAX_STOP_SEQUENCES:
        violation("stop", f"at most {MAX_STOP_SEQUENCES} stop sequences")
    if any(not s for s in inp.stop):
        violation("stop", "stop sequences must not be empty")
    for i, f in enumerate(inp.fallbacks):
        if not f.strip():
            violation(f"fallbacks[{i}]", "must name a model")
    options = _options(inp, violation)
    response_format = response_format_from_proto(inp, violation)
    sampling = sampling_from_proto(inp, violation)
    cache = inp.cache
    ttl = cache.prompt_cache_ttl or "5m"
    if ttl not in ("5m", "1h"):
        violation("cache.prompt_cache_ttl", 'must be "5m" or "1h"')
    if cache.response_cache and cache.no_response_cache:
        violation("cache", "response_cache and no_response_cache exclude each other")
    ttl_field = cache.response_cache_ttl
    if cache.HasField("response_cache_ttl") and ttl_field.ToTimedelta().total_seconds() <= 0:
        violation("cache.response_cache_ttl", "must be a positive duration")
    if inp.HasField("max_cost_usd") and not inp.max_cost_usd > 0:
        violation("max_cost_usd", "must be positive")
    effort = _EFFORTS.get(inp.reasoning_effort)
    if effort is None:
        violation("reasoning_effort", "unknown effort")
        effort = ReasoningEffort.UNSPECIFIED
    budget = inp.thinking_budget_tokens if inp.HasField("thinking_budget_tokens") else None
    if budget is not None:
        if budget < MIN_THINKING_BUDGET:
            violation("thinking_budget_tokens", f"must be at least {MIN_THINKING_BUDGET}")
        elif max_tokens is not None and max_tokens <= budget:
            violation("thinking_budget_tokens", "must be below max_tokens")
    if bad:
        raise _invalid(bad)
    request = ChatRequest(
        messages=tuple(messages),
        tools=tuple(tools),
        tool_choice=choice,
        tool_choice_name=inp.tool_choice.name,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        stop=tuple(inp.stop),
        seed=inp.seed if inp.HasField("seed") else None,
        prompt_cache="off" if cache.prompt_cache == chat_pb2.PROMPT_CACHE_MODE_OFF else "auto",
        prompt_cache_ttl=ttl,
        reasoning_effort=effort,
        thinking_budget_tokens=budget,
        response_format=response_format,
        parallel_tool_calls=(
            inp.parallel_tool_calls if inp.HasField("parallel_tool_calls") else None
        ),
        **sampling,
        anthropic_beta=tuple(inp.anthropic_beta),
        user=inp.metadata.get("user", ""),
    )
    return ChatCall(
        inp.model.strip(),
        request,
        tuple(inp.fallbacks),
        dict(inp.metadata),
        options,
        response_cache=False
        if cache.no_response_cache
        else (True if cache.response_cache else None),
        response_cache_ttl=cache.response_cache_ttl.ToTimedelta().total_seconds()
        if cache.HasField("response_cache_ttl")
        else None,
        max_cost_usd=inp.max_cost_usd if inp.HasField("max_cost_usd") else None,
        template=template,
    )


def _template(inp: chat_pb2.ChatInput, violation: Any) -> TemplateUse | None:
    """The template the call names (``name`` or ``name@version``) with its variables."""
    if not inp.template:
        if inp.HasField("template_variables"):
            violation("template_variables", "only with a template")
        return None
    try:
        ref = parse_ref(inp.template)
    except LlmeshError:
        violation("template", f"{inp.template!r} is not a template name or name@version")
        return None
    return TemplateUse(ref.name, ref.version, struct_to_dict(inp.template_variables))


_POLICIES = {
    chat_pb2.MID_STREAM_POLICY_UNSPECIFIED: None,
    chat_pb2.MID_STREAM_POLICY_NEVER: MidStreamPolicy.NEVER,
    chat_pb2.MID_STREAM_POLICY_RESTART: MidStreamPolicy.RESTART,
    chat_pb2.MID_STREAM_POLICY_CONTINUE: MidStreamPolicy.CONTINUE,
}


def _options(inp: chat_pb2.ChatInput, violation: Any) -> CallOptions:
    """The request's routing overrides (policy, timeouts, hedging)."""

    def seconds(name: str) -> float | None:
        if not inp.HasField(name):  # type: ignore[arg-type]
            return None
        value = getattr(inp, name).ToTimedelta().total_seconds()
        if value <= 0:
            violation(name, "must be a positive duration")
        return float(value)

    if inp.mid_stream_policy not in _POLICIES:
        violation("mid_stream_policy", "unknown policy")
    hedge_delay: float | None = None
    hedge_pct: float | None = None
    hedge: bool | None = None
    if inp.HasField("hedge"):
        hedge = inp.hedge.enabled
        if inp.hedge.HasField("delay"):
            hedge_delay = inp.hedge.delay.ToTimedelta().total_seconds()
            if hedge_delay < 0:
                violation("hedge.delay", "must not be negative")
        if inp.hedge.ttft_percentile:
            hedge_pct = inp.hedge.ttft_percentile
            if not 0 < hedge_pct < 100:
                violation("hedge.ttft_percentile", "must be between 0 and 100")
    return CallOptions(
        mid_stream=_POLICIES.get(inp.mid_stream_policy),
        first_token_timeout=seconds("first_token_timeout"),
        stall_timeout=seconds("stall_timeout"),
        hedge=hedge,
        hedge_delay=hedge_delay if hedge else None,
        hedge_percentile=hedge_pct if hedge else None,
    )


def _invalid(bad: list[FieldViolation]) -> LlmeshError:
    summary = "; ".join(f"{v.field}: {v.description}" for v in bad)
    return LlmeshError(Reason.INVALID_REQUEST, f"invalid request: {summary}", violations=tuple(bad))
