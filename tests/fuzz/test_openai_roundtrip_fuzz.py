"""OpenAI Chat Completions bodies -> llmesh's `ChatInput` (the gateway) -> the domain request
(the orchestrator's validation) -> an OpenAI body again (the provider adapter's wire): what
llmesh can carry comes out as it went in, up to the forms OpenAI treats as the same (a
``developer`` message is a ``system`` one, text-only content parts are one string, a single
stop string is a list of one, a zero penalty or ``logprobs: false`` is no setting).
"""

from __future__ import annotations

import base64
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from llmesh.gateway.openai_compat import parse_completion_request
from llmesh.services.orchestrator.convert import chat_call_from_proto
from llmesh.services.orchestrator.providers.openai_wire import to_provider_request

_TEXT = st.text(max_size=12)
_NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
_ID = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=8)
_ARGS = st.dictionaries(_NAME, st.integers(-5, 5) | _TEXT | st.booleans(), max_size=3)
_SCHEMA = st.fixed_dictionaries(
    {"type": st.just("object")},
    optional={"properties": st.dictionaries(_NAME, st.just({"type": "string"}), max_size=2)},
)

Pair = tuple[Any, Any]
"""(what the client sends, what the provider adapter should send)."""


@st.composite
def _part(draw: st.DrawFn) -> Pair:
    kind = draw(st.sampled_from(["text", "url", "data", "audio", "file"]))
    if kind == "text":
        text = draw(_TEXT)
        return {"type": "text", "text": text}, {"type": "text", "text": text}
    if kind == "audio":
        data = base64.b64encode(draw(st.binary(min_size=1, max_size=8))).decode()
        audio = {"data": data, "format": draw(st.sampled_from(["wav", "mp3"]))}
        return {"type": "input_audio", "input_audio": audio}, {
            "type": "input_audio",
            "input_audio": audio,
        }
    if kind == "file":
        data = base64.b64encode(draw(st.binary(min_size=1, max_size=8))).decode()
        file = {"file_data": f"data:application/pdf;base64,{data}"}
        if draw(st.booleans()):
            file["filename"] = draw(_NAME)
        return {"type": "file", "file": file}, {"type": "file", "file": file}
    if kind == "url":
        url = "https://example.com/" + draw(_NAME) + ".png"
    else:
        data = base64.b64encode(draw(st.binary(min_size=1, max_size=8))).decode()
        url = f"data:{draw(st.sampled_from(['image/png', 'image/jpeg']))};base64,{data}"
    image = {"url": url}
    detail = draw(st.sampled_from(["", "auto", "low", "high"]))
    if detail:
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}, {"type": "image_url", "image_url": image}


@st.composite
def _message(draw: st.DrawFn, tool_ids: list[str]) -> Pair:
    role = draw(st.sampled_from(["system", "developer", "user", "assistant", "tool"]))
    sent: dict[str, Any] = {"role": role}
    wire: dict[str, Any] = {"role": "system" if role == "developer" else role}
    if role == "user" and draw(st.booleans()):
        parts = draw(st.lists(_part(), max_size=3))
        sent["content"] = [p for p, _ in parts]
        if any(p["type"] != "text" for p, _ in parts):
            wire["content"] = [w for _, w in parts]
        else:
            wire["content"] = "\n".join(p["text"] for p, _ in parts)
    elif role == "assistant" and draw(st.booleans()):
        calls = draw(st.lists(st.tuples(_ID, _NAME, _ARGS), min_size=1, max_size=2))
        text = draw(st.none() | _TEXT)
        sent["content"] = text
        sent["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": _json(a)}}
            for i, n, a in calls
        ]
        wire["content"] = text or None
        wire["tool_calls"] = sent["tool_calls"]
    else:
        sent["content"] = wire["content"] = draw(_TEXT)
    if role == "tool":
        call_id = draw(st.sampled_from(tool_ids) if tool_ids else _ID)
        sent["tool_call_id"] = wire["tool_call_id"] = call_id
    if draw(st.booleans()):
        sent["name"] = wire["name"] = draw(_NAME)
    return sent, wire


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


