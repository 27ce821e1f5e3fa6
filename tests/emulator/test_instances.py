"""The emulator's schema instances: always valid against the schema they are made from."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from llmesh.services.emulator.instances import instance

SCHEMAS: dict[str, dict[str, Any]] = {
    "empty": {},
    "no_arguments": {"type": "object", "properties": {}},
    "types": {
        "type": "object",
        "properties": {
            "s": {"type": "string", "minLength": 30},
            "short": {"type": "string", "maxLength": 2},
            "i": {"type": "integer", "minimum": 3},
            "x": {"type": "number", "exclusiveMinimum": 0.5},
            "b": {"type": "boolean"},
            "z": {"type": "null"},
            "maybe": {"type": ["null", "integer"], "maximum": -4},
        },
        "required": ["s", "short", "i", "x", "b", "z", "maybe"],
        "additionalProperties": False,
    },
    "enums_and_choices": {
        "type": "object",
        "properties": {
            "unit": {"enum": ["c", "f"]},
            "fixed": {"const": 7},
            "either": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "both": {"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}]},
        },
        "required": ["unit", "fixed", "either", "both"],
    },
    "nested_and_arrays": {
        "type": "object",
        "properties": {
            "rows": {
                "type": "array",
                "minItems": 2,
                "items": {
                    "type": "object",
                    "properties": {"id": {"type": "integer", "multipleOf": 5, "minimum": 1}},
                    "required": ["id"],
                },
            },
            "deep": {"$ref": "#/$defs/Deep"},
        },
        "required": ["rows", "deep"],
        "$defs": {
            "Deep": {
                "type": "object",
                "properties": {"next": {"$ref": "#/$defs/Deep"}, "name": {"type": "string"}},
                "required": ["name"],
            }
        },
    },
}


@pytest.mark.parametrize("case", sorted(SCHEMAS))
def test_the_instance_is_valid_against_its_schema(case: str) -> None:
    schema = SCHEMAS[case]
    value = instance(schema, "echo me")
    jsonschema.validate(value, schema)


def test_strings_echo_the_text_and_tools_without_parameters_get_an_empty_object() -> None:
    assert instance({"type": "object", "properties": {"q": {"type": "string"}}}, "hi") == {
        "q": "hi"
    }
    assert instance({"type": "object"}, "hi") == {}
    assert instance(SCHEMAS["no_arguments"]) == {}
