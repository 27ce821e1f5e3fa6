"""The README's grpcurl stream example says what grpcurl prints: proto field names."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from google.protobuf import json_format

from llmesh.v1 import orchestrator_pb2

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
EVENTS = orchestrator_pb2.StreamChatResponse.DESCRIPTOR.oneofs_by_name["event"]


def _json_objects(text: str) -> list[Any]:
    """The top-level JSON objects of a block printed one after another."""
    objects: list[Any] = []
    depth, start = 0, 0
    for i, char in enumerate(text):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                objects.append(orjson.loads(text[start : i + 1]))
                start = i + 1
    return objects


def test_the_stream_is_described_with_proto_event_names() -> None:
    sentence = README[README.index("The stream is `start`") :].split(". ")[0]
    names = re.findall(r"`(\w+)`", sentence)
    assert names, sentence
    assert set(names) <= {f.name for f in EVENTS.fields}


def test_the_printed_events_use_proto_field_names() -> None:
    after = README[README.index("grpcurl prints the proto field names") :]
    match = re.search(r"```json\n(.*?)```", after, re.DOTALL)
    assert match is not None
    printed = _json_objects(match.group(1))
    assert printed
    for obj in printed:
        event = json_format.ParseDict(obj, orchestrator_pb2.StreamChatResponse())
        assert json_format.MessageToDict(event, preserving_proto_field_name=True) == obj
