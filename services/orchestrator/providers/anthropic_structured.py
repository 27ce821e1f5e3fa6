"""How a request's structured output (``response_format``) travels to Anthropic.

Two paths, chosen per call by `output_path`:

- NATIVE: Anthropic's own structured output, ``output_config: {format: {type: json_schema,
  schema}}``; the reply is an ordinary text block holding the JSON, streamed as text deltas.
  Used for a JSON_SCHEMA format when the model supports it (`NATIVE_MODEL_PREFIXES`, or
  the provider's ``structured_output: native``) and the schema keeps to the subset the API
  accepts (`native_schema`).
- TOOL: one more tool, `STRUCTURED_TOOL`, carrying the schema as its ``input_schema`` (a
  permissive object schema for JSON_OBJECT), with ``tool_choice`` forcing it; the stream
  parser turns that tool's input back into text and its ``tool_use`` stop into STOP. Used
  for JSON_OBJECT (the API has no schema-less JSON mode), for models without native
  support, for schemas outside the native subset, and for conversations ending with an
  assistant prefill, which the API refuses to combine with ``output_config.format``.

`native_schema` only ever narrows what the caller's schema allows (it closes objects that
leave ``additionalProperties`` unset, as the API requires), so a reply valid against the
sent schema is valid against the caller's; anything it cannot send unchanged in meaning
takes the TOOL path rather than failing upstream. Either way the Structured layer still
validates the reply against the caller's own schema.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any

from llmesh.services.common.config import STRUCTURED_OUTPUT_MODES
from llmesh.services.core.chat import ChatRequest, ResponseFormatType, Role

__all__ = [
    "NATIVE_MODEL_PREFIXES",
    "STRUCTURED_OUTPUT_MODES",
    "STRUCTURED_TOOL",
    "OutputPath",
    "add_structured",
    "native_schema",
    "output_path",
    "parser_tool",
]

STRUCTURED_TOOL = "json_response"
"""The tool that carries a structured-output schema to Anthropic on the TOOL path."""

_STRUCTURED_DESCRIPTION = "Respond with the answer as this tool's input, which is the JSON reply."

NATIVE_MODEL_PREFIXES = (
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
    "claude-opus-4-5",
    "claude-sonnet-4-6",
    "claude-opus-4-6",
    "claude-opus-4-7",
    "claude-opus-4-8",
    "claude-haiku-5",
    "claude-sonnet-5",
    "claude-opus-5",
    "claude-fable-5",
    "claude-mythos-5",
)
"""Model ids (or their dated versions) with native structured output on Anthropic's API:
the Claude 4.5 models and every later one. Older models (Claude 3.x, Sonnet 4, Opus 4 and
4.1) answer ``output_config.format`` with a 400."""


class OutputPath(enum.Enum):
    """How one call's structured output is asked for."""

    NATIVE = "native"
    TOOL = "tool"


_ANNOTATIONS = frozenset({"$schema", "$comment", "examples"})
"""Keywords that constrain nothing: left out of a native schema."""

_COMMON = frozenset(
    {"type", "description", "title", "default", "enum", "const", "anyOf", "allOf", "$ref"}
)
_SHAPING = frozenset({"type", "enum", "const", "anyOf", "allOf", "$ref"})
"""A native schema node needs one of these: the API takes no unconstrained ``{}``."""
_BY_TYPE: Mapping[str, frozenset[str]] = {
    "object": frozenset({"properties", "required", "additionalProperties"}),
    "array": frozenset({"items", "minItems"}),
    "string": frozenset({"format", "pattern"}),
}
_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
_UNSUPPORTED_PATTERN = re.compile(r"\(\?[=!<]|\\[1-9bBk]")
"""Regex features outside the API's pattern subset: lookaround, backreferences, ``\\b``."""

MAX_OPTIONAL = 24
"""The most optional properties a native schema may declare, all objects together."""
MAX_UNIONS = 16
"""The most ``anyOf`` / type-list schemas a native schema may hold."""


class _Unsupported(Exception):
    """The schema uses something native structured output does not take."""


