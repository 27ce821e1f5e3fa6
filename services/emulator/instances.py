"""A small instance valid against a JSON Schema: what the emulated model answers with.

Used for tool call arguments (against the tool's parameters / ``input_schema``) and for
structured replies (``response_format`` ``json_schema``). Deterministic: objects carry
their declared properties (only the required ones below the first levels), strings echo
`text` (fitted to ``minLength`` / ``maxLength``), numbers are the smallest allowed (0 when
unbounded), booleans false, arrays ``minItems`` copies of an item; ``const``, ``enum``,
``anyOf`` / ``oneOf`` (the first choice), ``allOf`` (merged) and local ``$ref``s
(``#/$defs/...``, ``#/definitions/...``) are followed. A schema with no properties gives
``{}``. Patterns and formats are not generated.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["instance"]

ALL_PROPERTIES_DEPTH = 2
"""Object levels at which every declared property is filled in; deeper, only required ones."""

MAX_DEPTH = 12
"""Nesting beyond which a (recursive) schema is cut short with its simplest value."""


def instance(schema: Any, text: str = "") -> Any:
    """A value valid against `schema` (see the module docstring); `text` fills strings."""
    root = schema if isinstance(schema, Mapping) else {}
    return _value(root, root, text, 0)


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    seen = 0
    while isinstance(node.get("$ref"), str) and seen < MAX_DEPTH:
        ref: str = node["$ref"]
        target: Any = root
        if not ref.startswith("#"):
            return {}
        for part in ref[1:].split("/"):
            if not part:
                continue
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, Mapping) else None
        rest = {k: v for k, v in node.items() if k != "$ref"}
        node = {**(target if isinstance(target, Mapping) else {}), **rest}
        seen += 1
    return node


def _merged(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    parts = node.get("allOf")
    if not isinstance(parts, list):
        return node
    out: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
    for part in parts:
        if isinstance(part, Mapping):
            part = _merged(_resolve(part, root), root)
            for key, value in part.items():
                if key == "properties" and isinstance(value, Mapping):
                    out["properties"] = {**out.get("properties", {}), **value}
                elif key == "required" and isinstance(value, list):
                    out["required"] = [*out.get("required", []), *value]
                else:
                    out.setdefault(key, value)
    return out


def _type(node: Mapping[str, Any]) -> str:
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if kinds else "null"
    if isinstance(kind, str):
        return kind
    if "properties" in node or "required" in node or "additionalProperties" in node:
        return "object"
    if "items" in node or "prefixItems" in node:
        return "array"
    return "object"


def _value(schema: Mapping[str, Any], root: Mapping[str, Any], text: str, depth: int) -> Any:
    node = _merged(_resolve(schema, root), root)
    if "const" in node:
        return node["const"]
    enum = node.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for key in ("anyOf", "oneOf"):
        choices = node.get(key)
        if isinstance(choices, list) and choices:
            options = [c for c in choices if isinstance(c, Mapping)]
            usable = [c for c in options if _resolve(c, root).get("type") != "null"] or options
            if usable:
                return _value(usable[0], root, text, depth)
    kind = _type(node)
    if kind == "null":
        return None
    if kind == "boolean":
        return False
    if kind in ("integer", "number"):
        return _number(node, kind == "integer")
    if kind == "string":
        return _string(node, text)
    if kind == "array":
        return _array(node, root, text, depth)
    return _object(node, root, text, depth)


def _number(node: Mapping[str, Any], integer: bool) -> int | float:
    low = node.get("minimum")
    ex = node.get("exclusiveMinimum")
    value: float = 0
    if isinstance(low, int | float) and not isinstance(low, bool):
        value = low
    if isinstance(ex, int | float) and not isinstance(ex, bool) and value <= ex:
        value = math.floor(ex) + 1 if integer else ex + 1
    high = node.get("maximum")
    if value == 0 and isinstance(high, int | float) and high < 0:
        value = high
    step = node.get("multipleOf")
    if isinstance(step, int | float) and step > 0 and value % step:
        value = math.ceil(value / step) * step
    return math.ceil(value) if integer else value


def _string(node: Mapping[str, Any], text: str) -> str:
    value = text
    most = node.get("maxLength")
    if isinstance(most, int) and len(value) > most:
        value = value[:most]
    least = node.get("minLength")
    if isinstance(least, int) and len(value) < least:
        value += "x" * (least - len(value))
    return value


def _array(node: Mapping[str, Any], root: Mapping[str, Any], text: str, depth: int) -> list[Any]:
    prefix = node.get("prefixItems")
    out: list[Any] = []
    if isinstance(prefix, list):
        out = [_value(p, root, text, depth + 1) for p in prefix if isinstance(p, Mapping)]
    least = node.get("minItems")
    count = least if isinstance(least, int) else 0
    items = node.get("items")
    if len(out) < count and depth < MAX_DEPTH:
        item = _value(items if isinstance(items, Mapping) else {}, root, text, depth + 1)
        out += [item] * (count - len(out))
    return out


def _object(
    node: Mapping[str, Any], root: Mapping[str, Any], text: str, depth: int
) -> dict[str, Any]:
    props = node.get("properties")
    props = props if isinstance(props, Mapping) else {}
    required = node.get("required")
    required = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
    names = list(props) if depth < ALL_PROPERTIES_DEPTH else []
    names += [r for r in required if r not in names]
    out: dict[str, Any] = {}
    for name in names:
        sub = props.get(name, {})
        if depth >= MAX_DEPTH:
            out[name] = None
            continue
        out[name] = _value(sub if isinstance(sub, Mapping) else {}, root, text, depth + 1)
    return out