@st.composite
def bodies(draw: st.DrawFn) -> Pair:
    messages = draw(st.lists(_message([]), min_size=1, max_size=4))
    sent: dict[str, Any] = {"model": "gpt-x", "messages": [m for m, _ in messages]}
    wire: dict[str, Any] = {"model": "gpt-x", "messages": [w for _, w in messages]}
    names = draw(st.lists(_NAME, unique=True, max_size=3))
    if names:
        tools = []
        for name in names:
            fn: dict[str, Any] = {"name": name}
            description = draw(st.none() | _TEXT)
            if description is not None:
                fn["description"] = description
            schema = draw(st.none() | _SCHEMA)
            if schema is not None:
                fn["parameters"] = schema
            tools.append({"type": "function", "function": fn})
        sent["tools"] = tools
        wire["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t["function"]["name"],
                    "description": t["function"].get("description") or "",
                    "parameters": t["function"].get("parameters")
                    or {"type": "object", "properties": {}},
                },
            }
            for t in tools
        ]
        choice = draw(st.sampled_from([None, "auto", "none", "required", "tool"]))
        if choice == "tool":
            named = {"type": "function", "function": {"name": draw(st.sampled_from(names))}}
            sent["tool_choice"] = wire["tool_choice"] = named
        elif choice is not None:
            sent["tool_choice"] = wire["tool_choice"] = choice
        parallel = draw(st.none() | st.booleans())
        if parallel is not None:
            sent["parallel_tool_calls"] = wire["parallel_tool_calls"] = parallel
    for key, values in (
        ("temperature", st.floats(0, 2)),
        ("top_p", st.floats(0, 1, exclude_min=True)),
        ("seed", st.integers(-(2**63), 2**63 - 1)),
        ("reasoning_effort", st.sampled_from(["low", "medium", "high"])),
        ("service_tier", st.sampled_from(["auto", "default", "flex", "priority", "scale"])),
    ):
        value = draw(st.none() | values)
        if value is not None:
            sent[key] = wire[key] = value
    limit = draw(st.none() | st.integers(1, 2**31 - 1))
    if limit is not None:
        sent[draw(st.sampled_from(["max_tokens", "max_completion_tokens"]))] = limit
        wire["max_tokens"] = limit
    stop = draw(
        st.none() | st.text(min_size=1, max_size=5) | st.lists(_NAME, min_size=1, max_size=4)
    )
    if stop is not None:
        sent["stop"] = stop
        wire["stop"] = [stop] if isinstance(stop, str) else stop
    for key in ("presence_penalty", "frequency_penalty"):
        penalty = draw(st.none() | st.floats(-2, 2))
        if penalty is not None:
            sent[key] = penalty
            if penalty:
                wire[key] = penalty
    bias = draw(
        st.none()
        | st.dictionaries(st.integers(0, 10**9).map(str), st.integers(-100, 100), max_size=3)
    )
    if bias is not None:
        sent["logit_bias"] = bias
        if bias:
            wire["logit_bias"] = bias
    logprobs = draw(st.none() | st.booleans())
    if logprobs is not None:
        sent["logprobs"] = logprobs
        if logprobs:
            wire["logprobs"] = True
            top = draw(st.none() | st.integers(0, 20))
            if top is not None:
                sent["top_logprobs"] = wire["top_logprobs"] = top
    fmt = draw(st.sampled_from([None, "text", "json_object", "json_schema"]))
    if fmt == "json_schema":
        spec: dict[str, Any] = {"name": draw(_NAME), "schema": draw(_SCHEMA)}
        strict = draw(st.none() | st.booleans())
        if strict is not None:
            spec["strict"] = strict
        sent["response_format"] = {"type": fmt, "json_schema": spec}
        out = {"name": spec["name"], "schema": spec["schema"]}
        if strict:
            out["strict"] = True
        wire["response_format"] = {"type": fmt, "json_schema": out}
    elif fmt is not None:
        sent["response_format"] = wire["response_format"] = {"type": fmt}
    return sent, wire


@given(bodies())
def test_what_llmesh_carries_comes_out_as_it_went_in(pair: Pair) -> None:
    sent, expected = pair
    chat = parse_completion_request(sent).input
    call = chat_call_from_proto(chat, True)
    assert to_provider_request(call.model, call.request) == expected
