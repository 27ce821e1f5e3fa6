"""Anthropic's ``output_config``: native structured output, checked as the real API checks it.

``output_config: {"format": {"type": "json_schema", "schema": {...}}, "effort"?: ...}``
asks for a reply whose text is JSON valid against the schema. The real API answers 400
``invalid_request_error`` for:

- a model without native structured output (`NATIVE_MODEL_PREFIXES`: the Claude 4.5
  models and later ones): ``'<model>' does not support output_config.format.``;
- a schema outside the supported subset, with a message that opens with the field's path:
  ``output_config.format.schema: For 'object' type, 'additionalProperties' must be
  explicitly set to false``, ``... For 'integer' type, property 'minimum' is not
  supported``, ``... For 'number' type, properties maximum, minimum are not supported``,
  ``... For 'array' type, 'minItems' values other than 0 or 1 are not supported``;
- a malformed ``output_config`` (unknown keys, a format type other than ``json_schema``,
  a missing schema), in the API's usual validation wording.

The model table is the emulator's own (it shares no code with the adapters it tests).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from llmesh.services.emulator.errors import ApiError

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
"""Models (and their dated versions) that take ``output_config.format``."""

EFFORTS = ("low", "medium", "high", "xhigh", "max")

_UNSUPPORTED: Mapping[str, tuple[str, ...]] = {
    "number": ("exclusiveMaximum", "exclusiveMinimum", "maximum", "minimum", "multipleOf"),
    "integer": ("exclusiveMaximum", "exclusiveMinimum", "maximum", "minimum", "multipleOf"),
    "string": ("maxLength", "minLength"),
    "array": ("contains", "maxContains", "maxItems", "minContains", "uniqueItems"),
    "object": ("maxProperties", "minProperties", "patternProperties", "propertyNames"),
}
"""Keywords the API refuses, by the type of the schema that carries them."""

_WHERE = "output_config.format.schema"


def _invalid(message: str) -> ApiError:
    return ApiError(400, message)


def supports_native_output(model: str) -> bool:
    """True when `model` takes ``output_config.format``."""
    return model.startswith(NATIVE_MODEL_PREFIXES)


def output_schema(raw: Any, model: str) -> str | None:
    """The schema of ``output_config.format`` as JSON text (None without a format), after
    the checks the real API makes; raises `ApiError` 400 as it does."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _invalid("output_config: Input should be a valid dictionary")
    for key in raw:
        if key not in ("format", "effort"):
            raise _invalid(f"output_config.{key}: Extra inputs are not permitted")
    effort = raw.get("effort")
    if effort is not None and effort not in EFFORTS:
        listed = ", ".join(f"'{e}'" for e in EFFORTS)
        raise _invalid(f"output_config.effort: Input should be {listed}")
    fmt = raw.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _invalid(
            "output_config.format: Input tag does not match any of the expected tags: 'json_schema'"
        )
    for key in fmt:
        if key not in ("type", "schema"):
            raise _invalid(f"output_config.format.{key}: Extra inputs are not permitted")
    schema = fmt.get("schema")
    if schema is None:
        raise _invalid("output_config.format.schema: Field required")
    if not isinstance(schema, dict):
        raise _invalid("output_config.format.schema: Input should be a valid dictionary")
    if not supports_native_output(model):
        raise _invalid(f"'{model}' does not support output_config.format.")
    _check(schema)
    return orjson.dumps(schema).decode()


def _check(schema: object) -> None:
    """Raise the API's 400 for the first unsupported construct in `schema`."""
    if not isinstance(schema, Mapping):
        return
    kind = schema.get("type")
    for t in kind if isinstance(kind, list) else [kind]:
        if not isinstance(t, str):
            continue
        found = sorted(k for k in _UNSUPPORTED.get(t, ()) if k in schema)
        if len(found) == 1:
            raise _invalid(f"{_WHERE}: For '{t}' type, property '{found[0]}' is not supported")
        if found:
            listed = ", ".join(found)
            raise _invalid(f"{_WHERE}: For '{t}' type, properties {listed} are not supported")
        if t == "object" and schema.get("additionalProperties") is not False:
            raise _invalid(
                f"{_WHERE}: For 'object' type, 'additionalProperties' must be explicitly "
                "set to false"
            )
        if t == "array" and schema.get("minItems", 0) not in (0, 1):
            raise _invalid(
                f"{_WHERE}: For 'array' type, 'minItems' values other than 0 or 1 are not supported"
            )
    for key in ("properties", "$defs", "definitions"):
        children = schema.get(key)
        if isinstance(children, Mapping):
            for child in children.values():
                _check(child)
    for key in ("anyOf", "allOf"):
        variants = schema.get(key)
        if isinstance(variants, list):
            for variant in variants:
                _check(variant)
    _check(schema.get("items"))
