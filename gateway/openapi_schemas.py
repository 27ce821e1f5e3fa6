"""The JSON Schemas of the gateway's OpenAPI document (`llmesh.gateway.openapi`): request
bodies as the parsers read them, the replies, and the two error shapes.

The request schemas follow the parsers (`openai_compat`, `openai_embeddings`,
`anthropic.request`, `responses_api.request`): the fields they honour, with their types and
ranges. They describe what is well-formed, not every rule: a well-formed body can still be a
400 (a tool message without ``tool_call_id``, a model no route serves).
"""

from __future__ import annotations

from typing import Any

__all__ = ["SCHEMAS"]

_STR: dict[str, Any] = {"type": "string"}
_NAME = {"type": "string", "minLength": 1}
_INT32 = {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
_STRINGS = {"type": "array", "items": _STR}
_OBJECT = {"type": "object"}
_BASE64 = {"type": "string", "format": "byte"}
_DURATION = {"type": "string", "pattern": "^[0-9]{1,3}(\\.[0-9]{1,3})?s$", "example": "5s"}
"""A protobuf JSON duration: seconds with an ``s``."""
_MODEL = {"type": "string", "minLength": 1, "example": "emulator/echo"}


def _closed(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """An object of these properties only (the parsers refuse unknown fields)."""
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        out["required"] = required
    return out


_EXTENSIONS = {
    "fallbacks": _STRINGS,
    "max_cost_usd": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
    "mid_stream_policy": {"type": "string", "enum": ["NEVER", "RESTART", "CONTINUE"]},
    "first_token_timeout": _DURATION,
    "stall_timeout": _DURATION,
    "thinking_budget_tokens": {"type": "integer", "minimum": 1024, "maximum": 2**31 - 1},
    "schema_repair_attempts": {"type": "integer", "minimum": 0, "maximum": 5},
}
"""llmesh's own fields on the OpenAI surfaces (the SDKs' ``extra_body``)."""

_TEXT_PART = _closed({"type": {"enum": ["text"]}, "text": _STR}, ["type", "text"])
_CHAT_PART = {
    "oneOf": [
        _TEXT_PART,
        _closed(
            {
                "type": {"enum": ["image_url"]},
                "image_url": _closed(
                    {
                        "url": {"type": "string", "pattern": "^https?://"},
                        "detail": {"enum": ["auto", "low", "high"]},
                    },
                    ["url"],
                ),
            },
            ["type", "image_url"],
        ),
        _closed(
            {
                "type": {"enum": ["input_audio"]},
                "input_audio": _closed(
                    {"data": _BASE64, "format": {"enum": ["wav", "mp3"]}}, ["data", "format"]
                ),
            },
            ["type", "input_audio"],
        ),
    ]
}
_TOOL_CALL = _closed(
    {
        "id": _STR,
        "type": {"enum": ["function"]},
        "function": _closed({"name": _STR, "arguments": _STR}, ["name"]),
    },
    ["id", "function"],
)
_CHAT_CONTENT = {"anyOf": [_STR, {"type": "array", "items": _CHAT_PART}]}
_CHAT_MESSAGE = {
    "oneOf": [
        _closed(
            {
                "role": {"enum": ["system", "developer", "user"]},
                "content": _CHAT_CONTENT,
                "name": _STR,
            },
            ["role", "content"],
        ),
        _closed(
            {
                "role": {"enum": ["assistant"]},
                "content": {"anyOf": [_STR, {"type": "null"}]},
                "name": _STR,
                "tool_calls": {"type": "array", "items": _TOOL_CALL},
            },
            ["role"],
        ),
        _closed(
            {"role": {"enum": ["tool"]}, "content": _STR, "tool_call_id": _STR},
            ["role", "content", "tool_call_id"],
        ),
    ]
}
_FUNCTION_TOOL = _closed(
    {
        "type": {"enum": ["function"]},
        "function": _closed(
            {
                "name": _NAME,
                "description": _STR,
                "parameters": _OBJECT,
                "strict": {"enum": [False]},
            },
            ["name"],
        ),
    },
    ["type", "function"],
)
_CHAT_REQUEST = _closed(
    {
        "model": _MODEL,
        "messages": {"type": "array", "minItems": 1, "items": _CHAT_MESSAGE},
        "tools": {"type": "array", "items": _FUNCTION_TOOL},
        "tool_choice": {
            "anyOf": [
                {"enum": ["auto", "none", "required"]},
                _closed(
                    {"type": {"enum": ["function"]}, "function": _closed({"name": _STR}, ["name"])},
                    ["type", "function"],
                ),
            ]
        },
        "parallel_tool_calls": {"type": "boolean"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "max_tokens": _INT32,
        "max_completion_tokens": _INT32,
        "stop": {"anyOf": [_STR, _STRINGS]},
        "seed": {"type": "integer"},
        "n": {"type": "integer", "minimum": 1, "maximum": 128},
        "metadata": {"type": "object", "additionalProperties": _STR},
        "user": _STR,
        "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2},
        "logit_bias": {
            "type": "object",
            "additionalProperties": {"type": "integer", "minimum": -100, "maximum": 100},
        },
        "service_tier": {"enum": ["auto", "default", "flex", "priority", "scale"]},
        "logprobs": {"type": "boolean"},
        "top_logprobs": {"type": "integer", "minimum": 0, "maximum": 20},
        "reasoning_effort": {"enum": ["low", "medium", "high"]},
        "response_format": {
            "anyOf": [
                _closed({"type": {"enum": ["text", "json_object"]}}, ["type"]),
                _closed(
                    {
                        "type": {"enum": ["json_schema"]},
                        "json_schema": _closed(
                            {"name": _STR, "schema": _OBJECT, "strict": {"type": "boolean"}},
                            ["name", "schema"],
                        ),
                    },
                    ["type", "json_schema"],
                ),
            ]
        },
        "stream": {"type": "boolean"},
        "stream_options": _closed({"include_usage": {"type": "boolean"}}),
        "template": {"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}(@[1-9][0-9]*)?$"},
        "template_variables": _OBJECT,
        **_EXTENSIONS,
    },
    ["model", "messages"],
)
_CHAT_COMPLETION = {
    "type": "object",
    "required": ["id", "object", "created", "model", "choices"],
    "properties": {
        "id": _STR,
        "object": {"enum": ["chat.completion"]},
        "created": {"type": "integer"},
        "model": _STR,
        "choices": {"type": "array"},
        "usage": _OBJECT,
    },
}
_EMBEDDINGS_REQUEST = _closed(
    {
        "model": {"type": "string", "minLength": 1, "example": "emulator/embed"},
        "input": {"anyOf": [_NAME, {"type": "array", "minItems": 1, "items": _NAME}]},
        "encoding_format": {"enum": ["float", "base64"]},
        "dimensions": _INT32,
        "user": _STR,
        "metadata": {"type": "object", "additionalProperties": _STR},
        "fallbacks": _STRINGS,
        "max_cost_usd": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
    },
    ["model", "input"],
)
_EMBEDDINGS = {
    "type": "object",
    "required": ["object", "data", "model", "usage"],
    "properties": {"object": {"enum": ["list"]}, "data": {"type": "array"}, "model": _STR},
}
_MODEL_LIST = {
    "type": "object",
    "required": ["data"],
    "properties": {"object": {"enum": ["list"]}, "data": {"type": "array"}},
}
_MODEL_OBJECT = {"type": "object", "required": ["id"], "properties": {"id": _STR}}

_CACHE_CONTROL = _closed({"type": {"enum": ["ephemeral"]}, "ttl": {"enum": ["5m", "1h"]}}, ["type"])
_ANTHROPIC_SOURCE = {
    "oneOf": [
        _closed({"type": {"enum": ["url"]}, "url": _STR}, ["type", "url"]),
        _closed(
            {"type": {"enum": ["base64"]}, "media_type": _STR, "data": _STR},
            ["type", "media_type", "data"],
        ),
    ]
}
_ANTHROPIC_TEXT = _closed(
    {"type": {"enum": ["text"]}, "text": _STR, "cache_control": _CACHE_CONTROL}, ["type", "text"]
)
_ANTHROPIC_BLOCK = {
    "oneOf": [
        _ANTHROPIC_TEXT,
        _closed(
            {
                "type": {"enum": ["image", "document"]},
                "source": _ANTHROPIC_SOURCE,
                "cache_control": _CACHE_CONTROL,
            },
            ["type", "source"],
        ),
        _closed(
            {
                "type": {"enum": ["tool_use"]},
                "id": _STR,
                "name": _STR,
                "input": _OBJECT,
                "cache_control": _CACHE_CONTROL,
            },
            ["type", "id", "name", "input"],
        ),
        _closed(
            {
                "type": {"enum": ["tool_result"]},
                "tool_use_id": _STR,
                "content": {"anyOf": [_STR, {"type": "array", "items": _ANTHROPIC_TEXT}]},
                "is_error": {"type": "boolean"},
                "cache_control": _CACHE_CONTROL,
            },
            ["type", "tool_use_id"],
        ),
        _closed(
            {"type": {"enum": ["thinking"]}, "thinking": _STR, "signature": _STR},
            ["type", "thinking", "signature"],
        ),
        _closed({"type": {"enum": ["redacted_thinking"]}, "data": _STR}, ["type", "data"]),
    ]
}
_ANTHROPIC_MESSAGE = _closed(
    {
        "role": {"enum": ["user", "assistant"]},
        "content": {"anyOf": [_STR, {"type": "array", "items": _ANTHROPIC_BLOCK}]},
    },
    ["role", "content"],
)
_ANTHROPIC_TOOL = _closed(
    {
        "type": {"enum": ["custom"]},
        "name": _NAME,
        "description": _STR,
        "input_schema": _OBJECT,
        "cache_control": _CACHE_CONTROL,
    },
    ["name", "input_schema"],
)
_ANTHROPIC_CONVERSATION = {
    "model": _MODEL,
    "messages": {"type": "array", "minItems": 1, "items": _ANTHROPIC_MESSAGE},
    "system": {"anyOf": [_STR, {"type": "array", "items": _ANTHROPIC_TEXT}]},
    "tools": {"type": "array", "items": _ANTHROPIC_TOOL},
    "tool_choice": _closed(
        {
            "type": {"enum": ["auto", "any", "tool", "none"]},
            "name": _STR,
            "disable_parallel_tool_use": {"type": "boolean"},
        },
        ["type"],
    ),
    "thinking": {
        "oneOf": [
            _closed(
                {
                    "type": {"enum": ["enabled"]},
                    "budget_tokens": {"type": "integer", "minimum": 1024, "maximum": 2**31 - 1},
                },
                ["type", "budget_tokens"],
            ),
            _closed({"type": {"enum": ["disabled"]}}, ["type"]),
        ]
    },
}
_MESSAGES_REQUEST = _closed(
    {
        **_ANTHROPIC_CONVERSATION,
        "max_tokens": _INT32,
        "metadata": _closed({"user_id": _STR}),
        "stop_sequences": _STRINGS,
        "service_tier": {"enum": ["auto", "standard_only"]},
        "stream": {"type": "boolean"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
    },
    ["model", "messages", "max_tokens"],
)
_COUNT_REQUEST = _closed(_ANTHROPIC_CONVERSATION, ["model", "messages"])
_MESSAGE = {
    "type": "object",
    "required": ["id", "type", "role", "content", "model"],
    "properties": {"type": {"enum": ["message"]}, "role": {"enum": ["assistant"]}},
}
_TOKEN_COUNT = {
    "type": "object",
    "required": ["input_tokens"],
    "properties": {"input_tokens": {"type": "integer"}},
}

_RESPONSES_PART = _closed(
    {"type": {"enum": ["input_text", "output_text"]}, "text": _STR}, ["type", "text"]
)
_RESPONSES_ITEM = {
    "oneOf": [
        _closed(
            {
                "type": {"enum": ["message"]},
                "role": {"enum": ["user", "system", "developer", "assistant"]},
                "content": {"anyOf": [_STR, {"type": "array", "items": _RESPONSES_PART}]},
            },
            ["role", "content"],
        ),
        _closed(
            {"type": {"enum": ["function_call"]}, "call_id": _STR, "name": _STR, "arguments": _STR},
            ["type", "call_id", "name", "arguments"],
        ),
        _closed(
            {"type": {"enum": ["function_call_output"]}, "call_id": _STR, "output": _STR},
            ["type", "call_id", "output"],
        ),
    ]
}
_RESPONSES_REQUEST = _closed(
    {
        "model": _MODEL,
        "input": {"anyOf": [_STR, {"type": "array", "minItems": 1, "items": _RESPONSES_ITEM}]},
        "instructions": _STR,
        "tools": {
            "type": "array",
            "items": _closed(
                {
                    "type": {"enum": ["function"]},
                    "name": _NAME,
                    "description": _STR,
                    "parameters": _OBJECT,
                    "strict": {"type": "boolean"},
                },
                ["type", "name"],
            ),
        },
        "tool_choice": {
            "anyOf": [
                {"enum": ["auto", "none", "required"]},
                _closed({"type": {"enum": ["function"]}, "name": _STR}, ["type", "name"]),
            ]
        },
        "parallel_tool_calls": {"type": "boolean"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "top_p": {"type": "number", "minimum": 0, "maximum": 1},
        "max_output_tokens": _INT32,
        "metadata": {"type": "object", "additionalProperties": _STR},
        "user": _STR,
        "text": _closed({"format": _closed({"type": {"enum": ["text", "json_object"]}}, ["type"])}),
        "reasoning": _closed({"effort": {"enum": ["low", "medium", "high"]}}),
        "store": {"enum": [False]},
        "stream": {"type": "boolean"},
        "previous_response_id": _STR,
        "include": {"type": "array", "items": {"enum": ["reasoning.encrypted_content"]}},
        **_EXTENSIONS,
    },
    ["model", "input"],
)
_RESPONSE = {
    "type": "object",
    "required": ["id", "object", "status", "output"],
    "properties": {"object": {"enum": ["response"]}, "output": {"type": "array"}},
}
_HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"enum": ["SERVING", "NOT_SERVING", "UNKNOWN", "SERVICE_UNKNOWN"]}},
}
_OPENAI_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": _STR,
                "type": _STR,
                "param": {"type": "string", "nullable": True},
                "code": {"type": "string", "nullable": True},
            },
        }
    },
}
_ANTHROPIC_ERROR = {
    "type": "object",
    "required": ["type", "error"],
    "properties": {
        "type": {"enum": ["error"]},
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {"type": _STR, "message": _STR},
        },
    },
}

SCHEMAS: dict[str, Any] = {
    "ChatCompletionRequest": _CHAT_REQUEST,
    "ChatCompletion": _CHAT_COMPLETION,
    "EmbeddingsRequest": _EMBEDDINGS_REQUEST,
    "Embeddings": _EMBEDDINGS,
    "ModelList": _MODEL_LIST,
    "Model": _MODEL_OBJECT,
    "MessagesRequest": _MESSAGES_REQUEST,
    "CountTokensRequest": _COUNT_REQUEST,
    "Message": _MESSAGE,
    "TokenCount": _TOKEN_COUNT,
    "ResponsesRequest": _RESPONSES_REQUEST,
    "Response": _RESPONSE,
    "Health": _HEALTH,
    "OpenAIError": _OPENAI_ERROR,
    "AnthropicError": _ANTHROPIC_ERROR,
}
"""The document's ``components.schemas``."""