class _Walk:
    """One pass over a schema, closing objects and counting what the API limits."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.defs: dict[str, Any] = {}
        for key in ("$defs", "definitions"):
            found = root.get(key)
            if found is not None:
                if not isinstance(found, Mapping):
                    raise _Unsupported
                self.defs.update({f"#/{key}/{name}": s for name, s in found.items()})
        self.optional = 0
        self.unions = 0

    def node(self, schema: object, refs: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(schema, Mapping):
            raise _Unsupported
        kind = schema.get("type")
        kinds = kind if isinstance(kind, list) else [kind] if kind is not None else []
        if not all(k in _TYPES for k in kinds) or not _SHAPING.intersection(schema):
            raise _Unsupported
        allowed = _COMMON.union(*(_BY_TYPE.get(k, frozenset()) for k in kinds))
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _ANNOTATIONS or (key in ("$defs", "definitions") and not refs):
                continue
            if key not in allowed:
                raise _Unsupported
            out[key] = self._keyword(key, value, refs)
        if len(kinds) > 1 or "anyOf" in schema:
            self.unions += 1
        if "object" in kinds:
            out.setdefault("additionalProperties", False)
            required = schema.get("required", ())
            self.optional += len([p for p in out.get("properties", {}) if p not in required])
        return out

    def _keyword(self, key: str, value: Any, refs: tuple[str, ...]) -> Any:
        if key in ("enum", "const"):
            values = value if key == "enum" else [value]
            if not isinstance(values, list) or not all(
                v is None or isinstance(v, str | int | float | bool) for v in values
            ):
                raise _Unsupported
            return value
        if key in ("anyOf", "allOf"):
            if not isinstance(value, list) or not value:
                raise _Unsupported
            return [self.node(v, refs) for v in value]
        if key == "properties":
            if not isinstance(value, Mapping):
                raise _Unsupported
            return {name: self.node(v, refs) for name, v in value.items()}
        if key == "items":
            return self.node(value, refs)
        if key == "additionalProperties" and value is not False:
            raise _Unsupported  # an open object or a map: the API takes closed objects only
        if key == "minItems" and value not in (0, 1):
            raise _Unsupported
        if key == "format" and value not in _FORMATS:
            raise _Unsupported
        if key == "pattern" and (not isinstance(value, str) or _UNSUPPORTED_PATTERN.search(value)):
            raise _Unsupported
        if key == "$ref":
            target = self.defs.get(value) if isinstance(value, str) else None
            if target is None or value in refs:
                raise _Unsupported  # external, unknown or recursive
            self.node(target, (*refs, value))  # checked where it is used, sent in $defs
        return value


def native_schema(schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """`schema` as ``output_config.format.schema``, or None when native output cannot take it.

    The root must be an object; every object gets ``additionalProperties: false`` when it
    leaves it unset (one that sets anything else is refused); ``$defs`` / ``definitions``
    are kept and closed too; annotations (``$schema``, ``examples``) are dropped. Refused:
    keywords outside the supported subset (numeric bounds, string lengths, ``maxItems``,
    ``oneOf``, ``not``, ``patternProperties``...), ``minItems`` other than 0 or 1, unknown
    string formats, lookaround or backreferences in a pattern, non-primitive enum values,
    refs that are external or recursive, and more than `MAX_OPTIONAL` optional properties
    or `MAX_UNIONS` unions.
    """
    if schema.get("type") != "object":
        return None
    try:
        walk = _Walk(schema)
        out = walk.node(schema)
        for key in ("$defs", "definitions"):
            if key in schema:
                out[key] = {name: walk.node(s, ("-",)) for name, s in schema[key].items()}
    except _Unsupported:
        return None
    if walk.optional > MAX_OPTIONAL or walk.unions > MAX_UNIONS:
        return None
    return out


def output_path(mode: str, model: str, req: ChatRequest) -> OutputPath | None:
    """The path of `req`'s structured output to `model` under the provider's `mode` (one of
    `STRUCTURED_OUTPUT_MODES`: ``auto`` is native for the models in
    `NATIVE_MODEL_PREFIXES`, ``native`` for every model, ``tool`` never); None when the
    request asks for plain text."""
    fmt = req.response_format
    if fmt is None or not fmt.structured:
        return None
    if mode == "tool" or fmt.type is not ResponseFormatType.JSON_SCHEMA:
        return OutputPath.TOOL
    if mode != "native" and not model.startswith(NATIVE_MODEL_PREFIXES):
        return OutputPath.TOOL
    if req.messages and req.messages[-1].role is Role.ASSISTANT:
        return OutputPath.TOOL  # a prefill: the API refuses it with output_config.format
    return OutputPath.NATIVE if native_schema(fmt.schema) is not None else OutputPath.TOOL


def parser_tool(path: OutputPath | None) -> str | None:
    """The tool name the stream parser unwraps into text on `path` (TOOL only)."""
    return STRUCTURED_TOOL if path is OutputPath.TOOL else None


def add_structured(req: ChatRequest, body: dict[str, Any], path: OutputPath) -> None:
    """Ask for `req`'s structured output in `body` along `path` (see the module docstring)."""
    fmt = req.response_format
    assert fmt is not None
    if path is OutputPath.NATIVE:
        schema = native_schema(fmt.schema)
        assert schema is not None  # `output_path` chose NATIVE for this schema
        config = dict(body.get("output_config") or {})
        config["format"] = {"type": "json_schema", "schema": schema}
        body["output_config"] = config
        return
    schema = dict(fmt.schema) if fmt.type is ResponseFormatType.JSON_SCHEMA else {}
    tool = {
        "name": STRUCTURED_TOOL,
        "description": _STRUCTURED_DESCRIPTION,
        "input_schema": schema or {"type": "object"},
    }
    body["tools"] = [*body.get("tools", ()), tool]
    body["tool_choice"] = {"type": "tool", "name": STRUCTURED_TOOL}
